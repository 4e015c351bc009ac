"""Are the shipped batch-norm statistics stale? During training each batch norm keeps an
exponential average of its batch statistics with momentum ``BN_MOMENTUM`` (0.6 in Keras's sense:
a horizon of two or three batches), of augmented images, under weights that were still moving;
and after lookahead the final weights are a slow average that no batch ever ran through.
``recalibrate`` replaces the averages with plain means over many clean training images under the
final weights, as ``torch.optim.swa_utils.update_bn`` does after weight averaging, and this
prints each model's test accuracy before and after.

    python -m bench.batchnorm_recalibration                     # the shipped and the kept models
    python -m bench.batchnorm_recalibration run/model.keras --images 10000

Measured (docs/model.md): within 0.1 point either way for the shipped network, the kept wide
one and a 3-epoch lookahead run, so recalibration is not part of training. Needs TensorFlow.
"""

import argparse
import time

import numpy as np

from bench.model import BASELINE, REPO
from infra.devdata import SHARED_DATA as DATA

RECALIBRATION_BATCH = 500  # images per forward pass; a batch variance's bias is then 1/500


def batch_norms(model) -> list:
    import keras

    return [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]


def recalibrate(model, images: np.ndarray, batch_size: int = RECALIBRATION_BATCH) -> int:
    """Set every batch norm's moving mean and variance in ``model`` to their means over
    ``images`` (uint8, as the model takes them), in place: each batch norm sees the batch
    statistics of the layers before it and keeps the size-weighted mean of its own batch means
    and batch variances. Weights do not change. Returns the number of batch norms set."""
    if len(images) == 0:
        raise ValueError("recalibration needs at least one image")
    norms = batch_norms(model)
    momenta = [norm.momentum for norm in norms]
    seen = 0
    try:
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]
            # moving = m * moving + (1 - m) * batch: with m = seen / (seen + n) the moving value
            # is the mean over all images so far, each batch weighted by its size.
            for norm in norms:
                norm.momentum = seen / (seen + len(batch))
            model(batch, training=True)
            seen += len(batch)
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
    return len(norms)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="*", help=".keras files (default: the shipped and the kept ones)")
    parser.add_argument("--images", default="10000,50000", help="comma-separated training-image counts")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import keras

    import classifier.training.network  # noqa: F401  registers the initializer whitened models name
    from classifier.datasets import load_dataset

    paths = args.models or [BASELINE / "model.keras", *sorted((REPO / "models").glob("*/model.keras"))]
    train_set = load_dataset(DATA / "cifar10-train.zip")  # nosec B615  # classifier.datasets
    test = load_dataset(DATA / "cifar10-test.zip", "test")  # nosec B615  # classifier.datasets

    def accuracy(model) -> float:
        probabilities = model.predict(test.images, batch_size=RECALIBRATION_BATCH, verbose=0)
        return float((probabilities.argmax(axis=1) == test.labels).mean())

    print(f"{'model':<60} {'images':>7} {'top-1':>7} {'seconds':>8}")
    for path in paths:
        print(f"{str(path):<60} {'as is':>7} {accuracy(keras.models.load_model(path)):>7.2%}", flush=True)
        order = np.random.default_rng(args.seed).permutation(len(train_set.images))
        for count in (int(c) for c in args.images.split(",")):
            model = keras.models.load_model(path)
            started = time.perf_counter()
            recalibrate(model, train_set.images[np.sort(order[:count])])
            seconds = time.perf_counter() - started
            print(f"{str(path):<60} {count:>7} {accuracy(model):>7.2%} {seconds:>8.0f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
