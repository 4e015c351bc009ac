"""The Keras 3 network. Backend-neutral: no ``tf.`` calls, so it trains under JAX or TensorFlow.

Input is ``uint8`` [N, 32, 32, 3]; the first layers cast and standardise with the CIFAR-10
per-channel mean and standard deviation, stored in the model; the output is a softmax over
``classifier.labels.LABELS`` in order. A caller never scales pixels.

Architecture: an airbench-style VGG net (Jordan, 2024, "94% on CIFAR-10 in 3.29 seconds on a
single GPU"): a 3x3 stem, then three blocks of conv -> max-pool -> BN -> act -> conv -> BN -> act,
a global max pool and a linear head whose logits are scaled down (a temperature that speeds
early training). The activation is GELU (the shipped networks) or ReLU: ReLU has int8 kernels
in LiteRT, so a ReLU network can be quantised to full int8 (``bench.candidates`` measures what
that buys on one thread).
"""

import keras
from keras import layers

from classifier.labels import NUM_CLASSES
from classifier.limits import CHANNELS, IMAGE_SIZE

# CIFAR-10 training-set statistics, in uint8 pixel units.
CIFAR10_MEAN = (125.307, 122.950, 113.865)
CIFAR10_STD = (62.993, 62.089, 66.705)

# stem, block 1, block 2, block 3: the shipped baseline's, 105M multiply-adds, 2.3 ms for one image
# on one CPU thread. The first baseline's (32, 64, 256, 256) took 3.2 to 3.9 ms (training.py).
DEFAULT_WIDTHS = (32, 64, 192, 192)
LOGIT_SCALE = 1 / 9
BN_MOMENTUM = 0.6
ACTIVATIONS = ("gelu", "relu")


def make_model(
    widths: tuple[int, ...] = DEFAULT_WIDTHS,
    dtype_policy: str | None = None,
    logit_scale: float = LOGIT_SCALE,
    activation: str = "gelu",
) -> keras.Model:
    """Build the classifier. ``dtype_policy`` (e.g. ``"mixed_bfloat16"``) applies to every layer
    but the input cast and the softmax, which stay float32. ``logit_scale`` multiplies the logits
    before the softmax: ``LOGIT_SCALE`` for training, divided by a fitted temperature at export.
    ``activation`` is one of ``ACTIVATIONS``; its layers are named ``<conv>_<activation>``."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, not {activation!r}")
    policy = dtype_policy or "float32"
    stem, *blocks = widths
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, CHANNELS), dtype="uint8", name="image")
    x = layers.Normalization(
        mean=CIFAR10_MEAN, variance=[s * s for s in CIFAR10_STD], name="standardise", dtype="float32"
    )(inputs)
    x = _conv_bn(x, stem, "stem", policy, activation)
    for i, width in enumerate(blocks, start=1):
        x = _conv_bn(x, width, f"block{i}a", policy, activation, pool=True)
        x = _conv_bn(x, width, f"block{i}b", policy, activation)
    x = layers.GlobalMaxPooling2D(name="pool", dtype=policy)(x)
    x = layers.Dense(NUM_CLASSES, use_bias=False, name="logits", dtype=policy)(x)
    x = layers.Rescaling(logit_scale, name="temperature", dtype=policy)(x)
    outputs = layers.Activation("softmax", name="probabilities", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="cifar10_classifier")


def activation_of(model: keras.Model) -> str:
    """The activation a built network was made with (read from its stem's activation layer)."""
    for activation in ACTIVATIONS:
        if any(layer.name == f"stem_{activation}" for layer in model.layers):
            return activation
    raise ValueError(f"{model.name} has no stem activation layer named stem_<{'|'.join(ACTIVATIONS)}>")


def _conv_bn(x, width: int, name: str, policy: str, activation: str, pool: bool = False):
    x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"{name}_conv", dtype=policy)(x)
    if pool:
        x = layers.MaxPooling2D(2, name=f"{name}_pool", dtype=policy)(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=1e-5, name=f"{name}_bn", dtype=policy)(x)
    return layers.Activation(activation, name=f"{name}_{activation}", dtype=policy)(x)
