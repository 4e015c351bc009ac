"""The Keras 3 network. Backend-neutral: no ``tf.`` calls, so it trains under JAX or TensorFlow.

Input is ``uint8`` [N, 32, 32, 3]; the first layers cast and standardise with the CIFAR-10
per-channel mean and standard deviation, stored in the model; the output is a softmax over
``classifier.labels.LABELS`` in order. A caller never scales pixels.

Architecture: an airbench-style VGG net (Jordan, 2024, "94% on CIFAR-10 in 3.29 seconds on a
single GPU"): a stem, then three blocks of conv -> max-pool -> BN -> act -> conv -> BN -> act,
a global max pool and a linear head whose logits are scaled down (a temperature that speeds
early training). Two stems:

- ``"conv"``: a trained 3x3 conv with batch norm (the shipped networks).
- ``"whiten"`` (airbench's): a 2x2 conv, no padding, whose kernel is set from the training
  images (``whitening_kernel``: the eigenvectors of the 2x2 patches' covariance, scaled to unit
  variance, and their negatives) and never trained; only its bias trains, for the first epochs.
  With this stem the batch norms learn a shift but no scale, and each block conv starts as an
  identity on its first input-width channels (``DiracPrefix``), as airbench's do.

The activation is GELU (the shipped networks) or ReLU: ReLU has int8 kernels in LiteRT, so a
ReLU network can be quantised to full int8 (``bench.frontier --candidates`` measures what that
buys on one thread).
"""

import keras
import numpy as np
from keras import layers

from classifier.labels import NUM_CLASSES
from classifier.limits import CHANNELS, IMAGE_SIZE

# CIFAR-10 training-set statistics, in uint8 pixel units.
CIFAR10_MEAN = (125.307, 122.950, 113.865)
CIFAR10_STD = (62.993, 62.089, 66.705)

# stem, block 1, block 2, block 3 of a "conv"-stem network: the first shipped baselines' widths.
DEFAULT_WIDTHS = (32, 64, 192, 192)
LOGIT_SCALE = 1 / 9
BN_MOMENTUM = 0.6
ACTIVATIONS = ("gelu", "relu")
STEMS = ("conv", "whiten")
WHITEN_PATCH = 2  # side of the whitening stem's patches
WHITEN_WIDTH = 2 * CHANNELS * WHITEN_PATCH**2  # each eigenvector and its negative
WHITEN_EPSILON = 5e-4  # added to the patch covariance's eigenvalues before the square root


@keras.saving.register_keras_serializable(package="classifier")
class DiracPrefix(keras.initializers.Initializer):
    """A conv kernel [h, w, in, out] drawn like PyTorch's default (uniform, +-1/sqrt(fan in)),
    whose first ``in`` output channels are then set to the identity (a 1 at the centre tap of
    their own input channel): the block starts by passing its input through."""

    def __init__(self, seed=None):
        self.seed = seed

    def __call__(self, shape, dtype=None):
        kernel = keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform", seed=self.seed)(shape, dtype)
        height, width, inputs, outputs = shape
        identity = np.zeros(shape, dtype="float32")
        prefix = min(inputs, outputs)
        identity[height // 2, width // 2, np.arange(prefix), np.arange(prefix)] = 1.0
        mask = np.zeros(shape, dtype="float32")
        mask[..., :prefix] = 1.0
        return kernel * keras.ops.convert_to_tensor(1 - mask, dtype) + keras.ops.convert_to_tensor(
            identity, dtype
        )

    def get_config(self):
        return {"seed": self.seed}


def make_model(
    widths: tuple[int, ...] = DEFAULT_WIDTHS,
    dtype_policy: str | None = None,
    logit_scale: float = LOGIT_SCALE,
    activation: str = "gelu",
    stem: str = "conv",
) -> keras.Model:
    """Build the classifier. ``dtype_policy`` (e.g. ``"mixed_bfloat16"``) applies to every layer
    but the input cast and the softmax, which stay float32. ``logit_scale`` multiplies the logits
    before the softmax: ``LOGIT_SCALE`` for training, divided by a fitted temperature at export.
    ``activation`` is one of ``ACTIVATIONS``; its layers are named ``<conv>_<activation>``.
    ``stem`` is one of ``STEMS``; a ``"whiten"`` stem's width must be ``WHITEN_WIDTH``, and its
    kernel is set by ``set_whitening`` before training."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, not {activation!r}")
    if stem not in STEMS:
        raise ValueError(f"stem must be one of {STEMS}, not {stem!r}")
    if stem == "whiten" and widths[0] != WHITEN_WIDTH:
        raise ValueError(f"a whitening stem has {WHITEN_WIDTH} channels, not {widths[0]}")
    policy = dtype_policy or "float32"
    stem_width, *blocks = widths
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, CHANNELS), dtype="uint8", name="image")
    x = layers.Normalization(
        mean=CIFAR10_MEAN, variance=[s * s for s in CIFAR10_STD], name="standardise", dtype="float32"
    )(inputs)
    if stem == "whiten":
        x = layers.Conv2D(stem_width, WHITEN_PATCH, name="stem_whiten", dtype=policy)(x)
        x = layers.Activation(activation, name=f"stem_{activation}", dtype=policy)(x)
    else:
        x = _conv_bn(x, stem_width, "stem", policy, activation)
    block = dict(scale=stem == "conv", initializer=DiracPrefix() if stem == "whiten" else "glorot_uniform")
    for i, width in enumerate(blocks, start=1):
        x = _conv_bn(x, width, f"block{i}a", policy, activation, pool=True, **block)
        x = _conv_bn(x, width, f"block{i}b", policy, activation, **block)
    x = layers.GlobalMaxPooling2D(name="pool", dtype=policy)(x)
    head_init = (
        "glorot_uniform" if stem == "conv" else keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform")
    )
    x = layers.Dense(NUM_CLASSES, use_bias=False, kernel_initializer=head_init, name="logits", dtype=policy)(
        x
    )
    x = layers.Rescaling(logit_scale, name="temperature", dtype=policy)(x)
    outputs = layers.Activation("softmax", name="probabilities", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="cifar10_classifier")


def activation_of(model: keras.Model) -> str:
    """The activation a built network was made with (read from its stem's activation layer)."""
    for activation in ACTIVATIONS:
        if any(layer.name == f"stem_{activation}" for layer in model.layers):
            return activation
    raise ValueError(f"{model.name} has no stem activation layer named stem_<{'|'.join(ACTIVATIONS)}>")


def stem_of(model: keras.Model) -> str:
    """The stem a built network was made with: ``"whiten"`` or ``"conv"``."""
    return "whiten" if any(layer.name == "stem_whiten" for layer in model.layers) else "conv"


def widths_of(model: keras.Model) -> tuple[int, ...]:
    """The width tuple ``make_model`` was called with, read back from a built model."""
    stem = model.get_layer("stem_whiten" if stem_of(model) == "whiten" else "stem_conv")
    blocks = [
        layer for layer in model.layers if layer.name.startswith("block") and layer.name.endswith("a_conv")
    ]
    return (stem.filters, *(layer.filters for layer in blocks))


def architecture_of(model: keras.Model) -> dict:
    """The ``make_model`` arguments that rebuild ``model``'s network (not its dtype or scale)."""
    return dict(widths=widths_of(model), activation=activation_of(model), stem=stem_of(model))


def whitening_kernel(images: np.ndarray) -> np.ndarray:
    """The whitening stem's kernel [2, 2, 3, WHITEN_WIDTH] for uint8 ``images`` (a few thousand
    training images): the standardised images' 2x2 patches have covariance C = V diag(l) V^T;
    the kernel's filters are V's columns scaled by 1/sqrt(l + eps), largest l first, then their
    negatives, so after the stem (before its activation) every direction has unit variance."""
    x = (images.astype("float64") - CIFAR10_MEAN) / CIFAR10_STD
    n, height, width, channels = x.shape
    patches = np.stack(
        [
            x[:, i : height - WHITEN_PATCH + 1 + i, j : width - WHITEN_PATCH + 1 + j]
            for i in range(WHITEN_PATCH)
            for j in range(WHITEN_PATCH)
        ],
        axis=3,
    ).reshape(-1, WHITEN_PATCH * WHITEN_PATCH * channels)  # (i, j, channel) order, as the kernel's
    covariance = patches.T @ patches / len(patches)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    order = np.argsort(eigenvalues)[::-1]
    filters = eigenvectors[:, order] / np.sqrt(eigenvalues[order] + WHITEN_EPSILON)
    kernel = np.concatenate([filters, -filters], axis=1)
    return kernel.reshape(WHITEN_PATCH, WHITEN_PATCH, channels, WHITEN_WIDTH).astype("float32")


def set_whitening(model: keras.Model, images: np.ndarray) -> None:
    """Set a ``"whiten"``-stem model's stem kernel from ``images`` (``whitening_kernel``)."""
    layer = model.get_layer("stem_whiten")
    layer.kernel.assign(keras.ops.cast(whitening_kernel(images), layer.kernel.dtype))


def _conv_bn(
    x,
    width: int,
    name: str,
    policy: str,
    activation: str,
    pool: bool = False,
    scale: bool = True,
    initializer="glorot_uniform",
):
    x = layers.Conv2D(
        width,
        3,
        padding="same",
        use_bias=False,
        kernel_initializer=initializer,
        name=f"{name}_conv",
        dtype=policy,
    )(x)
    if pool:
        x = layers.MaxPooling2D(2, name=f"{name}_pool", dtype=policy)(x)
    x = layers.BatchNormalization(
        momentum=BN_MOMENTUM, epsilon=1e-5, scale=scale, name=f"{name}_bn", dtype=policy
    )(x)
    return layers.Activation(activation, name=f"{name}_{activation}", dtype=policy)(x)
