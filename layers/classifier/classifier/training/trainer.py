"""Training: augmentation, a one-cycle schedule sized to a budget of epochs or seconds,
per-epoch checkpoints, resume after a killed process, fine-tuning from an existing model.

Backend-neutral Keras (runs under ``KERAS_BACKEND=jax`` on a GPU or ``tensorflow`` on a CPU).
Augmentation is a pure function of (images, seed, epoch), so a resumed run sees exactly the
batches an uninterrupted run would have seen, and ends with the same weights.

Evidence for the recipe: ONE run per row (seed 0), so there is no spread to report, and gaps of
under about half a point between rows are not evidence either way. One NVIDIA H100, JAX backend,
mixed_bfloat16, batch 512, three recipes trained side by side at about 1 s an epoch each
(infra/train-on-gpu.sh); Keras accuracy on the 5,000-image test zip; widths (32, 64, 256, 256),
1.98M parameters, 200 epochs, flip + 4-pixel translation, label smoothing 0.2, SGD Nesterov,
one-cycle LR:
    peak LR 0.4, no cutout ............................ 90.0%  (train accuracy 99.99%: over-fits)
    peak LR 0.2, no cutout ............................ 89.8%
    peak LR 0.2, batch 256, no cutout ................. 89.4%
    peak LR 0.4, cutout  8 ............................ 90.8%  (budget stopped it at 51 epochs)
    peak LR 0.4, cutout 12 ............................ 91.1%
    peak LR 0.4, cutout 16 ............................ 91.3%  <- shipped baseline (91.4% as .tflite)
Horizontal-flip test-time augmentation adds 0.6 to 0.9 points at twice the inference cost.
On a 2-core CPU with tensorflow-cpu the same network trains at about 70 images a second.

That network takes 3.2 to 3.9 ms for one image on one CPU thread, over the 3 ms goal. The shipped
baseline is that network pruned to widths (32, 64, 192, 192) (``classifier.training.pruning``: 89.9%
before any training) and distilled from it, one run, on the 2-core CPU (tensorflow-cpu,
``HyperParameters.finetune`` with distillation 0.7, no cutout): Keras accuracy after each epoch
90.1, 90.6, 90.7, 90.9%;
4 epochs in 2,581 s; 90.96% as .tflite, 2.3 ms.
Distilling the same way for 10 epochs (distillation 0.8, peak LR 0.05) from the teacher's
probabilities averaged with its mirror image's (91.9% as a classifier) gave 90.74%: no gain.
From those weights, 24 epochs in which the wide network scored each epoch's own augmented images
(``teacher_views="augmented"``, ``mixup=0.5``, distillation 0.8, peak LR 0.05, mixed_bfloat16)
gave 91.36% as .tflite in 2,907 s (v20261206-baseline).
22 more such epochs from those weights, the teacher averaging each image with its mirror image
(``teacher_views="augmented-flip"``), 6,967 s: 91.34% (Keras), no gain.
14 such epochs from those weights with an ensemble of the wide network and a fine-tuned
third-party ResNet-56 (92.78% together) as the live teacher, 3,781 s: 91.82% as .tflite
(v20261206-baseline-2, shipped). Every variant of those 14 epochs measured since tied or trailed
it; which, and their figures, are in docs/model.md ("Consistent teaching").

airbench94's recipe (``HyperParameters.airbench``), widths (24, 64, 256, 240), 1.87M parameters,
one run from scratch on a 2-core Intel Xeon with AMX (tensorflow-cpu, mixed_bfloat16, which
trains 1.5 times as fast as float32 there; about 125 s an epoch):
    20 epochs, 2,639 s ................................ 90.5%  (train accuracy 98.9%: over-fits)
    the same with cutout 12, distilled (0.7) from an ensemble of the wide network and that run
    (92.4% with flips), 20 epochs, 2,674 s ............ 89.8%  (train accuracy 93.8%)
airbench94 reports 94.0% with test-time augmentation after 10 epochs on the lossless images; on
these JPEG files the same recipe, twice as long, reaches what the first recipe reached in 200.
"""

import concurrent.futures
import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np

from classifier.labels import NUM_CLASSES
from classifier.training.network import (
    ACTIVATIONS,
    CIFAR10_MEAN,
    DEFAULT_WIDTHS,
    STEMS,
    WHITEN_WIDTH,
    architecture_of,
    make_model,
    set_whitening,
)

STATE_FILE = "state.json"
TEACHER_FILE = "teacher.npy"
TEACHER_TIMING_IMAGES = 1000  # two of _predict's batches: enough to time a live teacher
# Timed steps miss the per-epoch costs (fit set-up, host-to-device copies, checkpoint writes).
EPOCH_OVERHEAD = 1.15  # names the latest epoch's model file; written last
OPTIMIZERS = ("sgd", "lookahead")
FLIPS = ("random", "alternating")
TEACHER_VIEWS = ("fixed", "augmented", "augmented-flip")
WHITENING_IMAGES = 5000  # training images whose patches set a whitening stem


@dataclasses.dataclass(frozen=True)
class HyperParameters:
    """One block of hyper-parameters, with units. Stored in the checkpoint and the model card."""

    epochs: int = 40  # passes over the training set (a time budget may lower it)
    batch_size: int = 512  # images per step
    peak_learning_rate: float = 0.4  # reached after warmup_fraction of the steps
    warmup_fraction: float = 0.15  # of all steps, linear ramp from initial_learning_rate_fraction
    final_learning_rate_fraction: float = 0.0  # of the peak, at the last step
    momentum: float = 0.9  # SGD, Nesterov
    # "sgd": decoupled (Keras SGD), per step, times the learning rate.
    # "lookahead": L2, added to the gradient before the momentum (as PyTorch's SGD does).
    weight_decay: float = 5e-3
    label_smoothing: float = 0.2  # applied to every target, a teacher's probabilities included
    translate: int = 4  # pixels of reflect padding for random crops
    cutout: int = 0  # side in pixels of a random square filled with the mean colour; 0 = off
    distillation: float = 0.0  # weight of a teacher's probabilities in the targets; 0 = labels only
    widths: tuple[int, ...] = DEFAULT_WIDTHS
    activation: str = "gelu"  # or "relu" (int8 kernels: classifier.training.network)
    seed: int = 0
    dtype_policy: str = "float32"  # "mixed_bfloat16" on a GPU, or on a CPU with AMX
    stem: str = "conv"  # or "whiten" (classifier.training.network)
    optimizer: str = "sgd"  # or "lookahead" (LookaheadNesterov)
    initial_learning_rate_fraction: float = 0.0  # of the peak, at the first step
    bias_learning_rate_scale: float = 1.0  # "lookahead" only: batch-norm shifts' gradient scale
    whiten_bias_epochs: int = 0  # "lookahead" only: epochs the whitening stem's bias trains for
    flip: str = "random"  # or "alternating": each image flipped every other epoch
    # "fixed": the teacher's flip-averaged probabilities for the clean images, computed once;
    # "augmented": its probabilities for the very images the student sees, every epoch;
    # "augmented-flip": the same, each averaged with its probabilities for the mirror image
    teacher_views: str = "fixed"
    mixup: float = 0.0  # Beta(a, a) concentration of mixup between image pairs; 0 = off

    def __post_init__(self):
        for field, allowed in (
            ("activation", ACTIVATIONS),
            ("stem", STEMS),
            ("optimizer", OPTIMIZERS),
            ("flip", FLIPS),
            ("teacher_views", TEACHER_VIEWS),
        ):
            if getattr(self, field) not in allowed:
                raise ValueError(f"{field} must be one of {allowed}, not {getattr(self, field)!r}")
        if self.mixup < 0:
            raise ValueError(f"mixup must be >= 0, not {self.mixup}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), not {self.label_smoothing}")

    @classmethod
    def airbench(cls, **overrides) -> "HyperParameters":
        """airbench94's recipe (Jordan, 2024; github.com/KellerJordan/cifar10-airbench,
        legacy/airbench94.py) in this trainer's units: batch 1024, Nesterov momentum 0.85,
        learning rate 11.5 per 1024 images in its decoupled form, which for a mean loss is
        11.5 / (1 + 1 / (1 - 0.85)) = 1.5, from 0.2 of it up over 23% of the steps and down to
        0.07 of it; L2 0.0153 / 11.5; batch-norm shifts at 64 times the learning rate; lookahead;
        label smoothing 0.2; alternating flips and 2-pixel translation; a whitening stem whose
        bias trains for 3 epochs. The widths are airbench94's but for the last block's, cut from
        256 to 240 so that the dynamic-range ``.tflite`` stays under 2 MB."""
        values = dict(
            epochs=10,
            batch_size=1024,
            peak_learning_rate=11.5 / (1 + 1 / (1 - 0.85)),
            warmup_fraction=0.23,
            initial_learning_rate_fraction=0.2,
            final_learning_rate_fraction=0.07,
            momentum=0.85,
            weight_decay=0.0153 / 11.5,
            bias_learning_rate_scale=64.0,
            label_smoothing=0.2,
            translate=2,
            cutout=0,
            widths=(WHITEN_WIDTH, 64, 256, 240),
            stem="whiten",
            optimizer="lookahead",
            whiten_bias_epochs=3,
            flip="alternating",
        )
        values.update(overrides)
        return cls(**values)

    @classmethod
    def finetune(cls, **overrides) -> "HyperParameters":
        """Defaults for fine-tuning an existing model: shorter, gentler."""
        values = dict(epochs=8, peak_learning_rate=0.04, warmup_fraction=0.1)
        values.update(overrides)
        return cls(**values)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, values: dict) -> "HyperParameters":
        return cls(**{"activation": "gelu", **values, "widths": tuple(values["widths"])})


@dataclasses.dataclass(frozen=True)
class TrainingResult:
    model: keras.Model | None  # float32 copy of the trained model; None if not finished
    finished: bool  # False when the deadline stopped the run between epochs
    epochs_done: int
    history: list[dict]  # per epoch: loss, accuracy, seconds
    hyper_parameters: HyperParameters
    seconds: float  # training time over all runs, resumed ones included


def augment(
    images: np.ndarray, seed: int, epoch: int, translate: int, cutout: int = 0, flip: bool = True
) -> np.ndarray:
    """Random horizontal flip (unless ``flip`` is False), translation (reflect padding) and
    cutout of a uint8 batch.

    A pure function of its arguments: the same (seed, epoch) gives the same images. Images are
    grouped by offset so each group is one slice (50,000 images in about 0.3 s on one core).
    """
    rng = np.random.default_rng([seed, epoch])
    n, height, width, _ = images.shape
    mirrored = rng.random(n) < 0.5  # drawn either way, so the translations do not depend on flip
    out = images.copy()
    if flip:
        out[mirrored] = out[mirrored, :, ::-1]
    if translate:
        _translate(out, rng, translate)
    if cutout:
        # the square's top-left corner; squares may hang over the edge (DeVries & Taylor, 2017)
        top, left = (rng.integers(0, size, (n, 1, 1)) - cutout // 2 for size in (height, width))
        rows, cols = np.arange(height)[None, :, None], np.arange(width)[None, None, :]
        hidden = (rows >= top) & (rows < top + cutout) & (cols >= left) & (cols < left + cutout)
        out[hidden] = np.rint(CIFAR10_MEAN).astype(np.uint8)
    return out


def _translate(out: np.ndarray, rng: np.random.Generator, translate: int) -> None:
    n, height, width, _ = out.shape
    side = 2 * translate + 1
    padded = np.pad(out, ((0, 0), (translate,) * 2, (translate,) * 2, (0, 0)), mode="reflect")
    offset = rng.integers(0, side * side, n)
    order = np.argsort(offset, kind="stable")
    bounds = np.searchsorted(offset[order], np.arange(side * side + 1))
    for code in range(side * side):
        chosen = order[bounds[code] : bounds[code + 1]]
        y, x = divmod(code, side)
        out[chosen] = padded[chosen, y : y + height, x : x + width]


def alternating_flips(n: int, seed: int, epoch: int) -> np.ndarray:
    """Which of ``n`` images are mirrored in ``epoch`` under alternating flips: a coin flip per
    image, drawn once per seed, inverted in odd epochs, so each image is seen both ways round
    every two epochs (airbench's scheme: more variety than a new coin flip every epoch)."""
    return (np.random.default_rng([seed, 2]).random(n) < 0.5) ^ bool(epoch % 2)


def epoch_data(
    images: np.ndarray, labels: np.ndarray, hp: HyperParameters, epoch: int, teacher: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The shuffled, augmented images and targets of one epoch: one-hot labels, mixed with the
    ``teacher``'s probabilities [N, 10] by ``hp.distillation`` when they are given."""
    order = np.random.default_rng([hp.seed, epoch, 1]).permutation(len(images))
    x = augment(images[order], hp.seed, epoch, hp.translate, hp.cutout, flip=hp.flip == "random")
    if hp.flip == "alternating":
        mirrored = alternating_flips(len(images), hp.seed, epoch)[order]
        x[mirrored] = x[mirrored, :, ::-1]
    y = keras.utils.to_categorical(labels[order], NUM_CLASSES).astype("float32")
    if teacher is not None and hp.distillation:
        y = (1 - hp.distillation) * y + hp.distillation * teacher[order].astype("float32")
    if hp.mixup:
        x, y = mixup(x, y, hp.mixup, hp.seed, epoch)
    return x, y


def mixup(
    images: np.ndarray, targets: np.ndarray, concentration: float, seed: int, epoch: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each image blended with a random partner from the same batch, ``lam * a + (1 - lam) * b``
    with ``lam ~ Beta(concentration, concentration)`` per image, and its targets blended the same
    way (Zhang et al., 2018). Blends are rounded back to uint8, so they are images the model's
    input contract accepts. A pure function of (seed, epoch), like ``augment``."""
    rng = np.random.default_rng([seed, epoch, 4])
    partner = rng.permutation(len(images))
    lam = rng.beta(concentration, concentration, len(images)).astype(np.float32)
    # the exact weight of each image after rounding is not lam, but the targets' error is < 1/510
    blended = lam[:, None, None, None] * images + (1 - lam[:, None, None, None]) * images[partner]
    mixed = np.rint(blended).astype(np.uint8)
    return mixed, lam[:, None] * targets + (1 - lam[:, None]) * targets[partner]


Teacher = keras.Model | np.ndarray  # a network, or its probabilities for the training images


def teacher_probabilities(
    teacher: Teacher | Sequence[Teacher], images: np.ndarray, checkpoint_dir: Path
) -> np.ndarray:
    """The teacher's probabilities for the un-augmented ``images``, averaged with its
    probabilities for their mirror images, computed once per run and kept beside the checkpoints
    (so a resumed run does not pay for them again). The student sees augmented images against
    these targets: flips, small shifts and cutout leave the class, and the teacher's view of the
    whole image, both ways round, is the better target (flip averaging is worth about half a
    point of the teacher's accuracy: 91.3 to 91.9% for the wide network). A sequence of models
    is an ensemble: the mean of each one's flip-averaged probabilities (calibrated models, as
    export writes them, so that none dominates by being more confident).

    A member may also be an array of probabilities [N, 10] for ``images`` in their order, computed
    elsewhere (a network in another framework, say) the same way: flip-averaged, calibrated. It
    counts as one member, like a model."""
    path = checkpoint_dir / TEACHER_FILE
    if path.exists():
        probabilities = np.load(path)
        if probabilities.shape == (len(images), NUM_CLASSES):
            return probabilities
    teachers = [teacher] if isinstance(teacher, keras.Model | np.ndarray) else list(teacher)
    probabilities = np.mean([_flip_averaged(member, images) for member in teachers], axis=0)
    tmp = checkpoint_dir / f".tmp-{TEACHER_FILE}"
    with open(tmp, "wb") as file:
        np.save(file, probabilities)
    os.replace(tmp, path)
    return probabilities


def live_teacher_targets(
    teacher: Sequence[keras.Model],
    images: np.ndarray,
    targets: np.ndarray,
    distillation: float,
    flip: bool = False,
) -> np.ndarray:
    """``targets`` mixed with the teacher's probabilities for exactly these (augmented, mixed)
    ``images``: consistent teaching (Beyer et al., 2022, "a good teacher is patient and
    consistent"). A teacher's probabilities for the clean images it trained on are nearly one-hot
    (99.8% right, 0.96 on the true class for a 93% ensemble here), so they say little the labels
    do not; on a shifted, cut-out or blended image they are soft, and they are the function the
    student is to match. A sequence is an ensemble: the mean of the members' probabilities.

    With ``flip`` each member's probabilities for an image are averaged with its probabilities for
    the mirror image: a stronger teacher (the wide network: 91.3% alone, 91.9% so) that is still a
    function of the very image the student sees, at twice the teacher's cost."""
    probabilities = np.mean(
        [_flip_averaged(member, images) if flip else _predict(member, images) for member in teacher], 0
    )
    return (1 - distillation) * targets + distillation * probabilities


def _flip_averaged(teacher: Teacher, images: np.ndarray) -> np.ndarray:
    if isinstance(teacher, np.ndarray):
        if teacher.shape != (len(images), NUM_CLASSES):
            raise ValueError(
                f"teacher probabilities have shape {teacher.shape}, the training images need "
                f"({len(images)}, {NUM_CLASSES})"
            )
        if not np.allclose(teacher.sum(axis=1), 1.0, atol=1e-3) or (teacher < 0).any():
            raise ValueError("teacher probabilities must be non-negative and sum to 1 per image")
        return teacher.astype(np.float32)
    return np.mean([_predict(teacher, view) for view in (images, images[:, :, ::-1])], 0)


def _predict(teacher: keras.Model, images: np.ndarray) -> np.ndarray:
    return np.asarray(teacher.predict(images, batch_size=500, verbose=0), np.float32)


@keras.saving.register_keras_serializable(package="classifier")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from ``initial_fraction`` of the peak to the peak, then linear decay to
    ``final_fraction`` of it."""

    def __init__(
        self,
        peak: float,
        total_steps: int,
        warmup_steps: int,
        final_fraction: float = 0.0,
        initial_fraction: float = 0.0,
    ):
        self.peak = peak
        self.total_steps = total_steps
        self.warmup_steps = max(1, warmup_steps)
        self.final_fraction = final_fraction
        self.initial_fraction = initial_fraction

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        up = self.initial_fraction + (1.0 - self.initial_fraction) * step / self.warmup_steps
        down_span = max(1, self.total_steps - self.warmup_steps)
        down = 1.0 - (1.0 - self.final_fraction) * (step - self.warmup_steps) / down_span
        lowest = min(self.initial_fraction, self.final_fraction)
        return self.peak * keras.ops.clip(keras.ops.minimum(up, down), lowest, 1.0)

    def get_config(self):
        return dict(
            peak=self.peak,
            total_steps=self.total_steps,
            warmup_steps=self.warmup_steps,
            final_fraction=self.final_fraction,
            initial_fraction=self.initial_fraction,
        )


@keras.saving.register_keras_serializable(package="classifier")
class LookaheadNesterov(keras.optimizers.Optimizer):
    """airbench94's optimizer, backend-neutral: PyTorch-style Nesterov SGD with L2 added to the
    gradient, batch-norm shifts' gradients scaled by ``bias_scale``, and lookahead.

    Per trainable variable p with gradient g, at step t (from 1) with learning rate lr:
        d = s * g + l2 * p            (s = bias_scale for a batch norm's beta, else 1)
        b = momentum * b + d
        p = p - lr * (d + momentum * b)
    and every ``lookahead_every`` steps p and its slow copy q both become
    q + (1 - a) * (p - q), with a = 0.95^5 * (t / total_steps)^3 rising from 0, so the weights
    are an average over a horizon that lengthens as training ends; the last step sets p = q.
    A whitening stem's kernel never changes; its bias changes for the first
    ``whiten_bias_steps`` steps only. The momentum and slow copies are optimizer variables, so
    they are saved with the model and a resumed run continues exactly.
    """

    def __init__(
        self,
        learning_rate,
        momentum: float = 0.85,
        l2: float = 0.0,
        bias_scale: float = 1.0,
        total_steps: int = 1,
        lookahead_every: int = 5,
        whiten_bias_steps: int = 0,
        name: str = "lookahead_nesterov",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.momentum = momentum
        self.l2 = l2
        self.bias_scale = bias_scale
        self.total_steps = max(1, total_steps)
        self.lookahead_every = lookahead_every
        self.whiten_bias_steps = whiten_bias_steps

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.paths = [v.path for v in variables]  # update_step may get backend variables, without paths
        self.velocities = [self.add_variable_from_reference(v, "velocity") for v in variables]
        self.slow = [self.add_variable_from_reference(v, "slow") for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        ops = keras.ops
        index = self._get_variable_index(variable)
        path = self.paths[index]
        if path.endswith("stem_whiten/kernel"):
            return
        velocity, slow = self.velocities[index], self.slow[index]
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        step = ops.cast(self.iterations, "float32") + 1.0
        scale = self.bias_scale if path.endswith("_bn/beta") else 1.0
        # ops.where takes tensors, not variables (JAX refuses those), so each read is explicit
        # and comes after the assignments before it
        read = ops.convert_to_tensor
        self.assign(slow, ops.where(ops.equal(step, 1.0), read(variable), read(slow)))  # the initial weights
        d = ops.add(ops.multiply(ops.cast(gradient, dtype), scale), ops.multiply(variable, self.l2))
        self.assign(velocity, ops.add(ops.multiply(velocity, self.momentum), d))
        if path.endswith("stem_whiten/bias"):
            lr = ops.where(step <= self.whiten_bias_steps, lr, ops.zeros_like(lr))
        self.assign_sub(variable, ops.multiply(lr, ops.add(d, ops.multiply(velocity, self.momentum))))
        last = ops.greater_equal(step, self.total_steps)
        due = ops.logical_or(ops.equal(ops.mod(step, self.lookahead_every), 0.0), last)
        decay = ops.where(last, 1.0, 0.95**5 * ops.power(step / self.total_steps, 3.0))
        current, slow_now = read(variable), read(slow)
        averaged = ops.add(
            slow_now, ops.multiply(ops.cast(1.0 - decay, dtype), ops.subtract(current, slow_now))
        )
        self.assign(slow, ops.where(due, averaged, slow_now))
        self.assign(variable, ops.where(due, averaged, current))

    def get_config(self):
        config = super().get_config()
        config.update(
            momentum=self.momentum,
            l2=self.l2,
            bias_scale=self.bias_scale,
            total_steps=self.total_steps,
            lookahead_every=self.lookahead_every,
            whiten_bias_steps=self.whiten_bias_steps,
        )
        return config


def compile_model(model: keras.Model, hp: HyperParameters, steps_per_epoch: int) -> None:
    total = hp.epochs * steps_per_epoch
    schedule = OneCycle(
        hp.peak_learning_rate,
        total,
        int(total * hp.warmup_fraction),
        hp.final_learning_rate_fraction,
        hp.initial_learning_rate_fraction,
    )
    if hp.optimizer == "lookahead":
        optimizer = LookaheadNesterov(
            schedule,
            momentum=hp.momentum,
            l2=hp.weight_decay,
            bias_scale=hp.bias_learning_rate_scale,
            total_steps=total,
            whiten_bias_steps=hp.whiten_bias_epochs * steps_per_epoch,
        )
    else:
        optimizer = keras.optimizers.SGD(
            schedule, momentum=hp.momentum, nesterov=True, weight_decay=hp.weight_decay
        )
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=hp.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )


def float32_copy(model: keras.Model, temperature: float = 1.0) -> keras.Model:
    """The same network and weights under the float32 policy (for export and serving), its
    softmax temperature divided by ``temperature``."""
    scale = float(model.get_layer("temperature").scale) / temperature
    copy = make_model(logit_scale=scale, **architecture_of(model))
    copy.set_weights(model.get_weights())
    return copy


def plan_epochs(hp: HyperParameters, seconds_per_epoch: float, budget_seconds: float | None) -> int:
    """The number of epochs that fits ``budget_seconds`` (at most ``hp.epochs``, at least 1)."""
    if budget_seconds is None:
        return hp.epochs
    planned = budget_seconds / (seconds_per_epoch * EPOCH_OVERHEAD)
    return max(1, min(hp.epochs, math.floor(planned)))


def measure_seconds_per_epoch(
    images: np.ndarray, hp: HyperParameters, teacher: Sequence[keras.Model] | None = None, steps: int = 6
) -> float:
    """Time a few training steps on a throw-away model (compilation excluded), plus what a live
    ``teacher`` (augmented views) spends on an epoch's images: it runs before each epoch's steps,
    and an ensemble of wide networks can cost more than the student's training."""
    teaching = teacher_seconds_per_epoch(teacher, images, hp) if teacher else 0.0
    model = make_model(hp.widths, hp.dtype_policy, activation=hp.activation, stem=hp.stem)
    compile_model(model, hp, steps_per_epoch=max(1, len(images) // hp.batch_size))
    x, y = epoch_data(images[: hp.batch_size], np.zeros(min(len(images), hp.batch_size), int), hp, 0)
    model.train_on_batch(x, y)  # compile
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    per_step = (time.perf_counter() - start) / steps
    return per_step * math.ceil(len(images) / hp.batch_size) + teaching


def teacher_seconds_per_epoch(
    teacher: Sequence[keras.Model], images: np.ndarray, hp: HyperParameters
) -> float:
    """Time ``live_teacher_targets`` on a sample of ``images`` (its compilation excluded), scaled
    to the whole set."""
    sample = images[:TEACHER_TIMING_IMAGES]
    targets = np.zeros((len(sample), NUM_CLASSES), np.float32)
    flip = hp.teacher_views == "augmented-flip"
    live_teacher_targets(teacher, sample, targets, hp.distillation, flip=flip)  # compile
    start = time.perf_counter()
    live_teacher_targets(teacher, sample, targets, hp.distillation, flip=flip)
    return (time.perf_counter() - start) * len(images) / len(sample)


def train(
    images: np.ndarray,
    labels: np.ndarray,
    checkpoint_dir: str | os.PathLike,
    hp: HyperParameters = HyperParameters(),
    *,
    init_model: keras.Model | None = None,
    teacher: Teacher | Sequence[Teacher] | None = None,
    budget_seconds: float | None = None,
    deadline: float | None = None,
    progress: Callable[[dict], None] | None = None,
) -> TrainingResult:
    """Train (or resume training) on uint8 ``images`` and integer ``labels``.

    ``checkpoint_dir`` holds the latest epoch's model, optimizer state and plan; if it has one,
    training resumes from it (the plan stored there wins over ``hp`` and the budget).
    ``init_model`` starts from existing weights (fine-tuning) instead of a random init; the
    network keeps its widths, whatever ``hp.widths`` says (prune it first to change them).
    ``teacher`` (with ``hp.distillation`` > 0) mixes its probabilities into the targets:
    knowledge distillation, e.g. into a pruned copy of itself (``classifier.training.pruning``).
    ``budget_seconds`` sizes the number of epochs to a time budget, measured on this machine.
    ``deadline`` (a ``time.time()`` value) stops between epochs when the next epoch would not
    finish in time; the result then says ``finished=False`` and a later call resumes.
    ``progress`` receives a dict per epoch (epoch, epochs, loss, accuracy, seconds_left).
    """
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    state_path = checkpoint_dir / STATE_FILE
    keras.utils.set_random_seed(hp.seed)
    if state_path.exists():
        state = json.loads(state_path.read_text())
        hp = HyperParameters.from_json(state["hyper_parameters"])
        model = keras.models.load_model(checkpoint_dir / state["checkpoint"])
    else:
        if init_model is not None:
            hp = dataclasses.replace(hp, **architecture_of(init_model))
        if budget_seconds is not None:
            seconds = measure_seconds_per_epoch(images, hp, _live_teachers(hp, teacher))
            hp = dataclasses.replace(hp, epochs=plan_epochs(hp, seconds, budget_seconds))
        model = make_model(hp.widths, hp.dtype_policy, activation=hp.activation, stem=hp.stem)
        if init_model is not None:
            model.set_weights(init_model.get_weights())
        elif hp.stem == "whiten":
            sample = np.random.default_rng([hp.seed, 3]).permutation(len(images))[:WHITENING_IMAGES]
            set_whitening(model, images[np.sort(sample)])
        if hp.stem == "whiten" and hp.optimizer != "lookahead":
            # only LookaheadNesterov knows to leave the whitening kernel as the data set it
            model.get_layer("stem_whiten").trainable = False
        compile_model(model, hp, steps_per_epoch=math.ceil(len(images) / hp.batch_size))
        state = {
            "hyper_parameters": hp.to_json(),
            "epochs_done": 0,
            "history": [],
            "seconds": 0.0,
            "checkpoint": None,
        }

    soft, live = None, _live_teachers(hp, teacher)
    if hp.distillation and live is None:
        if teacher is None and not (checkpoint_dir / TEACHER_FILE).exists():
            raise ValueError("distillation needs a teacher model")
        soft = teacher_probabilities(teacher, images, checkpoint_dir)

    epoch_seconds = [row["seconds"] for row in state["history"]]
    # The next epoch's augmented data is prepared on a thread while this one trains.
    prefetch = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    upcoming = prefetch.submit(epoch_data, images, labels, hp, state["epochs_done"], soft)
    for epoch in range(state["epochs_done"], hp.epochs):
        estimate = float(np.median(epoch_seconds)) if epoch_seconds else 0.0
        if deadline is not None and epoch_seconds and time.time() + estimate > deadline:
            break
        start = time.perf_counter()
        x, y = upcoming.result()
        upcoming = prefetch.submit(epoch_data, images, labels, hp, epoch + 1, soft)
        if live is not None:
            y = live_teacher_targets(live, x, y, hp.distillation, flip=hp.teacher_views == "augmented-flip")
        logs = model.fit(
            x, y, batch_size=hp.batch_size, epochs=epoch + 1, initial_epoch=epoch, shuffle=False, verbose=0
        ).history
        seconds = time.perf_counter() - start
        epoch_seconds.append(seconds)
        row = dict(
            epoch=epoch + 1,
            loss=float(logs["loss"][-1]),
            accuracy=float(logs["accuracy"][-1]),
            seconds=seconds,
        )
        state["history"].append(row)
        state["epochs_done"] = epoch + 1
        state["seconds"] += seconds
        _save_checkpoint(model, state, checkpoint_dir)
        if progress is not None:
            left = float(np.median(epoch_seconds)) * (hp.epochs - epoch - 1)
            progress({**row, "epochs": hp.epochs, "seconds_left": left})

    prefetch.shutdown(wait=True, cancel_futures=True)
    finished = state["epochs_done"] >= hp.epochs
    return TrainingResult(
        model=float32_copy(model) if finished else None,
        finished=finished,
        epochs_done=state["epochs_done"],
        history=state["history"],
        hyper_parameters=hp,
        seconds=state["seconds"],
    )


def _live_teachers(
    hp: HyperParameters, teacher: Teacher | Sequence[Teacher] | None
) -> list[keras.Model] | None:
    """The teacher models that score every epoch's augmented images, or None when the teacher's
    views are fixed (or there is no distillation)."""
    if not (hp.distillation and hp.teacher_views.startswith("augmented")):
        return None
    live = [teacher] if isinstance(teacher, keras.Model | np.ndarray) else list(teacher or [])
    if not live or not all(isinstance(member, keras.Model) for member in live):
        # probabilities computed elsewhere are for the clean images only; nothing is cached
        # either, so a resumed run needs its teacher models again
        raise ValueError("distillation on augmented views needs teacher models (.keras), on every run")
    return live


def _save_checkpoint(model: keras.Model, state: dict, checkpoint_dir: Path) -> None:
    """Write this epoch's model, then the state that names it, each by atomic rename: a kill at
    any moment leaves a state that names a complete model file."""
    previous = state["checkpoint"]
    name = f"epoch-{state['epochs_done']:04d}.keras"
    tmp_model = checkpoint_dir / f".tmp-{name}"
    model.save(tmp_model)
    os.replace(tmp_model, checkpoint_dir / name)
    state["checkpoint"] = name
    tmp_state = checkpoint_dir / f".tmp-{STATE_FILE}"
    tmp_state.write_text(json.dumps(state, indent=1))
    os.replace(tmp_state, checkpoint_dir / STATE_FILE)
    if previous and previous != name:
        (checkpoint_dir / previous).unlink(missing_ok=True)


def save_run(
    result: TrainingResult,
    out: Path,
    data,
    source: str,
    parent: str | None,
    command: str = "",
    teacher: str | None = None,
    user_data: dict | None = None,
) -> Path:
    """Write ``model.keras`` and ``training.json`` (what export puts in the model card) to ``out``.
    ``parent`` is the model training started from, ``teacher`` the one it distilled from,
    ``user_data`` the manifest of the user images in ``data`` (uploads, feedback images), kept in
    the card's ``training_data.user``."""
    out.mkdir(parents=True, exist_ok=True)
    result.model.save(out / "model.keras")
    record = {
        "command": command,
        "hyper_parameters": result.hyper_parameters.to_json(),
        "history": result.history,
        "training_seconds": result.seconds,
        "data": {
            "source": source,
            **data.manifest(),
            **({"user": user_data} if user_data is not None else {}),
        },
        "parent": parent,
        "teacher": teacher,
        # what each teacher file held, so a card names its teachers' exact bytes
        "teacher_files": [
            {"path": path, "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest()}
            for path in (teacher.split(",") if teacher else [])
            if Path(path).is_file()
        ],
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "device": device_name(),
    }
    (out / "training.json").write_text(json.dumps(record, indent=1))
    return out / "model.keras"


def device_name() -> str:
    if keras.backend.backend() == "jax":
        import jax

        return str(jax.devices()[0].device_kind)
    import platform

    return f"cpu {platform.machine()}"
