"""DynamoDB tables on a botocore client: the part of boto3's ``Table`` resource this project uses,
without importing boto3.

Why not boto3: the predict and batch functions pay for every import on a cold start, and boto3
(with s3transfer) plus building the resource costs about 0.1 to 0.15 s more than a botocore
client, which they need anyway. The methods take and return the same plain Python values as
boto3's resource (str, bool, None, int, Decimal, bytes, list, dict, sets), so callers read the
same either way.

Floats are refused here, as boto3 refuses them: every number stored goes through
:func:`classifier.aws.codec.to_dynamo` (``Decimal(str(x))``), so a numpy float can never reach a write half-done.
"""

import time
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

# DynamoDB's BatchWriteItem takes at most 25 requests.
BATCH_WRITE_LIMIT = 25
# Unprocessed items (throttling) are resubmitted this many times, with a doubling pause.
UNPROCESSED_ROUNDS = 5
UNPROCESSED_DELAY_S = 0.02


class UnprocessedItemsError(Exception):
    """DynamoDB left items of a batch unwritten after every resubmission."""


# Parameters that hold items, keys or values (serialised), and results that do (deserialised).
_VALUE_PARAMETERS = ("Item", "Key", "ExclusiveStartKey", "ExpressionAttributeValues")
_VALUE_RESULTS = ("Item", "Attributes", "LastEvaluatedKey")


def serialize(value: Any) -> dict:
    """A Python value as a DynamoDB AttributeValue (``{"S": "x"}``, ``{"N": "1.5"}``, ...)."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, str):
        return {"S": value}
    if type(value) in (int, Decimal):  # not bool (above), not numpy scalars
        if isinstance(value, Decimal) and not value.is_finite():
            raise TypeError(f"DynamoDB cannot store {value}.")
        return {"N": str(value)}
    if isinstance(value, (bytes, bytearray)):
        return {"B": bytes(value)}
    if isinstance(value, Mapping):
        return {"M": {str(key): serialize(item) for key, item in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"L": [serialize(item) for item in value]}
    if isinstance(value, (set, frozenset)) and value:
        if all(isinstance(item, str) for item in value):
            return {"SS": sorted(value)}
        if all(type(item) in (int, Decimal) for item in value):
            return {"NS": [str(item) for item in value]}
    raise TypeError(
        f"DynamoDB cannot store a {type(value).__name__} ({value!r}); numbers must be int or Decimal."
    )


def deserialize(attribute: Mapping[str, Any]) -> Any:
    """A DynamoDB AttributeValue as a Python value (numbers as Decimal, as boto3 gives them)."""
    ((kind, value),) = attribute.items()
    if kind == "S":
        return value
    if kind == "N":
        return Decimal(value)
    if kind == "BOOL":
        return value
    if kind == "NULL":
        return None
    if kind == "M":
        return {key: deserialize(item) for key, item in value.items()}
    if kind == "L":
        return [deserialize(item) for item in value]
    if kind == "B":
        return bytes(value)
    if kind == "SS":
        return set(value)
    if kind == "NS":
        return {Decimal(item) for item in value}
    if kind == "BS":
        return {bytes(item) for item in value}
    raise TypeError(f"Unknown DynamoDB attribute type {kind!r}.")


def serialize_item(item: Mapping[str, Any]) -> dict:
    return {name: serialize(value) for name, value in item.items()}


def deserialize_item(item: Mapping[str, Any]) -> dict:
    return {name: deserialize(value) for name, value in item.items()}


class Table:
    """One table: ``get_item``, ``put_item``, ``delete_item``, ``update_item``, ``query``, ``scan``,
    ``batch_writer`` and ``transact_write_items``, with boto3's resource arguments and results."""

    def __init__(self, client: Any, name: str):
        self.client = client
        self.name = name

    def get_item(self, **kwargs: Any) -> dict:
        return self._call("get_item", kwargs)

    def put_item(self, **kwargs: Any) -> dict:
        return self._call("put_item", kwargs)

    def delete_item(self, **kwargs: Any) -> dict:
        return self._call("delete_item", kwargs)

    def update_item(self, **kwargs: Any) -> dict:
        return self._call("update_item", kwargs)

    def query(self, **kwargs: Any) -> dict:
        return self._call("query", kwargs)

    def scan(self, **kwargs: Any) -> dict:
        return self._call("scan", kwargs)

    def transact_write_items(
        self,
        TransactItems: Iterable[Mapping[str, Mapping[str, Any]]],
        **kwargs: Any,  # noqa: N803 (boto3's name)
    ) -> dict:
        """Each entry is ``{"Put" | "Delete" | "Update" | "ConditionCheck": {...}}``; ``TableName``
        defaults to this table."""
        entries = [
            {action: {"TableName": self.name, **_serialize_parameters(request)}}
            for entry in TransactItems
            for action, request in entry.items()
        ]
        return self.client.transact_write_items(TransactItems=entries, **kwargs)

    def batch_writer(self, overwrite_by_pkeys: Iterable[str] | None = None) -> "BatchWriter":
        return BatchWriter(self, overwrite_by_pkeys)

    def _call(self, operation: str, kwargs: dict) -> dict:
        response = getattr(self.client, operation)(TableName=self.name, **_serialize_parameters(kwargs))
        for name in _VALUE_RESULTS:
            if name in response:
                response[name] = deserialize_item(response[name])
        if "Items" in response:
            response["Items"] = [deserialize_item(item) for item in response["Items"]]
        return response


class BatchWriter:
    """Collects ``put_item`` calls and writes them in BatchWriteItem calls of up to 25 on exit,
    resubmitting unprocessed items. A later put with the same ``overwrite_by_pkeys`` values
    replaces an earlier one (DynamoDB refuses duplicates in one batch)."""

    def __init__(self, table: Table, overwrite_by_pkeys: Iterable[str] | None):
        self._table = table
        self._keys = tuple(overwrite_by_pkeys or ())
        self._items: dict[Any, dict] = {}

    def put_item(self, Item: Mapping[str, Any]) -> None:  # noqa: N803 (boto3's name)
        key = tuple(Item[name] for name in self._keys) if self._keys else len(self._items)
        self._items[key] = serialize_item(Item)

    def __enter__(self) -> "BatchWriter":
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None:
            self.flush()

    def flush(self) -> None:
        requests = [{"PutRequest": {"Item": item}} for item in self._items.values()]
        self._items.clear()
        rounds = 0
        while requests:
            chunk, requests = requests[:BATCH_WRITE_LIMIT], requests[BATCH_WRITE_LIMIT:]
            response = self._table.client.batch_write_item(RequestItems={self._table.name: chunk})
            unprocessed = response.get("UnprocessedItems", {}).get(self._table.name, [])
            if unprocessed:
                rounds += 1
                if rounds > UNPROCESSED_ROUNDS:
                    raise UnprocessedItemsError(f"{len(unprocessed) + len(requests)} items were not written.")
                time.sleep(UNPROCESSED_DELAY_S * 2 ** (rounds - 1))
                requests = list(unprocessed) + requests


def _serialize_parameters(kwargs: Mapping[str, Any]) -> dict:
    out = dict(kwargs)
    for name in _VALUE_PARAMETERS:
        if name in out:
            out[name] = serialize_item(out[name])
    return out
