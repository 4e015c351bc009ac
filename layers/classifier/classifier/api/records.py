"""Prediction records in DynamoDB (``PREDICTIONS_TABLE``): one function builds the item, one reads it back.

Numbers go through :mod:`classifier.aws.codec` (``Decimal(str(x))`` in, JSON numbers out, NaN and
infinity refused), the one codec every table shares.

Writes are retried; a record that still cannot be written is logged in full (``prediction_record``)
so it can be recovered, and the caller gets ``stored=False``. The prediction itself is never lost.

Every record names its owner: the API key id of the caller (never the key). Listing is one query
of a global secondary index declared in ``template.yaml``, newest first, never a scan: ``ByOwner``
(HASH ``owner``, RANGE ``created_at``) for one owner's records, ``ByCreatedAt`` (HASH ``kind``,
RANGE ``created_at``; every record has ``kind = "prediction"``) for everyone's (operators).
Filters (predicted ``label``, ``has_feedback``, ``wrong``) are a FilterExpression on that query;
since DynamoDB applies ``Limit`` before the filter, a filtered page queries on until it has
``limit`` items or the index ends, at most :data:`MAX_FILTERED_QUERIES` queries of
:data:`FILTERED_QUERY_LIMIT` records each, and its cursor names the last item it returns.

A record may keep its model input, the 32x32 PNG the model saw (``input_png``, a binary attribute);
it is answered as base64 text. Feedback (``feedback``: label, correct, given_at, by) is written
onto the record conditionally (:func:`write_feedback`).
"""

import base64
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from classifier import payloads
from classifier.aws.codec import from_dynamo, to_dynamo, to_json
from classifier.aws.dynamodb import UnprocessedItemsError
from classifier.errors import (
    ConflictError,
    InvalidParameterError,
    InvalidRecordError,
    ResourceNotFoundError,
)
from classifier.labels import LABELS
from classifier.payloads import encode_cursor

logger = logging.getLogger(__name__)

KIND = "prediction"  # the GSI partition of every record
LIST_INDEX = "ByCreatedAt"
OWNER_INDEX = "ByOwner"
WRITE_ATTEMPTS = 3
RETRY_DELAY_S = 0.05  # doubled after each failed attempt
# No new attempt once this long has passed since the first: failures that come fast (throttling, a
# refused connection) get every attempt, timeouts are slow and get one, so that the whole write
# (classifier.aws.clients bounds one attempt) ends well within the predict function's timeout.
WRITE_BUDGET_S = 1.0
# What a page's LastEvaluatedKey holds: the table's key and the index's.
_CURSOR_KEYS = (frozenset({"id", "kind", "created_at"}), frozenset({"id", "owner", "created_at"}))
_WRITE_ERRORS = (ClientError, BotoCoreError, UnprocessedItemsError)
INPUT_ATTRIBUTE = "input_png"  # the kept model input: PNG bytes in the table, base64 text in answers
FEEDBACK_ATTRIBUTE = "feedback"
FILTERED_QUERY_LIMIT = 100  # records one query of a filtered listing reads
MAX_FILTERED_QUERIES = 10  # queries one filtered page may take (at most 1,000 records read)


@dataclass(frozen=True)
class PredictionRecord:
    id: str
    created_at: str  # ISO 8601 UTC with microseconds: sorts as text
    label: str
    label_index: int
    confidence: float
    probabilities: dict[str, float]  # label -> probability, label order
    model_version: str
    model_sha256: str
    image_sha256: str
    image_bytes: int
    image_name: str | None
    source: str  # "single" (POST /predict) or "batch" (POST /predict/batch)
    batch_id: str | None
    latency_ms: float  # decode + inference
    timings_ms: dict[str, float]  # decode, inference
    owner: str | None = None  # the caller's API key id; None only for records made outside the API
    input_png: bytes | None = None  # the 32x32 model input as PNG (KEEP_MODEL_INPUTS); None when not kept


def new_id() -> str:
    return str(uuid.uuid4())


def to_item(record: PredictionRecord) -> dict[str, Any]:
    """The DynamoDB item of ``record``: every field, ``kind`` for the listing index, None fields left out."""
    fields = {key: value for key, value in asdict(record).items() if value is not None}
    return to_dynamo({**fields, "kind": KIND})


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A stored item as the API returns it: JSON numbers, the kept input as base64 text, without the
    index's ``kind``."""
    return {key: _json_value(value) for key, value in item.items() if key != "kind"}


def record_json(record: PredictionRecord) -> dict[str, Any]:
    """A record as JSON (the log line of a record not stored): numbers as the table holds them, the
    kept input as base64 text."""
    return {key: _json_value(value) for key, value in to_json(asdict(record)).items()}


def _json_value(value: Any) -> Any:
    return base64.b64encode(value).decode() if isinstance(value, bytes) else from_dynamo(value)


def probabilities_by_label(probabilities: Sequence[Any]) -> dict[str, Any]:
    return dict(zip(LABELS, probabilities, strict=True))


def store(table: Any, record: PredictionRecord) -> bool:
    """Write one record (``put_item``), retried; False, with the record logged in full, if it fails."""
    return _write(table, [record], batch=False)[0]


def store_many(table: Any, records: Sequence[PredictionRecord]) -> list[bool]:
    """Write records with the table's batch writer, retried; one flag per record."""
    return _write(table, records, batch=True) if records else []


def _write(table: Any, records: Sequence[PredictionRecord], *, batch: bool) -> list[bool]:
    stored = [False] * len(records)
    items: list[tuple[int, dict[str, Any]]] = []
    for position, record in enumerate(records):
        try:
            items.append((position, to_item(record)))
        except InvalidRecordError:
            logger.exception("Prediction record refused", extra={"prediction_record": record_json(record)})
    started = time.monotonic()
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        if not items:
            break
        try:
            if batch:
                with table.batch_writer(overwrite_by_pkeys=["id"]) as writer:
                    for _, item in items:
                        writer.put_item(Item=item)
            else:
                table.put_item(Item=items[0][1])
        except _WRITE_ERRORS:
            logger.warning(
                "Prediction record write failed (attempt %d of %d)", attempt, WRITE_ATTEMPTS, exc_info=True
            )
            if attempt == WRITE_ATTEMPTS or time.monotonic() - started >= WRITE_BUDGET_S:
                break
            time.sleep(RETRY_DELAY_S * 2 ** (attempt - 1))
            continue
        for position, _ in items:
            stored[position] = True
        return stored
    for position, _ in items:
        logger.error(
            "Prediction record not stored; the full record follows for recovery",
            extra={"prediction_record": record_json(records[position])},
        )
    return stored


def read_item(
    table: Any, record_id: str, *, owner: str | None = None, consistent: bool = False
) -> dict[str, Any]:
    """One stored item as DynamoDB holds it (Decimals, the input as bytes); with ``owner``, only if
    that key id owns it. Another owner's record is "not found", the same answer as a record that does
    not exist, so ids cannot be probed. ``consistent``: a strongly consistent read (before a
    conditional write, so the condition is built on the latest feedback)."""
    item = table.get_item(Key={"id": record_id}, ConsistentRead=consistent).get("Item")
    if item is None or (owner is not None and item.get("owner") != owner):
        raise ResourceNotFoundError(f"No prediction with id {record_id!r}.")
    return item


def get_record(table: Any, record_id: str, *, owner: str | None = None) -> dict[str, Any]:
    """One record as the API answers it; ``owner`` as in :func:`read_item`."""
    return from_item(read_item(table, record_id, owner=owner))


class FeedbackChangedError(ConflictError):
    """The record's feedback is not what the write expected: another request wrote it meanwhile."""


def write_feedback(
    table: Any, record_id: str, feedback: Mapping[str, Any], *, previous_label: str | None
) -> dict[str, Any]:
    """Write ``feedback`` onto a record, on condition that the record exists and its feedback is still
    what the caller read: none (``previous_label`` None) or one with ``previous_label``. Returns the
    new item; raises :class:`FeedbackChangedError` if the condition fails (nothing is written)."""
    names = {"#feedback": FEEDBACK_ATTRIBUTE}
    values: dict[str, Any] = {":feedback": to_dynamo(dict(feedback))}
    if previous_label is None:
        condition = "attribute_exists(id) AND attribute_not_exists(#feedback)"
    else:
        condition = "#feedback.#label = :previous"
        names["#label"] = "label"
        values[":previous"] = previous_label
    try:
        return table.update_item(
            Key={"id": record_id},
            UpdateExpression="SET #feedback = :feedback",
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )["Attributes"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            raise FeedbackChangedError(
                "The prediction's feedback changed meanwhile; send it again."
            ) from error
        raise


@dataclass(frozen=True)
class ListFilter:
    """What GET /predictions keeps of the records its index query reads (None: no condition)."""

    label: str | None = None  # the predicted class
    has_feedback: bool | None = None
    wrong: bool | None = None  # True: feedback disagrees with the prediction; False: it agrees

    @property
    def active(self) -> bool:
        return any(value is not None for value in (self.label, self.has_feedback, self.wrong))

    def expression(self) -> tuple[str, dict[str, str], dict[str, Any]]:
        """The FilterExpression, its attribute names and values."""
        clauses, names, values = [], {}, {}
        if self.label is not None:
            clauses.append("#label = :label")
            names["#label"], values[":label"] = "label", self.label
        if self.has_feedback is not None:
            names["#feedback"] = FEEDBACK_ATTRIBUTE
            clauses.append(
                "attribute_exists(#feedback)" if self.has_feedback else "attribute_not_exists(#feedback)"
            )
        if self.wrong is not None:
            names["#feedback"], names["#correct"] = FEEDBACK_ATTRIBUTE, "correct"
            clauses.append("#feedback.#correct = :correct")
            values[":correct"] = not self.wrong
        return " AND ".join(clauses), names, values


def list_records(
    table: Any,
    *,
    limit: int,
    cursor: str | None = None,
    owner: str | None = None,
    filters: ListFilter | None = None,
) -> dict[str, Any]:
    """One page of records, newest first: ``{"items": [...], "next_cursor": str | None}``; one
    owner's (``owner``, a key id) or everyone's, those that pass ``filters``. A filtered page can
    hold fewer than ``limit`` items and still have a ``next_cursor`` (its queries ran out first)."""
    if owner is None:
        index, attribute, value = LIST_INDEX, "kind", KIND
    else:
        index, attribute, value = OWNER_INDEX, "owner", owner
    query: dict[str, Any] = {
        "IndexName": index,
        "KeyConditionExpression": "#partition = :partition",
        "ExpressionAttributeNames": {"#partition": attribute},
        "ExpressionAttributeValues": {":partition": value},
        "ScanIndexForward": False,
        "Limit": limit,
    }
    if cursor:
        start = decode_cursor(cursor)
        if start.get(attribute) != value:  # a cursor from another listing would leak or fail
            raise InvalidParameterError("The cursor is not one this API returned for this listing.")
        query["ExclusiveStartKey"] = start
    if filters is None or not filters.active:
        page = table.query(**query)
        last = page.get("LastEvaluatedKey")
        return {
            "items": [from_item(item) for item in page.get("Items", [])],
            "next_cursor": encode_cursor(last) if last else None,
        }
    expression, names, values = filters.expression()
    query["FilterExpression"] = expression
    query["ExpressionAttributeNames"].update(names)
    query["ExpressionAttributeValues"].update(values)
    query["Limit"] = max(limit, FILTERED_QUERY_LIMIT)
    items: list[dict[str, Any]] = []
    last = None
    for _ in range(MAX_FILTERED_QUERIES):
        page = table.query(**query)
        found = page.get("Items", [])
        last = page.get("LastEvaluatedKey")
        taken = found[: limit - len(items)]
        items += taken
        if len(taken) < len(found):
            # the page is full inside this query's results: continue after the last item returned
            last = {name: items[-1][name] for name in ("id", attribute, "created_at")}
        if len(items) >= limit or last is None:
            break
        query["ExclusiveStartKey"] = last
    return {
        "items": [from_item(item) for item in items],
        "next_cursor": encode_cursor(last) if last else None,
    }


def decode_cursor(cursor: str) -> dict[str, str]:
    """A listing cursor back into its key (the table's and the index's), or 400."""
    return payloads.decode_cursor(cursor, _CURSOR_KEYS)
