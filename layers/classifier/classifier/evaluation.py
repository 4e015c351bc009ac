"""Model evaluation: accuracy overall and per class, confusion matrix, expected calibration error,
optionally with horizontal-flip test-time augmentation. numpy only; any ``predict`` callable
that maps a uint8 batch to probabilities can be evaluated (LiteRT, Keras)."""

from collections.abc import Callable
from pathlib import Path

import numpy as np

from classifier.labels import LABELS, NUM_CLASSES

Predict = Callable[[np.ndarray], np.ndarray]
ECE_BINS = 15


def predict_batched(
    predict: Predict, images: np.ndarray, batch_size: int = 500, tta: bool = False
) -> np.ndarray:
    """Probabilities for all ``images``, ``batch_size`` at a time; with ``tta`` the mean of the
    image and its mirror image."""
    chunks = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        probabilities = predict(batch)
        if tta:
            probabilities = (probabilities + predict(np.ascontiguousarray(batch[:, :, ::-1]))) / 2
        chunks.append(probabilities)
    return np.concatenate(chunks)


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(error)


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T) computed from probabilities (log p equals the logits up to a constant)."""
    scaled = np.log(np.clip(probabilities, 1e-12, 1.0)) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of ``labels`` (Guo et al.,
    2017): one scalar, so it changes confidence but never the predicted class."""
    grid = np.exp(np.linspace(np.log(0.2), np.log(5.0), 400))
    rows = np.arange(len(labels))
    losses = [-np.log(apply_temperature(probabilities, t)[rows, labels] + 1e-12).mean() for t in grid]
    return float(grid[int(np.argmin(losses))])


def calibrate(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    """Fit a softmax temperature on the even-indexed half of the test set; report the expected
    calibration error on the other half before and after."""
    fit, held_out = np.arange(0, len(labels), 2), np.arange(1, len(labels), 2)
    temperature = fit_temperature(probabilities[fit], labels[fit])
    return {
        "temperature": temperature,
        "fitted_on": f"even-indexed half of the test set ({len(fit)} images)",
        "ece_held_out_before": expected_calibration_error(probabilities[held_out], labels[held_out]),
        "ece_held_out_after": expected_calibration_error(
            apply_temperature(probabilities[held_out], temperature), labels[held_out]
        ),
    }


def metrics(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    return {
        "images": int(len(labels)),
        "accuracy": float((predicted == labels).mean()),
        "per_class": {label: float(per_class[i]) for i, label in enumerate(LABELS)},
        "confusion_matrix": confusion.tolist(),  # rows: true label, columns: predicted
        "ece": expected_calibration_error(probabilities, labels),
        "mean_confidence": float(probabilities.max(axis=1).mean()),
    }


def evaluate(predict: Predict, images: np.ndarray, labels: np.ndarray, tta: bool = False) -> dict:
    return metrics(predict_batched(predict, images, tta=tta), labels)


def predictor_for(path: str | Path, num_threads: int | None = None) -> Predict:
    """A predict callable for a ``.tflite`` (LiteRT) or ``.keras`` (Keras) model file."""
    path = Path(path)
    if path.suffix == ".tflite":
        import os

        from classifier.litert import TFLiteModel

        return TFLiteModel.from_path(path, num_threads=num_threads or os.cpu_count() or 1).predict
    import keras

    # compile=False: inference needs no optimizer, and a training checkpoint's names a schedule
    # from the trainer, which a process that only evaluates has not imported
    model = keras.models.load_model(path, compile=False)
    return lambda batch: model.predict(batch, batch_size=len(batch), verbose=0)


def format_report(report: dict) -> str:
    lines = [
        f"images            {report['images']}",
        f"accuracy          {report['accuracy']:.4f}",
        f"ECE ({ECE_BINS} bins)     {report['ece']:.4f}",
        f"mean confidence   {report['mean_confidence']:.4f}",
        "per class:",
        *(f"  {label:<11} {accuracy:.4f}" for label, accuracy in report["per_class"].items()),
        "confusion matrix (rows: true, columns: predicted):",
        "  " + " ".join(f"{label[:5]:>5}" for label in LABELS),
        *(
            "  " + " ".join(f"{n:>5}" for n in row) + f"  {LABELS[i]}"
            for i, row in enumerate(report["confusion_matrix"])
        ),
    ]
    return "\n".join(lines)
