"""Which model serves a request: the registry's current version, hot-swapped without a cold start.

:func:`current_model` is what handlers call. The first call loads a model (never at import); later
calls return the cached one and re-read the registry pointer at most every ``MODEL_REFRESH_SECONDS``.
When the pointer names another version (or the same version with another sha256), its ``.tflite`` is
fetched from S3, checked against the pointer's sha256 and loaded; only then does it replace the
serving model. A version that fails to load (missing object, checksum mismatch, not a model) is
logged and the serving model stays; it is retried at the next refresh. With no pointer item, or no
registry configured, the baseline model shipped in the layer serves. If the registry cannot be
reached on a cold start, the baseline serves until it can.

A refresh (the pointer read, and a new version's fetch) runs in a thread of its own, and a request
waits for it at most ``MODEL_FETCH_DEADLINE_SECONDS``: DynamoDB and S3 answer in well under that,
so a healthy swap still happens on the request that notices the new pointer. A registry or S3 that
stops answering would otherwise hold that request for its client's timeouts and retries (S3: 4
attempts of up to 2 s + 5 s), past the predict function's timeout; instead the serving model (the
baseline on a cold start) answers, and the first request after the refresh ends applies it. One
refresh runs at a time; a fetched version the pointer no longer names when the fetch ends (a
rollback meanwhile) never serves.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from botocore.exceptions import BotoCoreError, ClientError

from classifier import aws
from classifier.cards import BASELINE_DIR, read_card, tflite_path
from classifier.errors import ModelLoadError
from classifier.litert import INPUT_SHAPE, TFLiteModel
from classifier.mlops import registry
from classifier.mlops.registry import Pointer
from classifier.settings import DEFAULT_MODEL_FETCH_DEADLINE_SECONDS, get_settings

logger = logging.getLogger(__name__)

# What a failed registry read or model fetch can raise; anything else is a bug and propagates.
_LOAD_ERRORS = (ClientError, BotoCoreError, ModelLoadError)


class Predictor(Protocol):
    def predict(self, images: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class ServedModel:
    version: str
    sha256: str
    predictor: Predictor


def load_baseline(directory: Path = BASELINE_DIR) -> ServedModel:
    """The model shipped in the layer, checked against the sha256 in its card."""
    card = read_card(directory)
    try:
        content = tflite_path(directory).read_bytes()
    except OSError as error:
        raise ModelLoadError(f"The baseline model in {directory} cannot be read: {error}") from error
    model = TFLiteModel.from_bytes(content, expected_sha256=card.get("sha256"))
    return ServedModel(version=str(card.get("version", "baseline")), sha256=model.sha256, predictor=model)


@dataclass
class _Outcome:
    """What one refresh found. ``kind``: "baseline" (no pointer), "unchanged", "model" (a new one,
    loaded and checked), "moved" (the pointer changed while the model was fetched), "unreadable"
    (the pointer could not be read) or "broken" (the version it names failed to load)."""

    kind: str
    pointer: Pointer | None = None
    model: TFLiteModel | None = None
    error: BaseException | None = None


class _Refresh:
    """One refresh (read the pointer; fetch, check and load a new version) in a daemon thread: a
    registry or S3 that stops answering holds neither a request nor the process's exit."""

    def __init__(self, work: Callable[[], _Outcome]):
        self.outcome: _Outcome | None = None
        self.bug: BaseException | None = None
        self._done = threading.Event()
        threading.Thread(target=self._run, args=(work,), name="model-refresh", daemon=True).start()

    def _run(self, work: Callable[[], _Outcome]) -> None:
        try:
            self.outcome = work()
        except BaseException as error:  # raised on the request that reads the outcome
            self.bug = error
        finally:
            self._done.set()

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, seconds: float) -> bool:
        return self._done.wait(seconds)


class ModelProvider:
    """The serving model and the rules for replacing it. Thread-safe; ``clock`` is injectable for tests.

    ``fetch_deadline_seconds`` is how long a request waits for a refresh (the pointer read, and a
    new version's fetch) before the serving model answers it instead."""

    def __init__(
        self,
        *,
        read_pointer: Callable[[], Pointer | None],
        fetch: Callable[[str], bytes],
        baseline: Callable[[], ServedModel] = load_baseline,
        refresh_seconds: float,
        fetch_deadline_seconds: float = DEFAULT_MODEL_FETCH_DEADLINE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._read_pointer = read_pointer
        self._fetch = fetch
        self._load_baseline = baseline
        self._refresh_seconds = refresh_seconds
        self._fetch_deadline = fetch_deadline_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._baseline: ServedModel | None = None
        self._served: ServedModel | None = None
        self._refreshing: _Refresh | None = None
        self._next_check = 0.0

    def current(self) -> ServedModel:
        with self._lock:
            if self._refreshing is not None and self._refreshing.done():
                self._finish(self._refreshing)
            now = self._clock()
            if self._refreshing is None and (self._served is None or now >= self._next_check):
                self._next_check = now + self._refresh_seconds
                served = None if self._served is None else (self._served.version, self._served.sha256)
                refresh = self._refreshing = _Refresh(lambda: self._refresh(served))
                if refresh.wait(self._fetch_deadline):
                    self._finish(refresh)
                else:
                    logger.warning(
                        "The model refresh has not ended after %s s; the serving model answers meanwhile",
                        self._fetch_deadline,
                    )
            if self._served is None:  # a cold start whose refresh has not ended
                self._swap(self._baseline_model())
            return self._served

    def expire(self) -> None:
        """Make the next :meth:`current` re-read the registry pointer, whatever the refresh interval."""
        with self._lock:
            self._next_check = float("-inf")

    def _baseline_model(self) -> ServedModel:
        if self._baseline is None:
            self._baseline = self._load_baseline()
        return self._baseline

    def _swap(self, model: ServedModel) -> None:
        if self._served is not model:
            logger.info(
                "Serving model %s",
                model.version,
                extra={
                    "model_version": model.version,
                    "model_sha256": model.sha256,
                    "previous_version": self._served.version if self._served else None,
                },
            )
            self._served = model

    def _refresh(self, served: tuple[str, str] | None) -> _Outcome:
        """The work of one refresh, off the request's thread; ``served`` is the serving version and
        sha256 when it started."""
        try:
            pointer = self._read_pointer()
        except _LOAD_ERRORS as error:
            return _Outcome("unreadable", error=error)
        if pointer is None:
            return _Outcome("baseline")
        if served == (pointer.version, pointer.sha256):
            return _Outcome("unchanged", pointer)
        try:
            model = TFLiteModel.from_bytes(self._fetch(pointer.version), expected_sha256=pointer.sha256)
            moved = self._read_pointer() != pointer  # a rollback while a slow fetch ran
        except _LOAD_ERRORS as error:
            return _Outcome("broken", pointer, error=error)
        return _Outcome("moved" if moved else "model", pointer, model)

    def _finish(self, refresh: _Refresh) -> None:
        """Apply a refresh that has ended."""
        self._refreshing = None
        if refresh.bug is not None:
            raise refresh.bug  # a bug, not a broken registry or artifact: it must not pass as one
        outcome = refresh.outcome
        assert outcome is not None  # nosec B101  # type narrowing: a refresh ends with an outcome or a bug
        pointer = outcome.pointer
        if outcome.kind == "baseline":
            self._swap(self._baseline_model())
        elif outcome.kind == "model":
            assert pointer is not None and outcome.model is not None  # nosec B101  # type narrowing
            model = outcome.model
            self._swap(ServedModel(version=pointer.version, sha256=model.sha256, predictor=model))
        elif outcome.kind == "moved":
            assert pointer is not None  # nosec B101  # type narrowing
            logger.info(
                "Model %s was fetched after the registry stopped naming it; it does not serve",
                pointer.version,
                extra={"model_version": pointer.version},
            )
            self._next_check = float("-inf")  # read the pointer again at the next request
        elif outcome.kind == "unreadable":
            logger.error(
                "Cannot read the model registry pointer; keeping the serving model", exc_info=outcome.error
            )
        elif outcome.kind == "broken":
            assert pointer is not None  # nosec B101  # type narrowing
            logger.error(
                "Model %s failed to load; it does not replace the serving model",
                pointer.version,
                exc_info=outcome.error,
                extra={"model_version": pointer.version, "model_sha256": pointer.sha256},
            )


def registry_provider(*, clock: Callable[[], float] = time.monotonic) -> ModelProvider:
    """The provider the functions use: pointer in ``MODELS_TABLE``, artifacts in ``ARTIFACTS_BUCKET``."""
    settings = get_settings()

    def read_pointer() -> Pointer | None:
        if not settings.models_table:
            return None
        return registry.read_pointer(aws.table(settings.models_table))

    def fetch(version: str) -> bytes:
        key = registry.tflite_key(aws.table(settings.models_table), version)
        return aws.s3().get_object(Bucket=settings.artifacts_bucket, Key=key)["Body"].read()

    return ModelProvider(
        read_pointer=read_pointer,
        fetch=fetch,
        refresh_seconds=settings.model_refresh_seconds,
        fetch_deadline_seconds=settings.model_fetch_deadline_seconds,
        clock=clock,
    )


_provider: ModelProvider | None = None
_provider_lock = threading.Lock()


def get_provider() -> ModelProvider:
    """The process's provider, created on first use."""
    global _provider
    with _provider_lock:
        if _provider is None:
            _provider = registry_provider()
        return _provider


def set_provider(provider: ModelProvider | None) -> None:
    """Replace the process's provider (tests, benchmarks); None makes the next call build the default."""
    global _provider
    with _provider_lock:
        _provider = provider


def current_model() -> ServedModel:
    return get_provider().current()


def before_snapshot() -> ServedModel:
    """Load the serving model, run it once and close the AWS connections: what a SnapStart snapshot
    should hold.

    Lambda calls this before it snapshots a SnapStart version (:func:`classifier.coldstart.on_snapstart`),
    so that an environment restored from the snapshot has its model, its DynamoDB client and LiteRT's
    prepared weights, and its first request does none of that work. The clients keep no connection:
    one frozen in the snapshot would be dead on restore. Never called at import.
    """
    model = current_model()
    model.predictor.predict(np.zeros((1, *INPUT_SHAPE), np.uint8))
    aws.close_connections()
    return model


def after_restore() -> None:
    """After a SnapStart restore: the snapshot may be days old, so the first request re-reads the pointer."""
    get_provider().expire()
