"""Which model serves: the registry's current version, hot-swapped at most every refresh interval,
never replaced by a model that fails to load, and the layer's baseline when the registry names none."""

import hashlib
import json

import numpy as np
import pytest

from classifier import storage
from classifier.api import model_provider
from classifier.api.model_provider import ModelProvider, load_baseline, registry_provider
from classifier.cards import BASELINE_DIR, baseline_card
from classifier.errors import ModelLoadError
from classifier.mlops import registry

BASELINE_BYTES = (BASELINE_DIR / "model.tflite").read_bytes()
BASELINE_VERSION = baseline_card()["version"]
SHA = hashlib.sha256(BASELINE_BYTES).hexdigest()


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def provider(aws, clock, monkeypatch) -> ModelProvider:
    """The functions' provider (registry in moto), with a 60 s refresh and a clock the test moves."""
    monkeypatch.setenv("MODEL_REFRESH_SECONDS", "60")
    model_provider.get_settings.cache_clear()
    return registry_provider(clock=clock)


def publish(aws, version: str, content: bytes = BASELINE_BYTES, *, key: str | None = None) -> None:
    """What promotion does: the artifact in S3, the version item, then the pointer."""
    key = key or storage.model_key(version)
    aws.s3.put_object(Bucket=aws.bucket, Key=key, Body=content)
    aws.models.put_item(Item={"version": version, "status": "promoted", "sha256": SHA, "tflite_key": key})
    point_to(aws, version, SHA)


def point_to(aws, version: str, sha256: str) -> None:
    aws.models.put_item(
        Item={"version": registry.POINTER_VERSION, "current_version": version, "sha256": sha256}
    )


def test_without_a_pointer_the_baseline_serves(provider):
    model = provider.current()
    assert model.version == BASELINE_VERSION and model.sha256 == SHA


def test_the_current_model_is_cached_between_requests(provider, clock):
    first = provider.current()
    clock.now += 1
    assert provider.current() is first


def test_a_promoted_version_is_swapped_in_after_the_refresh_interval(aws, provider, clock):
    assert provider.current().version == BASELINE_VERSION
    publish(aws, "v2")

    clock.now += 59
    assert provider.current().version == BASELINE_VERSION  # not re-read yet
    clock.now += 1
    swapped = provider.current()
    assert swapped.version == "v2" and swapped.sha256 == SHA
    assert swapped.predictor.predict(np.zeros((1, 32, 32, 3), np.uint8)).shape == (1, 10)


def test_the_version_items_tflite_key_is_honoured(aws, provider):
    publish(aws, "v3", key="models/v3/exported.tflite")
    assert provider.current().version == "v3"


@pytest.mark.parametrize(
    "breakage",
    ["checksum mismatch", "missing artifact", "not a model"],
)
def test_a_model_that_fails_to_load_never_replaces_the_serving_one(aws, provider, clock, breakage):
    publish(aws, "v2")
    assert provider.current().version == "v2"

    if breakage == "checksum mismatch":
        aws.s3.put_object(Bucket=aws.bucket, Key=storage.model_key("v3"), Body=BASELINE_BYTES + b"tampered")
        point_to(aws, "v3", SHA)
    elif breakage == "missing artifact":
        point_to(aws, "v3", SHA)
    else:
        junk = b"not a tflite model"
        aws.s3.put_object(Bucket=aws.bucket, Key=storage.model_key("v3"), Body=junk)
        point_to(aws, "v3", hashlib.sha256(junk).hexdigest())
    clock.now += 60

    assert provider.current().version == "v2"


def test_a_broken_pointer_on_a_cold_start_serves_the_baseline(aws, provider):
    point_to(aws, "v9", SHA)  # no artifact anywhere
    assert provider.current().version == BASELINE_VERSION


def test_a_malformed_pointer_keeps_the_serving_model(aws, provider, clock):
    publish(aws, "v2")
    provider.current()
    aws.models.put_item(Item={"version": registry.POINTER_VERSION, "current_version": "v3"})  # no sha256
    clock.now += 60
    assert provider.current().version == "v2"


def test_deleting_the_pointer_goes_back_to_the_baseline(aws, provider, clock):
    publish(aws, "v2")
    assert provider.current().version == "v2"
    aws.models.delete_item(Key={"version": registry.POINTER_VERSION})
    clock.now += 60
    assert provider.current().version == BASELINE_VERSION


def test_an_unreachable_registry_keeps_the_serving_model(aws, provider, clock):
    publish(aws, "v2")
    provider.current()
    aws.models.client.delete_table(
        TableName=aws.models.name
    )  # DynamoDB now answers ResourceNotFoundException
    clock.now += 60
    assert provider.current().version == "v2"


def test_no_models_table_configured_means_baseline_only(aws, monkeypatch):
    monkeypatch.setenv("MODELS_TABLE", "")
    model_provider.get_settings.cache_clear()
    assert model_provider.current_model().version == BASELINE_VERSION


def test_the_baseline_is_checked_against_its_card(tmp_path):
    (tmp_path / "model.tflite").write_bytes(BASELINE_BYTES + b"x")
    (tmp_path / "card.json").write_text(json.dumps({"version": "b", "sha256": SHA}))
    with pytest.raises(ModelLoadError, match="checksum"):
        load_baseline(tmp_path)
    with pytest.raises(ModelLoadError, match="cannot be read"):
        load_baseline(tmp_path / "missing")


def test_nothing_is_loaded_at_import():
    model_provider.set_provider(None)
    assert model_provider._provider is None


def test_expiring_makes_the_next_request_reread_the_pointer(aws, provider, clock):
    # given the baseline serving, and a version promoted within the refresh interval
    assert provider.current().version == BASELINE_VERSION
    publish(aws, "v2")
    clock.now += 1

    # when the provider is expired (after a SnapStart restore), the next request serves the new version
    provider.expire()
    assert provider.current().version == "v2"
