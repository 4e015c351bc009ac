"""Can a decision rule lift the weakest class? Each class gets an additive offset on its log
probability, fitted on a random half of the test set to maximise top-1 plus ``FLOOR_WEIGHT``
times the lowest class's accuracy, and judged on the other half; ``SPLITS`` such splits give a
mean and a spread, so what is printed is what the offsets do on images they were not fitted on.
The question is whether the 85% floor per class can be met by moving decision boundaries (cat
and dog confusions traded between the two) instead of by a better network, and at what cost in
top-1.

    python -m bench.class_floor                    # the shipped and the kept models, through LiteRT
    python -m bench.class_floor models/x/model.tflite --splits 50

numpy and LiteRT only; about 15 s for the four kept models. What it found is in docs/model.md
("The road to 93%"): the served model carries no offsets.
"""

import argparse
import os
from pathlib import Path

import numpy as np

from bench.frontier import TEST_DATA
from bench.model import REPO
from infra.bootstrap import kept_models

FLOOR_WEIGHT = 0.3  # objective: top-1 + FLOOR_WEIGHT * lowest class accuracy
STEPS = (-0.3, -0.1, 0.1, 0.3)  # offset moves tried per class and round, in log-probability units
MAX_ROUNDS = 40
SPLITS = 20  # random halves the offsets are fitted on, each judged on its complement
FLOOR = 0.85  # the accuracy every class is to reach


def class_accuracies(log_probabilities: np.ndarray, labels: np.ndarray, offsets: np.ndarray) -> tuple:
    """(accuracy of each class, top-1) of argmax(log p + offsets)."""
    predicted = (log_probabilities + offsets).argmax(axis=1)
    classes = log_probabilities.shape[1]
    per_class = np.array([(predicted[labels == c] == c).mean() for c in range(classes)])
    return per_class, float((predicted == labels).mean())


def fit_offsets(
    log_probabilities: np.ndarray,
    labels: np.ndarray,
    floor_weight: float = FLOOR_WEIGHT,
    max_rounds: int = MAX_ROUNDS,
) -> np.ndarray:
    """Per-class offsets by greedy coordinate search from zero: each round takes every single
    move in ``STEPS`` that raises top-1 + ``floor_weight`` * lowest class accuracy on these
    images, and stops when no move does. Deterministic; never worse than no offsets here."""

    def objective(offsets: np.ndarray) -> float:
        per_class, top1 = class_accuracies(log_probabilities, labels, offsets)
        return top1 + floor_weight * float(per_class.min())

    offsets = np.zeros(log_probabilities.shape[1])
    best = objective(offsets)
    for _ in range(max_rounds):
        improved = False
        for c in range(len(offsets)):
            for step in STEPS:
                trial = offsets.copy()
                trial[c] += step
                value = objective(trial)
                if value > best + 1e-12:
                    best, offsets, improved = value, trial, True
        if not improved:
            break
    return offsets


def split_trials(probabilities: np.ndarray, labels: np.ndarray, splits: int = SPLITS, seed: int = 0) -> dict:
    """Offsets fitted on a random half and judged on the other, ``splits`` times: the mean and
    standard deviation of the change in top-1 and in the lowest class's accuracy on the judged
    halves, how often the lowest class is at least ``FLOOR`` before and after, and the mean
    offsets."""
    log_probabilities = np.log(np.clip(probabilities, 1e-12, 1.0))
    rng = np.random.default_rng(seed)
    top1_change, lowest_before, lowest_after, offsets = [], [], [], []
    for _ in range(splits):
        order = rng.permutation(len(labels))
        fit, judged = order[: len(labels) // 2], order[len(labels) // 2 :]
        fitted = fit_offsets(log_probabilities[fit], labels[fit])
        before, top1_before = class_accuracies(
            log_probabilities[judged], labels[judged], np.zeros(len(fitted))
        )
        after, top1_after = class_accuracies(log_probabilities[judged], labels[judged], fitted)
        top1_change.append(top1_after - top1_before)
        lowest_before.append(before.min())
        lowest_after.append(after.min())
        offsets.append(fitted)
    top1_change, lowest_before, lowest_after = map(np.array, (top1_change, lowest_before, lowest_after))
    return {
        "top1_change": (float(top1_change.mean()), float(top1_change.std())),
        "lowest_change": (
            float((lowest_after - lowest_before).mean()),
            float((lowest_after - lowest_before).std()),
        ),
        "lowest": (float(lowest_before.mean()), float(lowest_after.mean())),
        "floor_met": (float((lowest_before >= FLOOR).mean()), float((lowest_after >= FLOOR).mean())),
        "mean_offsets": np.mean(offsets, axis=0),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="*", help=".tflite files (default: the shipped and the kept ones)")
    parser.add_argument("--splits", type=int, default=SPLITS, help="random halves to fit on")
    args = parser.parse_args(argv)

    from classifier.cards import tflite_path
    from classifier.datasets import load_dataset
    from classifier.evaluation import predict_batched
    from classifier.labels import LABELS
    from classifier.litert import TFLiteModel

    paths = args.models or [tflite_path(directory) for directory in kept_models()]
    test = load_dataset(TEST_DATA, "test")  # nosec B615  # classifier.datasets, not Hugging Face
    for path in map(Path, paths):
        model = TFLiteModel(path.read_bytes(), num_threads=os.cpu_count() or 1)
        probabilities = predict_batched(model.predict, test.images)
        trials = split_trials(probabilities, test.labels, args.splits)
        offsets = ", ".join(f"{label} {offset:+.2f}" for label, offset in zip(LABELS, trials["mean_offsets"]))
        print(f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
        print(
            f"  on the judged halves ({args.splits} random splits): top-1 "
            f"{trials['top1_change'][0]:+.2%} (sd {trials['top1_change'][1]:.2%}), lowest class "
            f"{trials['lowest'][0]:.1%} -> {trials['lowest'][1]:.1%} "
            f"({trials['lowest_change'][0]:+.1%}, sd {trials['lowest_change'][1]:.1%}), "
            f"every class >= {FLOOR:.0%} in {trials['floor_met'][0]:.0%} -> {trials['floor_met'][1]:.0%} of them"
        )
        print(f"  mean offsets: {offsets}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
