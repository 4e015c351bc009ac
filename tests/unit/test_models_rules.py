"""The registry rules the models routes apply, called as plain functions on moto tables: the shipped
baseline is always a version, exactly one version is current, a rejected version needs ``force``."""

import json

import pytest

from classifier import storage
from classifier.cards import baseline_card
from classifier.errors import ConflictError
from classifier.mlops import models, registry

BASELINE = baseline_card()


def candidate(version: str, created_at: str) -> dict:
    return {**BASELINE, "version": version, "created_at": created_at, "parent_version": BASELINE["version"]}


def put(aws, card: dict, status: registry.ModelStatus, reason: str | None = None) -> None:
    registry.put_version(aws.models, registry.version_item(card, status, reason))
    aws.s3.put_object(
        Bucket=aws.bucket,
        Key=storage.model_key(card["version"], storage.CARD_NAME),
        Body=json.dumps(card).encode(),
    )


def test_an_empty_registry_lists_the_baseline_as_current(aws):
    listing = models.list_models(aws.models)

    assert listing["current_version"] == BASELINE["version"]
    assert [(v["version"], v["status"], v["current"]) for v in listing["versions"]] == [
        (BASELINE["version"], "baseline", True)
    ]


def test_exactly_one_version_is_current_after_a_promotion(aws):
    put(aws, candidate("v2", "2099-01-01T00:00:00.000000Z"), registry.ModelStatus.CANDIDATE)

    assert models.promote(aws.models, "v2") == {
        "current_version": "v2",
        "previous_version": BASELINE["version"],
    }

    listing = models.list_models(aws.models)
    assert listing["current_version"] == "v2"
    assert {v["version"]: v["current"] for v in listing["versions"]} == {
        "v2": True,
        BASELINE["version"]: False,
    }
    assert models.get_model(aws.models, aws.s3, aws.bucket, "v2")["card"]["version"] == "v2"
    assert models.get_model(aws.models, aws.s3, aws.bucket, BASELINE["version"])["current"] is False


def test_a_rejected_version_is_promoted_only_with_force(aws):
    put(
        aws,
        candidate("v3", "2099-01-02T00:00:00.000000Z"),
        registry.ModelStatus.REJECTED,
        "cat fell 4 points",
    )

    with pytest.raises(ConflictError, match="cat fell 4 points"):
        models.promote(aws.models, "v3")
    assert models.current_version(aws.models) == BASELINE["version"]  # nothing changed

    models.promote(aws.models, "v3", force=True)
    assert models.current_version(aws.models) == "v3"
