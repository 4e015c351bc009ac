"""Is ``--recipe airbench`` airbench94's training step? A check against PyTorch.

    python -m bench.airbench_equivalence [--steps 3] [--total 100]   # needs torch (pip install torch)

It builds the Keras network of ``HyperParameters.airbench``, copies its initial weights into a
PyTorch re-statement of airbench94's network (Jordan, 2024: legacy/airbench94.py, written out here
from its description, in float64), and trains both on the same batches of 1,024 random images:
the Keras side with ``LookaheadNesterov`` and ``OneCycle`` in this trainer's units (mean loss),
the PyTorch side with ``torch.optim.SGD`` in airbench94's (summed loss, learning rate and weight
decay per 1,024 images, batch-norm biases at 64 times the rate, its warm-up and decay, its
lookahead every 5 steps over the whole state, batch-norm statistics included). It prints, for every
weight after ``--steps`` steps of a ``--total``-step run, the largest difference between the two
relative to the largest PyTorch value, beside how far training moved it.

What to expect: about 1e-4 after 3 steps. Beyond that the two drift apart as float32 and float64
do (random labels at this learning rate are chaotic: PyTorch against itself in float32 drifts as
far), so run few steps. Batch-norm moving statistics differ by design once a lookahead step has
run: airbench94 averages them with the weights, ``LookaheadNesterov`` sees trainable weights only.
It is not part of the tests: torch is not one of the project's dependencies.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

BATCH = 1024  # airbench94's units are per 1,024 images; at this batch the two forms coincide
BLOCKS = ("block1a", "block1b", "block2a", "block2b", "block3a", "block3b")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="training steps to compare after")
    parser.add_argument("--total", type=int, default=100, help="the schedule's length in steps")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("this check needs PyTorch: pip install torch", file=sys.stderr)
        return 2
    import keras

    from classifier.training import trainer
    from classifier.training.network import CIFAR10_MEAN, CIFAR10_STD, make_model, set_whitening

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (BATCH * args.steps, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, len(images))
    hp = trainer.HyperParameters.airbench(batch_size=BATCH, epochs=1)
    keras.utils.set_random_seed(0)
    model = make_model(hp.widths, stem=hp.stem)
    set_whitening(model, images[:2000])
    trainer.compile_model(model, hp, steps_per_epoch=args.total)
    initial = {w.path: keras.ops.convert_to_numpy(w) for w in model.weights}

    torch.set_default_dtype(torch.float64)
    net = _torch_network(torch, hp.widths, initial)
    step_torch = _torch_trainer(torch, net, args.total)

    def standardised(x):
        return torch.tensor(((x.astype("float64") - CIFAR10_MEAN) / CIFAR10_STD).transpose(0, 3, 1, 2))

    onehot = np.eye(10, dtype="float32")[labels]
    for step in range(args.steps):
        batch = slice(step * BATCH, (step + 1) * BATCH)
        model.train_on_batch(images[batch], onehot[batch])
        step_torch(standardised(images[batch]), torch.tensor(labels[batch]), step + 1)

    final = {w.path: keras.ops.convert_to_numpy(w) for w in model.weights}
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    print(f"largest relative difference after {args.steps} of {args.total} steps (Keras against PyTorch):")
    pairs = [("stem_whiten/bias", state["whiten.bias"])]
    for i, name in enumerate(BLOCKS):
        pairs += [
            (f"{name}_conv/kernel", state[f"convs.{i}.weight"].transpose(2, 3, 1, 0)),
            (f"{name}_bn/beta", state[f"norms.{i}.bias"]),
            (f"{name}_bn/moving_mean", state[f"norms.{i}.running_mean"]),
        ]
    pairs.append(("logits/kernel", state["head.weight"].T))
    for path, theirs in pairs:
        moved = float(np.abs(final[path] - initial[path]).max())
        print(
            f"  {path:<24} {_relative(final[path], theirs):9.1e}   (largest change in training: {moved:.1e})"
        )
    return 0


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / (np.abs(b).max() + 1e-12))


def _torch_network(torch, widths, initial: dict):
    """airbench94's network with ``widths`` and the Keras model's ``initial`` weights."""
    nn, functional = torch.nn, torch.nn.functional
    stem, *blocks = widths

    class Network(nn.Module):
        def __init__(self):
            super().__init__()
            self.whiten = nn.Conv2d(3, stem, 2, padding=0, bias=True)
            channels = [stem, *blocks]
            self.convs, self.norms = nn.ModuleList(), nn.ModuleList()
            for i in range(len(blocks)):
                for c_in in (channels[i], channels[i + 1]):
                    self.convs.append(nn.Conv2d(c_in, channels[i + 1], 3, padding=1, bias=False))
                    # PyTorch's momentum is the new batch's weight: 1 - Keras's 0.6
                    self.norms.append(nn.BatchNorm2d(channels[i + 1], eps=1e-5, momentum=0.4))
            self.head = nn.Linear(blocks[-1], 10, bias=False)

        def forward(self, x):
            x = functional.gelu(self.whiten(x))
            for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
                x = conv(x)
                if i % 2 == 0:
                    x = functional.max_pool2d(x, 2)
                x = functional.gelu(norm(x))
            return self.head(functional.max_pool2d(x, 3).flatten(1)) / 9

    def kernel(path):
        return torch.tensor(initial[path].transpose(3, 2, 0, 1).astype("float64"))

    net = Network()
    with torch.no_grad():
        net.whiten.weight.copy_(kernel("stem_whiten/kernel"))
        net.whiten.bias.copy_(torch.tensor(initial["stem_whiten/bias"]))
        for i, name in enumerate(BLOCKS):
            net.convs[i].weight.copy_(kernel(f"{name}_conv/kernel"))
            net.norms[i].bias.copy_(torch.tensor(initial[f"{name}_bn/beta"]))
        net.head.weight.copy_(torch.tensor(initial["logits/kernel"].T))
    net.whiten.weight.requires_grad = False
    for norm in net.norms:
        norm.weight.requires_grad = False
    return net


def _torch_trainer(torch, net, total: int):
    """airbench94's optimizer, schedule and lookahead for ``net``: a function of one batch."""
    momentum = 0.85
    kilostep_scale = 1024 * (1 + 1 / (1 - momentum))
    lr = 11.5 / kilostep_scale
    decay = 0.0153 * BATCH / kilostep_scale
    lr_biases = lr * 64.0
    biases = [norm.bias for norm in net.norms]
    others = [net.whiten.bias, *(conv.weight for conv in net.convs), net.head.weight]
    optimizer = torch.optim.SGD(
        [
            dict(params=biases, lr=lr_biases, weight_decay=decay / lr_biases),
            dict(params=others, lr=lr, weight_decay=decay / lr),
        ],
        momentum=momentum,
        nesterov=True,
    )
    warmup = int(total * 0.23)

    def fraction(step):
        if step < warmup:
            return 0.2 + 0.8 * step / warmup
        return 1.0 - 0.93 * (step - warmup) / (total - warmup)

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, fraction)
    alpha = 0.95**5 * (torch.arange(total + 1) / total) ** 3
    slow = {k: v.clone() for k, v in net.state_dict().items()}
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.2, reduction="none")

    def lookahead(weight):
        for average, current in zip(slow.values(), net.state_dict().values()):
            if current.dtype.is_floating_point:
                average.lerp_(current, 1 - weight)
                current.copy_(average)

    def step_once(x, y, step: int):
        net.train()
        loss = loss_fn(net(x), y).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 5 == 0:
            lookahead(alpha[step].item())
        if step >= total:
            lookahead(1.0)

    return step_once


if __name__ == "__main__":
    sys.exit(main())
