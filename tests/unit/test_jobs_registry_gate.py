"""Retraining jobs (one at a time), registry writes (promotion is one conditional write), the gate."""

import json

import pytest

from classifier import gate
from classifier.cards import baseline_card
from classifier.errors import ConflictError, RequestShapeError, ResourceNotFoundError
from classifier.mlops import jobs, registry
from tests.unit.conftest import FUNCTION_ENVIRONMENT

BASELINE_CARD = baseline_card()


@pytest.fixture
def jobs_table(aws):
    from classifier.aws import table

    return table(FUNCTION_ENVIRONMENT["JOBS_TABLE"])


def test_one_job_at_a_time(jobs_table):
    first = jobs.create_job(jobs_table, {"mode": "finetune"})

    with pytest.raises(ConflictError, match=first["job_id"]):
        jobs.create_job(jobs_table, {"mode": "scratch"})

    jobs.finish(jobs_table, first["job_id"], "failed", reason="boom")
    second = jobs.create_job(jobs_table, {"mode": "scratch"})
    assert jobs.get_job(jobs_table, first["job_id"])["reason"] == "boom"
    assert jobs.get_job(jobs_table, second["job_id"])["status"] == "queued"


def test_a_stale_lock_is_taken_over(jobs_table):
    jobs.create_job(jobs_table, {"mode": "finetune"}, now=1_000_000)

    later = 1_000_000 + jobs.STALE_LOCK_SECONDS + 1
    assert jobs.create_job(jobs_table, {"mode": "finetune"}, now=later)["status"] == "queued"


def test_progress_is_readable_with_plain_numbers(jobs_table):
    job = jobs.create_job(jobs_table, {"mode": "finetune", "epochs": 3})

    jobs.update(jobs_table, job["job_id"], status="running", epoch=1, epochs=3, loss=1.25, accuracy=0.5)

    read = jobs.get_job(jobs_table, job["job_id"])
    assert read["status"] == "running" and read["loss"] == 1.25 and read["epoch"] == 1
    json.dumps(read)  # JSON-serialisable: no Decimal
    with pytest.raises(ResourceNotFoundError):
        jobs.get_job(jobs_table, "LOCK")


@pytest.mark.parametrize(
    "body, message",
    [
        ([], "JSON object"),
        ({"mode": "yolo"}, "mode"),
        ({"epochs": 0}, "epochs"),
        ({"epochs": 1.5}, "epochs"),
        ({"budget_seconds": True}, "budget_seconds"),
        ({"colour": "red"}, "Unknown fields"),
    ],
)
def test_bad_retrain_requests_are_refused(body, message):
    with pytest.raises(RequestShapeError, match=message):
        jobs.parse_request(body)


def test_retrain_request_defaults():
    assert jobs.parse_request(None) == {"mode": "finetune"}
    assert jobs.parse_request({"mode": "scratch", "epochs": 5}) == {"mode": "scratch", "epochs": 5}


def card(version, accuracy=0.9, **per_class):
    classes = {label: accuracy for label in BASELINE_CARD["labels"]} | per_class
    return {
        **BASELINE_CARD,
        "version": version,
        "accuracy": accuracy,
        "per_class": classes,
        "created_at": f"2026-11-27T00:00:0{version[-1]}+00:00",
    }


def test_promotion_is_conditional_on_the_pointer_read(aws):
    for version in ("v1", "v2"):
        registry.put_version(aws.models, registry.version_item(card(version), registry.ModelStatus.CANDIDATE))

    registry.promote(aws.models, "v1", expected_current=None)
    with pytest.raises(ConflictError):
        registry.promote(aws.models, "v2", expected_current=None)  # someone promoted meanwhile
    registry.promote(aws.models, "v2", expected_current="v1")

    assert registry.read_pointer(aws.models).version == "v2"
    assert [v["version"] for v in registry.list_versions(aws.models)] == ["v2", "v1"]
    with pytest.raises(ResourceNotFoundError):
        registry.promote(aws.models, "v9", expected_current="v2")


def test_gate_passes_an_equal_model_and_rejects_regressions():
    current = card("v1", 0.91)

    assert gate.check(card("v2", 0.908), current).passed
    overall = gate.check(card("v2", 0.89), current)
    one_class = gate.check(card("v2", 0.91, cat=0.85), current)
    assert not overall.passed and "overall accuracy" in overall.reasons[0]
    assert not one_class.passed and one_class.reasons[0].startswith("cat accuracy")
    other_test_set = {**card("v2", 0.95), "test_data": {"sha256": "different"}}
    assert "different test set" in gate.check(other_test_set, current).reasons[0]
