"""Prediction records: numbers in and out of DynamoDB, writes that fail, listing."""

import json
import logging
from dataclasses import replace
from decimal import Decimal

import numpy as np
import pytest
from botocore.exceptions import ClientError

from classifier import clock
from classifier.api import records
from classifier.api.records import PredictionRecord
from classifier.aws import codec
from classifier.errors import InvalidParameterError, InvalidRecordError, ResourceNotFoundError
from classifier.labels import LABELS


def make_record(**changes) -> PredictionRecord:
    probabilities = np.full(10, 0.02, dtype=np.float32)
    probabilities[5] = 0.82
    record = PredictionRecord(
        id=records.new_id(),
        created_at=clock.utc_now(),
        label="dog",
        label_index=np.int64(5),
        confidence=probabilities[5],
        probabilities=records.probabilities_by_label(probabilities),
        model_version="v1",
        model_sha256="0" * 64,
        image_sha256="1" * 64,
        image_bytes=np.int64(989),
        image_name="dog.jpg",
        source="single",
        batch_id=None,
        latency_ms=np.float64(3.25),
        timings_ms={"decode": 1.5, "inference": np.float32(1.75)},
    )
    return replace(record, **changes)


@pytest.mark.parametrize(
    ("value", "stored", "read_back"),
    [
        (np.float32(0.1), Decimal("0.1"), 0.1),
        (np.float32(0.8435723), Decimal("0.8435723"), 0.8435723),
        (np.float64(0.1), Decimal("0.1"), 0.1),
        (np.float64(1e-12), Decimal("1e-12"), 1e-12),
        (np.int64(7), Decimal(7), 7),
        (np.int32(-3), Decimal(-3), -3),
        (0.25, Decimal("0.25"), 0.25),
        (12, Decimal(12), 12),
        (np.float32(1.0), Decimal("1.0"), 1.0),
    ],
)
def test_numbers_become_decimals_and_come_back_as_json_numbers(value, stored, read_back):
    # given a number as numpy or Python produce it, when it goes into an item and back
    item = codec.to_dynamo({"x": value})
    back = codec.from_dynamo(item)

    # then the item holds the Decimal of its shortest text, and JSON gets a plain number of the same value
    assert item["x"] == stored and isinstance(item["x"], Decimal)
    assert back["x"] == read_back and type(back["x"]) is type(read_back)
    assert json.loads(json.dumps(back)) == back


@pytest.mark.parametrize(
    "value",
    [np.float32("nan"), np.float64("inf"), float("-inf"), float("nan"), Decimal("NaN"), Decimal("Infinity")],
)
def test_nan_and_infinity_are_refused(value):
    with pytest.raises(InvalidRecordError):
        codec.to_dynamo({"probabilities": [0.5, value]})


@pytest.mark.parametrize("value", [np.float64(1e-200), -5e-324, np.float64(1e-131)])
def test_numbers_too_small_for_dynamodb_are_stored_as_zero_and_answered_as_zero(value):
    # a float64 probability can underflow far below DynamoDB's smallest magnitude, 1E-130
    item = codec.to_dynamo({"p": [0.5, value]})

    assert item["p"][1] == 0 and codec.from_dynamo(item)["p"] == [0.5, 0.0]
    assert codec.to_json({"p": [0.5, value]}) == {"p": [0.5, 0.0]}
    assert codec.to_dynamo({"p": 1e-130})["p"] == Decimal("1E-130")  # the smallest it keeps


@pytest.mark.parametrize(
    "value", [1e126, np.float64(-3e300), 10**38, Decimal("1.00000000000000000000000000000000000001")]
)
def test_numbers_dynamodb_cannot_store_are_refused_before_the_write(value):
    with pytest.raises(InvalidRecordError, match="1E\\+126"):
        codec.to_dynamo({"x": value})


def test_unknown_types_are_refused_not_stringified():
    with pytest.raises(InvalidRecordError):
        codec.to_dynamo({"when": object()})


def test_numpy_arrays_and_bools_convert_elementwise():
    item = codec.to_dynamo({"p": np.array([0.5, 0.25], dtype=np.float32), "ok": np.bool_(True)})
    assert item == {"p": [Decimal("0.5"), Decimal("0.25")], "ok": True}


def test_a_record_round_trips_through_an_item():
    record = make_record()
    item = records.to_item(record)

    assert item["kind"] == records.KIND and "batch_id" not in item
    back = records.from_item(item)
    assert (
        back["confidence"] == pytest.approx(0.82) and back["label_index"] == 5 and back["image_bytes"] == 989
    )
    assert list(back["probabilities"]) == list(LABELS)
    assert "kind" not in back
    assert back == codec.to_json({k: v for k, v in vars(record).items() if v is not None})


def test_records_are_stored_and_read_back(aws):
    record = make_record()

    assert records.store(aws.predictions, record) is True
    stored = records.get_record(aws.predictions, record.id)
    assert stored["label"] == "dog" and stored["confidence"] == pytest.approx(0.82)
    assert stored["timings_ms"] == {"decode": 1.5, "inference": 1.75}


def test_a_missing_record_is_not_found(aws):
    with pytest.raises(ResourceNotFoundError):
        records.get_record(aws.predictions, "no-such-id")


def test_batch_writer_stores_every_record(aws):
    batch = [make_record(source="batch", batch_id="b1") for _ in range(30)]

    assert records.store_many(aws.predictions, batch) == [True] * 30
    assert aws.predictions.scan(Select="COUNT")["Count"] == 30


class FlakyTable:
    """A table whose first ``failures`` writes fail the way DynamoDB throttling does."""

    def __init__(self, failures: int):
        self.failures = failures
        self.attempts = 0
        self.items = []

    def put_item(self, Item):  # noqa: N803 (boto3's argument name)
        self.attempts += 1
        if self.attempts <= self.failures:
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
                "PutItem",
            )
        self.items.append(Item)


def test_a_failed_write_is_retried(monkeypatch):
    monkeypatch.setattr(records, "RETRY_DELAY_S", 0)
    table = FlakyTable(failures=records.WRITE_ATTEMPTS - 1)

    assert records.store(table, make_record()) is True
    assert table.attempts == records.WRITE_ATTEMPTS and len(table.items) == 1


@pytest.fixture
def package_log(caplog):
    """Records of the package's loggers, however a handler module configured them (they may not propagate)."""
    package_logger = logging.getLogger("classifier")
    detached = not package_logger.propagate  # caplog's handler is on the root logger
    if detached:
        package_logger.addHandler(caplog.handler)
    yield caplog
    if detached:
        package_logger.removeHandler(caplog.handler)


def logged_records(caplog) -> list[dict]:
    return [entry.prediction_record for entry in caplog.records if hasattr(entry, "prediction_record")]


def test_a_write_that_keeps_failing_is_flagged_and_logged_in_full(monkeypatch, package_log):
    monkeypatch.setattr(records, "RETRY_DELAY_S", 0)
    table = FlakyTable(failures=99)
    record = make_record()

    assert records.store(table, record) is False
    assert table.attempts == records.WRITE_ATTEMPTS
    (logged,) = logged_records(package_log)
    assert logged["id"] == record.id and logged["probabilities"]["dog"] == pytest.approx(0.82)
    assert json.loads(json.dumps(logged)) == logged  # JSON-ready: the log line can be replayed into the table


def test_a_record_with_nan_is_not_stored_but_logged(aws, package_log):
    record = make_record(confidence=np.float32("nan"))

    assert records.store(aws.predictions, record) is False
    assert aws.predictions.scan(Select="COUNT")["Count"] == 0
    assert [logged["id"] for logged in logged_records(package_log)] == [record.id]


def test_listing_is_newest_first_and_pages_with_a_cursor(aws):
    created = [make_record(created_at=f"2026-01-01T00:00:{second:02d}.000000Z") for second in range(5)]
    records.store_many(aws.predictions, created)

    first = records.list_records(aws.predictions, limit=2)
    second = records.list_records(aws.predictions, limit=2, cursor=first["next_cursor"])
    third = records.list_records(aws.predictions, limit=2, cursor=second["next_cursor"])

    seen = [item["id"] for page in (first, second, third) for item in page["items"]]
    assert seen == [record.id for record in reversed(created)]
    assert first["next_cursor"] and second["next_cursor"]


@pytest.mark.parametrize("cursor", ["not-a-cursor!", "e30", records.encode_cursor({"id": "x"}), "W10"])
def test_a_cursor_this_api_did_not_return_is_refused(cursor):
    with pytest.raises(InvalidParameterError):
        records.decode_cursor(cursor)


def test_cursors_round_trip():
    key = {"id": "a", "kind": "prediction", "created_at": "2026-01-01T00:00:00.000000Z"}
    assert records.decode_cursor(records.encode_cursor(key)) == key
