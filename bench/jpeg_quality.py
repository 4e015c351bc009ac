"""Does JPEG cap accuracy? The shared images are JPEG at quality 75 with 4:2:0 chroma subsampling
(their quantisation tables are libjpeg's at 75; the colour is stored at 16x16 for a 32x32 image),
and the original lossless arrays are not here. So this measures the slope instead: the same
network, trained from scratch with the same recipe and budget on the images as shipped and on
re-encodes at lower qualities, each tested on the test set at its own quality; and the shipped
model on test re-encodes. How fast accuracy falls below 75 bounds what 75 costs against lossless.

    python -m bench.jpeg_quality                      # 3 trainings of --epochs each (resumable)
    python -m bench.jpeg_quality --epochs 2 --limit 5000   # a quick look
    python -m bench.jpeg_quality --epochs 0           # only the shipped model on re-encodes
    python -m bench.jpeg_quality --recipe airbench --epochs 10 --policy mixed_bfloat16   # the fast recipe

Each training checkpoints under ``--runs`` after every epoch, so a killed run started again
continues. Needs TensorFlow (the training environment).
"""

import argparse
import io
import os
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from bench.model import REPO
from infra.devdata import SHARED_DATA as DATA

QUALITIES = (None, 50, 30)  # None: the images as shipped (quality 75, 4:2:0)


def _encode(image: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality, subsampling="4:2:0")
    return buffer.getvalue()


def reencode(images: np.ndarray, quality: int | None) -> np.ndarray:
    """``images`` (uint8 [N, 32, 32, 3]) through a JPEG encode and decode at ``quality`` (4:2:0,
    as the shipped files); unchanged for None."""
    if quality is None:
        return images
    out = np.empty_like(images)
    for i, image in enumerate(images):
        out[i] = np.asarray(Image.open(io.BytesIO(_encode(image, quality))).convert("RGB"))
    return out


def mean_bytes(images: np.ndarray, quality: int) -> float:
    """The mean file size of the first 500 ``images`` encoded at ``quality``."""
    return float(np.mean([len(_encode(image, quality)) for image in images[:500]]))


def shipped_bytes(path: Path) -> float:
    """The mean size of the image files in a zip."""
    with zipfile.ZipFile(path) as archive:
        return float(np.mean([info.file_size for info in archive.infolist() if not info.is_dir()]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--epochs", type=int, default=4, help="training epochs per quality (same recipe); 0: no training"
    )
    parser.add_argument("--limit", type=int, help="train on a random N of the training images")
    parser.add_argument(
        "--recipe", choices=("sgd", "airbench"), default="sgd", help="the trainer's recipe (HyperParameters)"
    )
    parser.add_argument("--policy", default="float32", help="Keras dtype policy, e.g. mixed_bfloat16")
    parser.add_argument(
        "--runs", type=Path, default=REPO / ".runs" / "jpeg-quality", help="checkpoint folder"
    )
    args = parser.parse_args(argv)
    import keras

    from classifier.cards import BASELINE_DIR
    from classifier.datasets import load_dataset
    from classifier.evaluation import predict_batched
    from classifier.litert import TFLiteModel
    from classifier.training.trainer import HyperParameters, train

    train_set = load_dataset(DATA / "cifar10-train.zip")
    if args.limit:
        train_set = train_set.sample(args.limit)
    test = load_dataset(DATA / "cifar10-test.zip", "test")  # nosec B615  # classifier.datasets
    shipped = TFLiteModel.from_path(BASELINE_DIR / "model.tflite", num_threads=os.cpu_count() or 1)

    print("\nThe shipped model (trained on quality 75) on test re-encodes:")
    for quality in (None, 90, 75, 50, 30, 10):
        images = reencode(test.images, quality)
        accuracy = (predict_batched(shipped.predict, images).argmax(1) == test.labels).mean()
        print(f"  {'as shipped' if quality is None else f'quality {quality}':<12} {accuracy:.2%}", flush=True)

    if not args.epochs:
        return 0
    recipe = HyperParameters.airbench if args.recipe == "airbench" else HyperParameters
    hp = recipe(epochs=args.epochs, dtype_policy=args.policy)
    print(
        f"\nTrained from scratch on each quality: {len(train_set)} images, {hp.epochs} epochs, "
        f"{args.recipe} recipe"
    )
    rows = []
    for quality in QUALITIES:
        name = "as-shipped" if quality is None else f"q{quality}"
        folder = name if args.recipe == "sgd" else f"{args.recipe}-{name}"  # a run resumes its own recipe
        started = time.perf_counter()
        result = train(
            reencode(train_set.images, quality),
            train_set.labels,
            args.runs / folder,
            hp,
            progress=lambda row, name=name: print(
                f"    {name} epoch {row['epoch']}/{row['epochs']}", flush=True
            ),
        )
        probabilities = result.model.predict(reencode(test.images, quality), batch_size=500, verbose=0)
        accuracy = float((probabilities.argmax(1) == test.labels).mean())
        size = (
            shipped_bytes(DATA / "cifar10-test.zip") if quality is None else mean_bytes(test.images, quality)
        )
        rows.append((name, size, accuracy))
        print(
            f"  {name:<11} {size:>5.0f} bytes/image  {accuracy:.2%}  ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
        keras.backend.clear_session()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
