"""Per-prediction metrics, through Powertools (EMF log lines that CloudWatch turns into metrics).

For every answered prediction: its class (``PredictionsByClass``, dimensions ``ModelVersion`` and
``Label``), its confidence, whether it is under the low-confidence threshold, and its decode and
inference milliseconds (dimension ``ModelVersion``). Names and dimensions are
:mod:`classifier.metrics`'. A batch is one EMF document per class present plus one for the rest,
not one per image. :class:`EphemeralMetrics` keeps these apart from the function's own
``Metrics`` (whose metrics carry the ``service`` dimension only, so alarms can name them).
"""

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from classifier.metrics import LABEL, MODEL_VERSION, Metric


def prediction_values(answers: Iterable[dict[str, Any]], low_confidence: float) -> dict[str, Any]:
    """What the answers of one request publish: class counts and per-prediction values."""
    answered = [answer for answer in answers if "label" in answer]
    return {
        "classes": Counter(answer["label"] for answer in answered),
        Metric.CONFIDENCE: [answer["confidence"] for answer in answered],
        Metric.LOW_CONFIDENCE: [1 if answer["confidence"] < low_confidence else 0 for answer in answered],
        Metric.DECODE_MS: [answer["timings_ms"]["decode"] for answer in answered],
        Metric.INFERENCE_MS: [answer["timings_ms"]["inference"] for answer in answered],
    }


_UNITS = {
    Metric.CONFIDENCE: MetricUnit.NoUnit,
    Metric.LOW_CONFIDENCE: MetricUnit.Count,
    Metric.DECODE_MS: MetricUnit.Milliseconds,
    Metric.INFERENCE_MS: MetricUnit.Milliseconds,
}


def publish_predictions(answers: Iterable[dict[str, Any]], model_version: str, low_confidence: float) -> None:
    """Emit the per-prediction metrics of one request's answers (none if nothing was classified)."""
    values = prediction_values(answers, low_confidence)
    if not values["classes"]:
        return
    for label, count in values["classes"].items():
        by_class = _metrics(model_version)
        by_class.add_dimension(name=LABEL, value=label)
        by_class.add_metric(name=Metric.PREDICTED_CLASS, unit=MetricUnit.Count, value=count)
        by_class.flush_metrics()
    quality = _metrics(model_version)
    for name, unit in _UNITS.items():
        for value in values[name]:
            quality.add_metric(name=name, unit=unit, value=value)
    quality.flush_metrics()


def publish_counts(counts: dict[Metric, float], model_version: str) -> None:
    """Emit counts with the ``ModelVersion`` dimension (feedback agreement)."""
    grouped: dict[str, float] = defaultdict(float)
    for name, value in counts.items():
        grouped[name] += value
    metrics = _metrics(model_version)
    for name, value in grouped.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    metrics.flush_metrics()


def _metrics(model_version: str) -> EphemeralMetrics:
    metrics = EphemeralMetrics()
    metrics.add_dimension(name=MODEL_VERSION, value=model_version)
    return metrics
