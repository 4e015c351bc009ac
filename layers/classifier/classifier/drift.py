"""Is the traffic still what the model was made for? The figures a monitoring window is judged by.

**Drift score:** the Jensen-Shannon distance (base 2, so in [0, 1]) between the classes the model
predicted in the window and the classes it predicts on the fixed base test set (its reference,
from its card). 0 means the same mix; 1 means no class in common. The threshold is
:data:`DEFAULT_DRIFT_THRESHOLD` (0.1), the usual default for this distance; a window drifts when
the distance exceeds it.

**Minimum window:** a window of *n* predictions drawn from the reference itself is not at distance
0: sampling alone gives a median distance of 0.125 at n = 100, 0.070 at 300 and 0.055 at 500, and a
99th percentile of 0.206, 0.116 and 0.090 (2,000 simulated windows each, the shipped baseline's
reference over 10 classes). Below :data:`DEFAULT_MIN_WINDOW` (500) predictions, noise alone would
cross 0.1 in more than 1% of windows, so the report says "not enough data" instead of a verdict.

**Confidence:** the window's mean top-1 confidence and its share of predictions under the
low-confidence threshold, against the same figures on the base test set. Falling confidence is
often the first sign of inputs unlike CIFAR-10, before any class mix shifts.

**Feedback accuracy:** of the window's predictions that received feedback, the share the feedback
confirmed, with its count (a handful of corrections is not an accuracy).
"""

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from classifier.labels import LABELS, NUM_CLASSES
from classifier.settings import DEFAULT_DRIFT_THRESHOLD, DEFAULT_LOW_CONFIDENCE, DEFAULT_MIN_WINDOW

HISTOGRAM_BINS = 20  # confidence histogram of the reference: bins of 0.05 over [0, 1]
METRIC = "jensen_shannon_distance"


def js_distance(p: Sequence[float], q: Sequence[float]) -> float:
    """Jensen-Shannon distance (base 2) between two distributions over the same classes."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / b[mask])))

    return math.sqrt(max(0.0, (kl(p, m) + kl(q, m)) / 2))


def reference_figures(probabilities: np.ndarray) -> dict[str, Any]:
    """What a model predicts on the base test set (``probabilities`` [N, 10]): its card's
    ``reference``, the baseline every monitoring window is compared with."""
    predicted = np.argmax(probabilities, axis=1)
    confidence = probabilities.max(axis=1)
    counts = np.bincount(predicted, minlength=NUM_CLASSES)
    histogram, _ = np.histogram(confidence, bins=HISTOGRAM_BINS, range=(0.0, 1.0))
    return {
        "images": int(len(predicted)),
        "class_distribution": dict(zip(LABELS, (counts / counts.sum()).round(6).tolist(), strict=True)),
        "mean_confidence": round(float(confidence.mean()), 6),
        "confidence_histogram": histogram.tolist(),  # counts per bin of 1/HISTOGRAM_BINS over [0, 1]
    }


def reference_of(card: dict) -> dict[str, Any]:
    """A card's reference; for a card made before references existed, the class distribution from
    its confusion matrix (columns: predicted classes) and its mean confidence."""
    if "reference" in card:
        return card["reference"]
    predicted = np.asarray(card["confusion_matrix"]).sum(axis=0)
    return {
        "images": int(predicted.sum()),
        "class_distribution": dict(zip(LABELS, (predicted / predicted.sum()).round(6).tolist(), strict=True)),
        "mean_confidence": card.get("mean_confidence"),
        "confidence_histogram": None,
    }


def share_under(histogram: Sequence[int] | None, threshold: float) -> float | None:
    """The share of a confidence histogram under ``threshold`` (to the nearest bin edge)."""
    if not histogram:
        return None
    edge = round(threshold * HISTOGRAM_BINS)
    return round(sum(histogram[:edge]) / sum(histogram), 6)


def window_figures(
    labels: Sequence[str],
    confidences: Sequence[float],
    feedback_correct: Sequence[bool],
    reference: dict[str, Any],
    *,
    threshold: float = DEFAULT_DRIFT_THRESHOLD,
    min_window: int = DEFAULT_MIN_WINDOW,
    low_confidence: float = DEFAULT_LOW_CONFIDENCE,
) -> dict[str, Any]:
    """The monitoring figures of one window: predicted labels and confidences of its predictions,
    and the verdicts of the feedback given on them (True: the prediction was right)."""
    counts = np.array([sum(label == name for label in labels) for name in LABELS], dtype=np.float64)
    total = int(counts.sum())
    observed = dict(
        zip(LABELS, (counts / total).round(6).tolist() if total else [0.0] * NUM_CLASSES, strict=True)
    )
    expected = [reference["class_distribution"][name] for name in LABELS]
    enough = total >= min_window
    value = round(js_distance(counts, expected), 6) if total else None
    return {
        "predictions": total,
        "class_distribution": observed,
        "reference_distribution": reference["class_distribution"],
        "drift": {
            "metric": METRIC,
            "value": value,
            "threshold": threshold,
            "min_predictions": min_window,
            "drifting": bool(enough and value is not None and value > threshold),
            "enough_data": enough,
            "note": None if enough else f"not enough data: {total} predictions, a verdict needs {min_window}",
        },
        "mean_confidence": round(float(np.mean(confidences)), 6) if total else None,
        "reference_mean_confidence": reference.get("mean_confidence"),
        "low_confidence_threshold": low_confidence,
        "low_confidence_share": round(sum(c < low_confidence for c in confidences) / total, 6)
        if total
        else None,
        "reference_low_confidence_share": share_under(reference.get("confidence_histogram"), low_confidence),
        "feedback": {
            "count": len(feedback_correct),
            "accuracy": round(sum(feedback_correct) / len(feedback_correct), 6) if feedback_correct else None,
        },
    }
