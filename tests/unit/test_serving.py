"""Which model serves: the registry's current version, hot-swapped at most every refresh interval,
never replaced by a model that fails to load, and the layer's baseline when the registry names none."""

import hashlib
import json
import threading
import time

import numpy as np
import pytest
from botocore.exceptions import ReadTimeoutError

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


# ---- a fetch that does not end: S3 accepting the request and never answering


class HeldFetch:
    """A model fetch the test holds until it calls :meth:`release` (S3 hung, then answering)."""

    def __init__(self, content: bytes = BASELINE_BYTES):
        self.content = content
        self.calls: list[str] = []
        self.error: BaseException | None = None
        self._released = threading.Event()

    def __call__(self, version: str) -> bytes:
        self.calls.append(version)
        self._released.wait(10)
        if self.error is not None:
            raise self.error
        return self.content

    def release(self) -> None:
        self._released.set()


class Registry:
    """The pointer, as the test sets it."""

    def __init__(self, version: str | None = None):
        self.pointer = registry.Pointer(version, SHA) if version else None

    def __call__(self) -> registry.Pointer | None:
        return self.pointer


def held_provider(pointer: Registry, fetch: HeldFetch, clock, *, deadline: float = 0.05) -> ModelProvider:
    return ModelProvider(
        read_pointer=pointer, fetch=fetch, refresh_seconds=60, fetch_deadline_seconds=deadline, clock=clock
    )


def ended(fetch_thread_name: str = "model-refresh") -> bool:
    """Whether every model fetch thread has ended (joined, so a test reads its outcome)."""
    for thread in threading.enumerate():
        if thread.name.startswith(fetch_thread_name):
            thread.join(5)
    return not any(t.name.startswith(fetch_thread_name) for t in threading.enumerate())


def test_a_hung_fetch_leaves_the_serving_model_answering_within_the_deadline(clock):
    # given v1 serving, then v2 promoted with S3 holding its fetch
    pointer, fetch = Registry("v1"), HeldFetch()
    provider = held_provider(pointer, fetch, clock)
    fetch.release()
    assert provider.current().version == "v1"
    fetch._released.clear()
    pointer.pointer = registry.Pointer("v2", SHA)
    clock.now += 60

    # when requests come in while the fetch hangs, across several refreshes
    started = time.monotonic()
    answered = []
    for _ in range(3):
        answered.append(provider.current().version)
        clock.now += 60
    took = time.monotonic() - started

    # then v1 answers each at once, and v2 is fetched once, not once per refresh
    assert answered == ["v1", "v1", "v1"] and took < 1.0
    assert fetch.calls == ["v1", "v2"]

    # when S3 answers, the next request is served by v2, without waiting for a refresh
    fetch.release()
    assert ended()
    assert provider.current().version == "v2"


def test_a_hung_fetch_on_a_cold_start_serves_the_baseline_until_it_ends(clock):
    pointer, fetch = Registry("v2"), HeldFetch()
    provider = held_provider(pointer, fetch, clock)

    assert provider.current().version == BASELINE_VERSION

    fetch.release()
    assert ended()
    assert provider.current().version == "v2"


def test_a_healthy_fetch_swaps_on_the_request_that_notices_the_pointer(clock):
    # given a deadline longer than the fetch takes: no request is answered by the old model
    pointer, fetch = Registry("v2"), HeldFetch()
    fetch.release()
    provider = held_provider(pointer, fetch, clock, deadline=5)
    assert provider.current().version == "v2"


def test_a_hung_fetch_that_fails_is_retried_at_the_next_refresh(clock):
    pointer, fetch = Registry("v1"), HeldFetch()
    fetch.release()
    provider = held_provider(pointer, fetch, clock)
    provider.current()
    fetch._released.clear()
    pointer.pointer = registry.Pointer("v2", SHA)
    clock.now += 60
    assert provider.current().version == "v1"

    # when the hung fetch ends in an error (the S3 client's attempts used up)
    fetch.error = ReadTimeoutError(endpoint_url="https://s3.amazonaws.com/")
    fetch.release()
    assert ended()

    # then v1 keeps serving until the next refresh, which fetches v2 again and serves it
    assert provider.current().version == "v1"
    fetch.error = None
    clock.now += 60
    assert provider.current().version == "v2" and fetch.calls == ["v1", "v2", "v2"]


def test_a_version_fetched_after_the_registry_moved_on_never_serves(clock):
    # given v1 serving and v2's fetch hanging
    pointer, fetch = Registry("v1"), HeldFetch()
    fetch.release()
    provider = held_provider(pointer, fetch, clock)
    provider.current()
    fetch._released.clear()
    pointer.pointer = registry.Pointer("v2", SHA)
    clock.now += 60
    provider.current()

    # when v2 is rolled back (the pointer names v1 again) before its fetch ends
    pointer.pointer = registry.Pointer("v1", SHA)
    clock.now += 60
    assert provider.current().version == "v1"
    fetch.release()
    assert ended()

    # then v2 never serves
    assert provider.current().version == "v1"
    clock.now += 60
    assert provider.current().version == "v1"


def test_a_bug_in_a_background_fetch_is_raised_not_taken_for_a_broken_model(clock):
    pointer, fetch = Registry("v2"), HeldFetch()
    fetch.error = TypeError("a bug")
    fetch.release()
    provider = held_provider(pointer, fetch, clock, deadline=5)
    with pytest.raises(TypeError, match="a bug"):
        provider.current()


def test_the_fetch_deadline_comes_from_the_environment(aws, monkeypatch):
    monkeypatch.setenv("MODEL_FETCH_DEADLINE_SECONDS", "0.5")
    model_provider.get_settings.cache_clear()
    assert registry_provider()._fetch_deadline == 0.5


class HeldRegistry(Registry):
    """A pointer read the test holds until it calls :meth:`release` (DynamoDB hung)."""

    def __init__(self, version: str | None = None):
        super().__init__(version)
        self.held = threading.Event()

    def __call__(self) -> registry.Pointer | None:
        self.held.wait(10)
        return self.pointer


def test_a_hung_registry_read_leaves_the_serving_model_answering(clock):
    # given v1 serving, then the registry hanging at the next refresh, with v2 promoted
    pointer, fetch = HeldRegistry("v1"), HeldFetch()
    pointer.held.set()
    fetch.release()
    provider = held_provider(pointer, fetch, clock)
    assert provider.current().version == "v1"
    pointer.held.clear()
    pointer.pointer = registry.Pointer("v2", SHA)
    clock.now += 60

    # then the requests meanwhile are answered by v1 at once
    started = time.monotonic()
    assert [provider.current().version for _ in range(3)] == ["v1"] * 3
    assert time.monotonic() - started < 1.0

    # and once the registry answers, the next request serves v2
    pointer.held.set()
    assert ended()
    assert provider.current().version == "v2"
