"""The monitor: a window of prediction records against the serving model's reference.

One query of the ``ByCreatedAt`` index per window (``created_at`` between its start and end, only
the attributes the figures need), never a scan. The reference is the serving model's card
(``classifier.drift.reference_of``): the classes and confidence it gives the base test set. The
scheduled monitor writes each window's report to S3 (``monitoring/<window end>.json``) and
publishes its figures as metrics; ``GET /monitoring?hours=N`` answers the same figures for the
window ending now.
"""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from classifier import drift, storage
from classifier.api import records
from classifier.clock import utc_timestamp
from classifier.errors import InvalidParameterError
from classifier.metrics import Metric
from classifier.mlops import models
from classifier.settings import Settings

MAX_WINDOW_HOURS = 24 * 14  # GET /monitoring looks back at most two weeks
_FIELDS = ("label", "confidence", "feedback", "model_version")


def window_records(table: Any, start: str, end: str) -> list[dict[str, Any]]:
    """The records created in [start, end), oldest first: one paginated index query."""
    query: dict[str, Any] = {
        "IndexName": records.LIST_INDEX,
        "KeyConditionExpression": "#kind = :kind AND #created BETWEEN :start AND :end",
        "ExpressionAttributeNames": {
            "#kind": "kind",
            "#created": "created_at",
            **{f"#{f}": f for f in _FIELDS},
        },
        "ExpressionAttributeValues": {":kind": records.KIND, ":start": start, ":end": end},
        "ProjectionExpression": ", ".join(f"#{f}" for f in _FIELDS),
    }
    items = []
    while True:
        page = table.query(**query)
        items += [records.from_item(item) for item in page.get("Items", [])]
        if "LastEvaluatedKey" not in page:
            return items
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def parse_hours(value: str | None, default: float) -> float:
    if value is None or value == "":
        return default
    try:
        hours = float(value)
    except ValueError as error:
        raise InvalidParameterError(
            f"hours must be a number from 0 to {MAX_WINDOW_HOURS}, not {value!r}."
        ) from error
    if not 0 < hours <= MAX_WINDOW_HOURS:
        raise InvalidParameterError(
            f"hours must be a number over 0, at most {MAX_WINDOW_HOURS}, not {value!r}."
        )
    return hours


def report(
    predictions: Any,
    models_table: Any,
    s3: Any,
    settings: Settings,
    *,
    hours: float,
    now: float | None = None,
) -> dict[str, Any]:
    """The figures of the window of ``hours`` ending ``now`` (seconds since the epoch; default: now)."""
    end = datetime.now(UTC).timestamp() if now is None else now
    start = end - timedelta(hours=hours).total_seconds()
    window = window_records(predictions, utc_timestamp(start), utc_timestamp(end))
    version = models.current_version(models_table)
    card = models.get_model(models_table, s3, settings.artifacts_bucket, version)["card"]
    figures = drift.window_figures(
        [item["label"] for item in window],
        [item["confidence"] for item in window],
        [bool(item["feedback"]["correct"]) for item in window if isinstance(item.get("feedback"), dict)],
        drift.reference_of(card),
        threshold=settings.drift_threshold,
        min_window=settings.min_window_predictions,
        low_confidence=settings.low_confidence_threshold,
    )
    return {
        "window": {"start": utc_timestamp(start), "end": utc_timestamp(end), "hours": hours},
        "model_version": version,
        **figures,
    }


def save(s3: Any, bucket: str, figures: dict[str, Any]) -> str:
    """Write a window's report to ``monitoring/<window end>.json``; its key."""
    key = storage.monitoring_key(figures["window"]["end"])
    s3.put_object(
        Bucket=bucket, Key=key, Body=json.dumps(figures, indent=1).encode(), ContentType="application/json"
    )
    return key


def window_metrics(figures: dict[str, Any]) -> dict[Metric, float]:
    """The figures a window publishes (those it has: an empty window has no mean confidence)."""
    values = {
        Metric.WINDOW_PREDICTIONS: figures["predictions"],
        Metric.DRIFT_SCORE: figures["drift"]["value"] if figures["drift"]["enough_data"] else None,
        Metric.WINDOW_MEAN_CONFIDENCE: figures["mean_confidence"],
        Metric.WINDOW_LOW_CONFIDENCE_SHARE: figures["low_confidence_share"],
        Metric.WINDOW_FEEDBACK_ACCURACY: figures["feedback"]["accuracy"],
    }
    return {name: float(value) for name, value in values.items() if value is not None}
