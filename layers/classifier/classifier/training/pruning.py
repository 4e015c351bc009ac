"""Structured channel pruning: a trained network cut down to narrower widths.

``prune_channels`` keeps, in every conv layer, the output channels that matter most and
copies their weights (conv kernels, batch-norm statistics, the head's rows) into a fresh
``make_model(widths)``. A channel's importance is the mean magnitude of its activation on
sample images times the norm of the weights that read it in the next layer: a channel that
is rarely on, or that the next layer ignores, goes first.

The pruned network starts far closer to the original than a random init; fine-tuning it,
with the original as teacher (``training.train(teacher=...)``), recovers most of the accuracy
in a few epochs. That is how the shipped baseline got under its latency budget on a CPU.
"""

import keras
import numpy as np

from classifier.training.network import activation_of, architecture_of, make_model

SAMPLE_IMAGES = 2048  # images whose activations rank the channels


def conv_layer_names(model: keras.Model) -> list[str]:
    """The 3x3 conv layers in order: a conv stem, then each block's ``a`` and ``b`` convs."""
    return [layer.name for layer in model.layers if layer.name.endswith("_conv")]


def prune_channels(model: keras.Model, widths: tuple[int, ...], images: np.ndarray) -> keras.Model:
    """A float32 ``make_model(widths)`` holding the most important channels of ``model``.

    ``widths`` must not exceed the model's own, stage by stage. A whitening stem (fixed by the
    data, not trained) is copied whole, so its width cannot change. ``images`` (uint8) rank the
    channels; a few thousand are plenty.
    """
    architecture = architecture_of(model)
    original = architecture["widths"]
    if len(widths) != len(original) or any(new > old for new, old in zip(widths, original)):
        raise ValueError(
            f"Cannot prune widths {original} to {tuple(widths)}: each must be at most the original."
        )
    whiten = architecture["stem"] == "whiten"
    if whiten and widths[0] != original[0]:
        raise ValueError(
            f"A whitening stem keeps its {original[0]} channels; cannot prune it to {widths[0]}."
        )
    pruned = make_model(tuple(widths), activation=architecture["activation"], stem=architecture["stem"])
    convs = conv_layer_names(model)
    # a conv stem has widths[0] channels; block i's two convs have widths[i]
    targets = ([] if whiten else [widths[0]]) + [w for w in widths[1:] for _ in range(2)]
    if whiten:
        pruned.get_layer("stem_whiten").set_weights(model.get_layer("stem_whiten").get_weights())

    activations = _mean_activations(model, convs, images[:SAMPLE_IMAGES])
    readers = [model.get_layer(name).kernel for name in convs[1:]] + [model.get_layer("logits").kernel]
    kept_inputs = np.arange(model.get_layer(convs[0]).kernel.shape[2])
    for name, target, activation, reader in zip(convs, targets, activations, readers, strict=True):
        reader = keras.ops.convert_to_numpy(reader)
        # the norm of the next layer's weights on each of this layer's channels
        reads = np.sqrt((reader.reshape(-1, reader.shape[-2], reader.shape[-1]) ** 2).sum(axis=(0, 2)))
        kept = np.sort(np.argsort(activation * reads)[::-1][:target])
        kernel = keras.ops.convert_to_numpy(model.get_layer(name).kernel)
        pruned.get_layer(name).kernel.assign(kernel[:, :, kept_inputs][..., kept])
        bn = name.removesuffix("_conv") + "_bn"
        pruned.get_layer(bn).set_weights([w[kept] for w in model.get_layer(bn).get_weights()])
        kept_inputs = kept
    head = keras.ops.convert_to_numpy(model.get_layer("logits").kernel)
    pruned.get_layer("logits").kernel.assign(head[kept_inputs])
    pruned.get_layer("standardise").set_weights(model.get_layer("standardise").get_weights())
    return pruned


def _mean_activations(model: keras.Model, convs: list[str], images: np.ndarray) -> list[np.ndarray]:
    """Per conv layer, the mean absolute activation of each channel after BN and the activation."""
    suffix = f"_{activation_of(model)}"
    outputs = [model.get_layer(name.removesuffix("_conv") + suffix).output for name in convs]
    probe = keras.Model(model.input, outputs)
    values = probe.predict(images, batch_size=256, verbose=0)
    return [np.abs(np.asarray(v, dtype=np.float32)).mean(axis=(0, 1, 2)) for v in values]
