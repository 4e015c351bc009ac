"""Prediction records in DynamoDB (``PREDICTIONS_TABLE``): one function builds the item, one reads it back.

Numbers go through :mod:`classifier.aws.codec` (``Decimal(str(x))`` in, JSON numbers out, NaN and
infinity refused), the one codec every table shares.

Writes are retried; a record that still cannot be written is logged in full (``prediction_record``)
so it can be recovered, and the caller gets ``stored=False``. The prediction itself is never lost.

Every record names its owner: the API key id of the caller (never the key). Listing is one query
of a global secondary index declared in ``template.yaml``, newest first, never a scan: ``ByOwner``
(HASH ``owner``, RANGE ``created_at``) for one owner's records, ``ByCreatedAt`` (HASH ``kind``,
RANGE ``created_at``; every record has ``kind = "prediction"``) for everyone's (operators).
"""

import base64
import binascii
import json
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from classifier.aws.codec import from_dynamo, to_dynamo, to_json
from classifier.aws.dynamodb import UnprocessedItemsError
from classifier.errors import InvalidParameterError, InvalidRecordError, ResourceNotFoundError
from classifier.labels import LABELS

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


def new_id() -> str:
    return str(uuid.uuid4())


def to_item(record: PredictionRecord) -> dict[str, Any]:
    """The DynamoDB item of ``record``: every field, ``kind`` for the listing index, None fields left out."""
    fields = {key: value for key, value in asdict(record).items() if value is not None}
    return to_dynamo({**fields, "kind": KIND})


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A stored item as the API returns it: JSON numbers, without the index's ``kind``."""
    return {key: from_dynamo(value) for key, value in item.items() if key != "kind"}


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
            logger.exception(
                "Prediction record refused", extra={"prediction_record": to_json(asdict(record))}
            )
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
            extra={"prediction_record": to_json(asdict(records[position]))},
        )
    return stored


def get_record(table: Any, record_id: str, *, owner: str | None = None) -> dict[str, Any]:
    """One record; with ``owner``, only if that key id owns it. Another owner's record is "not found",
    the same answer as a record that does not exist, so ids cannot be probed."""
    item = table.get_item(Key={"id": record_id}).get("Item")
    if item is None or (owner is not None and item.get("owner") != owner):
        raise ResourceNotFoundError(f"No prediction with id {record_id!r}.")
    return from_item(item)


def list_records(
    table: Any, *, limit: int, cursor: str | None = None, owner: str | None = None
) -> dict[str, Any]:
    """One page of records, newest first: ``{"items": [...], "next_cursor": str | None}``; one
    owner's (``owner``, a key id) or everyone's."""
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
    page = table.query(**query)
    last = page.get("LastEvaluatedKey")
    return {
        "items": [from_item(item) for item in page.get("Items", [])],
        "next_cursor": encode_cursor(last) if last else None,
    }


def encode_cursor(key: Mapping[str, Any]) -> str:
    raw = json.dumps({name: key[name] for name in sorted(key)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, str]:
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, RecursionError) as error:
        raise InvalidParameterError("The cursor is not one this API returned.") from error
    if (
        not isinstance(key, dict)
        or set(key) not in _CURSOR_KEYS
        or not all(isinstance(v, str) for v in key.values())
    ):
        raise InvalidParameterError("The cursor is not one this API returned.")
    return key
