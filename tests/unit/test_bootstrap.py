"""Bootstrap against moto: a fresh stack serves the shipped baseline and can roll back to every
previous baseline; a stack that already serves a version keeps serving it; a second run changes
nothing."""

import boto3
import pytest

from classifier import storage
from classifier.aws import object_exists
from classifier.cards import BASELINE_DIR, baseline_card, read_card
from classifier.mlops import models, registry
from infra.bootstrap import PREVIOUS_BASELINES_DIR, bootstrap, kept_models

PREVIOUS = [read_card(path) for path in kept_models()[1:]]


def test_the_repository_keeps_the_baseline_shipped_before_this_one():
    assert kept_models()[0] == BASELINE_DIR
    assert PREVIOUS, f"no previous baseline in {PREVIOUS_BASELINES_DIR}"
    assert baseline_card()["parent_version"] in {card["version"] for card in PREVIOUS}
    for path in kept_models()[1:]:
        for name in (storage.TFLITE_NAME, storage.KERAS_NAME, storage.CARD_NAME):
            assert (path / name).is_file(), f"{path.name} lacks {name}: it could not be served or retrained"
    assert [card["created_at"] for card in PREVIOUS] == sorted(card["created_at"] for card in PREVIOUS)


def test_a_fresh_stack_serves_the_baseline_and_can_roll_back_to_the_previous_one(aws):
    serving = bootstrap(boto3.client("s3"), aws.bucket, aws.models, data_dir=None, log=lambda _: None)

    assert serving == baseline_card()["version"]
    assert registry.read_pointer(aws.models).version == serving
    listed = {entry["version"]: entry for entry in models.list_models(aws.models)["versions"]}
    for card in [baseline_card(), *PREVIOUS]:
        assert listed[card["version"]]["sha256"] == card["sha256"]
        for name in (storage.TFLITE_NAME, storage.KERAS_NAME, storage.CARD_NAME):
            assert object_exists(aws.s3, aws.bucket, storage.model_key(card["version"], name))

    previous = PREVIOUS[-1]["version"]
    rolled_back = models.promote(aws.models, previous)

    assert rolled_back == {"current_version": previous, "previous_version": serving}
    assert registry.read_pointer(aws.models).sha256 == PREVIOUS[-1]["sha256"]


def test_a_stack_that_serves_a_version_keeps_it_and_a_rerun_changes_nothing(aws):
    old = PREVIOUS[-1]
    registry.put_version(aws.models, registry.version_item(old, registry.ModelStatus.BASELINE))
    registry.promote(aws.models, old["version"], expected_current=None)
    logged: list[str] = []

    bootstrap(boto3.client("s3"), aws.bucket, aws.models, data_dir=None, log=logged.append)
    items = sorted(aws.models.scan()["Items"], key=lambda item: item["version"])
    bootstrap(boto3.client("s3"), aws.bucket, aws.models, data_dir=None, log=logged.append)

    assert registry.read_pointer(aws.models).version == old["version"]  # promoting the new one is a choice
    assert baseline_card()["version"] in {v["version"] for v in models.list_models(aws.models)["versions"]}
    assert sorted(aws.models.scan()["Items"], key=lambda item: item["version"]) == items
    assert not any("serving" in line for line in logged)


@pytest.mark.parametrize("path", kept_models(), ids=lambda path: path.name)
def test_every_kept_cards_sha256_is_its_tflite(path):
    import hashlib

    assert hashlib.sha256((path / storage.TFLITE_NAME).read_bytes()).hexdigest() == read_card(path)["sha256"]
