"""The model registry in DynamoDB (``MODELS_TABLE``, HASH key ``version``): item shapes and reads.

One item per model version::

    {"version": "v3", "status": "candidate|promoted|rejected|baseline", "sha256": "<hex>",
     "tflite_key": "models/v3/model.tflite", "metrics": {...}, "created_at": "<ISO 8601>"}

and one pointer item naming the version serving traffic::

    {"version": "CURRENT", "current_version": "v3", "sha256": "<hex of v3's .tflite>"}

No pointer item means "serve the baseline shipped in the layer". Promotion and rollback are one
conditional write of the pointer item; serving only reads it (:mod:`classifier.api.model_provider`).
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from classifier import storage
from classifier.aws.codec import from_dynamo, to_dynamo
from classifier.errors import ConflictError, RegistryError, ResourceNotFoundError

POINTER_VERSION = "CURRENT"  # the ``version`` key of the pointer item


class ModelStatus(StrEnum):
    CANDIDATE = "candidate"
    PROMOTED = "promoted"
    REJECTED = "rejected"
    BASELINE = "baseline"


@dataclass(frozen=True)
class Pointer:
    """What the registry says should serve: a version and the sha256 of its ``.tflite``."""

    version: str
    sha256: str


def read_pointer(table: Any) -> Pointer | None:
    """The current-version pointer, or None when the registry names no model (serve the baseline)."""
    item = table.get_item(Key={"version": POINTER_VERSION}, ConsistentRead=True).get("Item")
    if item is None:
        return None
    version, sha256 = item.get("current_version"), item.get("sha256")
    if not isinstance(version, str) or not version or not isinstance(sha256, str) or len(sha256) != 64:
        raise RegistryError(f"The registry pointer item is malformed: {item!r}.")
    return Pointer(version=version, sha256=sha256)


def tflite_key(table: Any, version: str) -> str:
    """S3 key of ``version``'s ``.tflite``: the version item's ``tflite_key``, or the standard layout's."""
    item = table.get_item(Key={"version": version}).get("Item") or {}
    key = item.get("tflite_key")
    return key if isinstance(key, str) and key else storage.model_key(version)


# --- Writes (retraining and the models routes) -------------------------------------------------


def version_item(card: dict, status: ModelStatus, reason: str | None = None) -> dict:
    """The registry item of a model version, from its card."""
    item = {
        "version": card["version"],
        "status": str(status),
        "sha256": card["sha256"],
        "tflite_key": storage.model_key(card["version"]),
        "card_key": storage.model_key(card["version"], storage.CARD_NAME),
        "parent_version": card.get("parent_version"),
        "created_at": card["created_at"],
        "metrics": {"accuracy": card["accuracy"], "per_class": card["per_class"], "ece": card.get("ece")},
    }
    if reason:
        item["reason"] = reason
    return item


def put_version(table: Any, item: dict) -> None:
    table.put_item(Item=to_dynamo({k: v for k, v in item.items() if v is not None}))


def get_version(table: Any, version: str) -> dict:
    item = table.get_item(Key={"version": version}).get("Item") if version != POINTER_VERSION else None
    if item is None:
        raise ResourceNotFoundError(f"No model version {version!r}.")
    return from_dynamo(item)


def list_versions(table: Any) -> list[dict]:
    """Every version, newest first (a registry holds tens of versions: one scan, paginated)."""
    items, kwargs = [], {}
    while True:
        page = table.scan(**kwargs)
        items += [from_dynamo(item) for item in page.get("Items", []) if item["version"] != POINTER_VERSION]
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return sorted(items, key=lambda item: item.get("created_at", ""), reverse=True)


def promote(table: Any, version: str, expected_current: str | None) -> Pointer:
    """Point serving at ``version``: one conditional write of the pointer item, which fails (409) if
    the pointer moved since the caller read it (``expected_current``; None means no pointer yet)."""
    target = get_version(table, version)
    if expected_current is None:
        condition, values = "attribute_not_exists(version)", {}
    else:
        condition, values = "current_version = :expected", {":expected": expected_current}
    try:
        table.put_item(
            Item={
                "version": POINTER_VERSION,
                "current_version": version,
                "sha256": target["sha256"],
                "previous_version": expected_current or "",
            },
            ConditionExpression=condition,
            **({"ExpressionAttributeValues": values} if values else {}),
        )
    except ClientError as error:
        if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        raise ConflictError(
            "The current model changed while this promotion was prepared; read GET /models and try again."
        ) from error
    return Pointer(version=version, sha256=target["sha256"])
