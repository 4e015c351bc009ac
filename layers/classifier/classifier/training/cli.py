"""The ``python -m classifier`` commands behind ``make train`` and ``make evaluate``.

train     fit a model on a zip of class folders or a CIFAR-10 tarball; resumable
export    turn a trained ``.keras`` model into ``model.tflite`` + ``card.json``
evaluate  print a model's card figures (accuracy, per class, confusion, calibration)
"""

import argparse
import json
import sys
import time
from pathlib import Path

DEFAULT_TRAIN_DATA = "../shared/data/cifar10-train.zip"
DEFAULT_TEST_DATA = "../shared/data/cifar10-test.zip"
RECIPES = ("sgd", "airbench", "finetune")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m classifier", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train or fine-tune; resumes from --checkpoints")
    train.add_argument(
        "--data", default=DEFAULT_TRAIN_DATA, help="zip of class folders, CIFAR-10 tarball or s3:// URI"
    )
    train.add_argument("--out", required=True, help="folder for model.keras and training.json")
    train.add_argument("--checkpoints", help="checkpoint folder (default: OUT/checkpoints)")
    train.add_argument("--epochs", type=int, help="epochs (default: the recipe's)")
    train.add_argument("--budget-seconds", type=float, help="size the epochs to this time budget")
    train.add_argument(
        "--init",
        help="fine-tune from this .keras model instead of training from scratch; "
        "with narrower --widths, its most important channels (classifier.training.pruning)",
    )
    train.add_argument(
        "--teacher",
        help="distil from this .keras model (or comma-separated models: their mean): "
        "its probabilities join the targets; a .npy member is a teacher's flip-averaged "
        "probabilities [N, 10] for the --data images in their order, computed elsewhere",
    )
    train.add_argument(
        "--distillation",
        type=float,
        default=0.7,
        help="weight of the teacher's probabilities in the targets (default 0.7, with --teacher)",
    )
    train.add_argument(
        "--teacher-views",
        choices=("fixed", "augmented", "augmented-flip"),  # trainer.TEACHER_VIEWS, without importing Keras
        help="fixed (the default): the teacher's flip-averaged probabilities for the clean images, "
        "once; augmented: its probabilities for the exact images the student sees, every epoch "
        "(.keras teachers only, and again when resuming); augmented-flip: the same, each averaged "
        "with its probabilities for the mirror image (twice the teacher's cost)",
    )
    train.add_argument("--mixup", type=float, help="mixup Beta concentration (0 = off, the default)")
    train.add_argument(
        "--label-smoothing",
        type=float,
        help="label smoothing of the targets, teacher's included (default 0.2; 0 = the targets as they are)",
    )
    train.add_argument("--limit", type=int, help="use a random N of the images (smoke tests)")
    train.add_argument("--policy", default="float32", help="Keras dtype policy, e.g. mixed_bfloat16 on a GPU")
    train.add_argument("--widths", help="comma-separated stem and block widths")
    train.add_argument("--activation", help="gelu (the default) or relu (has int8 kernels)")
    train.add_argument("--batch-size", type=int)
    train.add_argument("--seed", type=int)
    train.add_argument("--cutout", type=int, help="cutout square side in pixels (0 = off)")
    train.add_argument("--peak-lr", type=float, help="peak learning rate of the one-cycle schedule")
    train.add_argument(
        "--recipe",
        choices=RECIPES,
        help="hyper-parameter defaults: airbench (whitening stem, lookahead; HyperParameters.airbench) "
        "or sgd (the first baselines'); default: sgd, or finetune with --init",
    )

    export = commands.add_parser("export", help="write model.tflite and card.json for a trained model")
    export.add_argument("--model", required=True, help="model.keras from train")
    export.add_argument("--out", required=True)
    export.add_argument("--test-data", default=DEFAULT_TEST_DATA)
    export.add_argument(
        "--quantization", default="dynamic", choices=["dynamic", "float16", "float32", "int8"]
    )
    export.add_argument(
        "--calibration-data",
        default=DEFAULT_TRAIN_DATA,
        help="int8 only: a training zip whose images fix the activation ranges (never the test set)",
    )
    export.add_argument("--version", help="model version (default: a UTC timestamp)")
    export.add_argument("--parent", help="parent model version")

    evaluate = commands.add_parser("evaluate", help="print a model's accuracy, per class, confusion, ECE")
    evaluate.add_argument("--model", required=True, help=".tflite or .keras file")
    evaluate.add_argument("--data", default=DEFAULT_TEST_DATA)
    evaluate.add_argument("--tta", action="store_true", help="average with the horizontal flip")

    args = parser.parse_args(argv)
    return {"train": _train, "export": _export, "evaluate": _evaluate}[args.command](args)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _train(args) -> int:
    import keras
    import numpy as np

    from classifier.datasets import load_dataset
    from classifier.training.pruning import SAMPLE_IMAGES, prune_channels
    from classifier.training.network import widths_of
    from classifier.training.trainer import HyperParameters, save_run, train

    started = time.perf_counter()
    data = load_dataset(args.data, "train")  # nosec B615  # classifier.datasets, not Hugging Face
    teacher = [_load_teacher(path) for path in args.teacher.split(",")] if args.teacher else None
    if args.limit:
        kept = data.sample_indices(args.limit)
        if teacher is not None:  # precomputed probabilities follow their images
            teacher = [t[kept] if isinstance(t, np.ndarray) and len(t) == len(data) else t for t in teacher]
        data = data.subset(kept)
    _log(
        f"loaded {len(data)} images from {args.data} in {time.perf_counter() - started:.1f}s "
        f"({len(data.rejected)} rejected); backend {keras.backend.backend()}"
    )
    overrides = {"dtype_policy": args.policy}
    for field, value in (
        ("epochs", args.epochs),
        ("batch_size", args.batch_size),
        ("seed", args.seed),
        ("peak_learning_rate", args.peak_lr),
        ("cutout", args.cutout),
        ("activation", args.activation),
        ("teacher_views", args.teacher_views),
        ("mixup", args.mixup),
        ("label_smoothing", args.label_smoothing),
    ):
        if value is not None:
            overrides[field] = value
    if args.widths:
        overrides["widths"] = tuple(int(w) for w in args.widths.split(","))
    if teacher is not None:
        overrides["distillation"] = args.distillation
    init = keras.models.load_model(args.init) if args.init else None
    if init is not None and "widths" in overrides and overrides["widths"] != widths_of(init):
        _log(f"pruning {args.init} from widths {widths_of(init)} to {overrides['widths']}")
        init = prune_channels(init, overrides["widths"], data.sample(SAMPLE_IMAGES).images)
    recipe = args.recipe or ("finetune" if init else "sgd")
    hp = {"sgd": HyperParameters, "airbench": HyperParameters.airbench, "finetune": HyperParameters.finetune}[
        recipe
    ](**overrides)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def progress(row: dict) -> None:
        _log(
            f"epoch {row['epoch']}/{row['epochs']}  loss {row['loss']:.4f}  accuracy {row['accuracy']:.4f}  "
            f"{row['seconds']:.1f}s  about {row['seconds_left']:.0f}s left"
        )

    result = train(
        data.images,
        data.labels,
        args.checkpoints or out / "checkpoints",
        hp,
        init_model=init,
        teacher=teacher,
        budget_seconds=args.budget_seconds,
        progress=progress,
    )
    save_run(
        result,
        out,
        data,
        source=str(args.data),
        parent=args.init,
        command=" ".join(["python -m classifier", *sys.argv[1:]]),
        teacher=args.teacher,
    )
    _log(f"saved {out / 'model.keras'} after {result.seconds:.0f}s of training")
    return 0


def _load_teacher(path: str):
    import keras
    import numpy as np

    if path.endswith(".npy"):
        return np.load(path, allow_pickle=False)
    return keras.models.load_model(path)


def _export(args) -> int:
    from classifier.training.export import export_model

    card = export_model(
        args.model,
        args.out,
        test_data=args.test_data,
        quantization=args.quantization,
        version=args.version,
        parent=args.parent,
        calibration_data=args.calibration_data if args.quantization == "int8" else None,
    )
    print(json.dumps({k: card[k] for k in ("version", "accuracy", "tflite_bytes", "sha256")}, indent=1))
    return 0


def _evaluate(args) -> int:
    from classifier.datasets import load_dataset
    from classifier.evaluation import evaluate, format_report, predictor_for

    import classifier.training.network  # noqa: F401  registers the initializer whitened .keras models name

    data = load_dataset(args.data, "test")  # nosec B615  # classifier.datasets, not Hugging Face
    report = evaluate(predictor_for(args.model), data.images, data.labels, tta=args.tta)
    print(format_report(report))
    return 0
