"""The botocore-only table (``classifier.aws.dynamodb``): the same values in and out as boto3's resource,
floats refused, batches split at 25 and unprocessed items resubmitted."""

from decimal import Decimal

import numpy as np
import pytest

from classifier.aws import dynamodb


def test_values_round_trip_as_boto3_returns_them():
    item = {
        "id": "a",
        "n": Decimal("0.1234567"),
        "count": 3,
        "ok": True,
        "none": None,
        "raw": b"\x00\x01",
        "nested": {"list": [Decimal("1.5"), "x", {"deep": False}]},
        "tags": {"b", "a"},
    }

    back = dynamodb.deserialize_item(dynamodb.serialize_item(item))

    assert back == {**item, "count": Decimal(3)}
    assert dynamodb.serialize(Decimal("0.1234567")) == {
        "N": "0.1234567"
    }  # the exact digits, no float on the way


@pytest.mark.parametrize(
    "value", [0.5, np.float32(0.5), np.float64(0.5), np.int64(3), Decimal("NaN"), object()]
)
def test_floats_numpy_scalars_and_other_types_are_refused(value):
    with pytest.raises(TypeError):
        dynamodb.serialize({"probabilities": [value]})


class FakeClient:
    """Records BatchWriteItem calls; leaves the first ``unprocessed`` requests unwritten once each."""

    def __init__(self, unprocessed_rounds: int = 0):
        self.calls: list[list[dict]] = []
        self.unprocessed_rounds = unprocessed_rounds

    def batch_write_item(self, RequestItems):  # noqa: N803
        ((name, requests),) = RequestItems.items()
        self.calls.append(requests)
        if self.unprocessed_rounds:
            self.unprocessed_rounds -= 1
            return {"UnprocessedItems": {name: requests[:2]}}
        return {"UnprocessedItems": {}}


def test_the_batch_writer_splits_at_25_and_keeps_the_last_put_of_a_key(monkeypatch):
    client = FakeClient()
    with dynamodb.Table(client, "t").batch_writer(overwrite_by_pkeys=["id"]) as writer:
        for i in range(60):
            writer.put_item(Item={"id": str(i % 55), "value": i})

    assert [len(call) for call in client.calls] == [25, 25, 5]
    written = {
        r["PutRequest"]["Item"]["id"]["S"]: r["PutRequest"]["Item"]["value"]["N"]
        for call in client.calls
        for r in call
    }
    assert len(written) == 55 and written["0"] == "55" and written["54"] == "54"


def test_unprocessed_items_are_resubmitted_then_reported(monkeypatch):
    monkeypatch.setattr(dynamodb, "UNPROCESSED_DELAY_S", 0)
    client = FakeClient(unprocessed_rounds=2)
    with dynamodb.Table(client, "t").batch_writer() as writer:
        for i in range(3):
            writer.put_item(Item={"id": str(i)})
    assert [len(call) for call in client.calls] == [3, 2, 2]

    stuck = FakeClient(unprocessed_rounds=100)
    with pytest.raises(dynamodb.UnprocessedItemsError), dynamodb.Table(stuck, "t").batch_writer() as writer:
        writer.put_item(Item={"id": "x"})


def test_table_operations_against_moto(aws):
    table = aws.predictions
    table.put_item(
        Item={"id": "r1", "kind": "prediction", "created_at": "2026", "confidence": Decimal("0.75")}
    )

    assert table.get_item(Key={"id": "r1"})["Item"]["confidence"] == Decimal("0.75")
    table.update_item(
        Key={"id": "r1"},
        UpdateExpression="SET confidence = :c",
        ExpressionAttributeValues={":c": Decimal("0.5")},
    )
    assert table.scan()["Items"][0]["confidence"] == Decimal("0.5")
    table.delete_item(Key={"id": "r1"})
    assert "Item" not in table.get_item(Key={"id": "r1"})
