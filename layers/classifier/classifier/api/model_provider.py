"""Which model serves a request: the registry's current version, hot-swapped without a cold start.

:func:`current_model` is what handlers call. The first call loads a model (never at import); later
calls return the cached one and re-read the registry pointer at most every ``MODEL_REFRESH_SECONDS``.
When the pointer names another version (or the same version with another sha256), its ``.tflite`` is
fetched from S3, checked against the pointer's sha256 and loaded; only then does it replace the
serving model. A version that fails to load (missing object, checksum mismatch, not a model) is
logged and the serving model stays; it is retried at the next refresh. With no pointer item, or no
registry configured, the baseline model shipped in the layer serves. If the registry cannot be
reached on a cold start, the baseline serves until it can.

The fetch runs in a thread of its own, and a request waits for it at most
``MODEL_FETCH_DEADLINE_SECONDS``: S3 answers a 1-2 MB object in well under that, so a healthy swap
still happens on the request that notices the new pointer. An S3 that stops answering would
otherwise hold that request for the S3 client's 4 attempts of up to 2 s + 5 s, past the predict
function's timeout; instead the serving model (the baseline on a cold start) answers, and the first
request after the fetch ends swaps the new model in. One fetch runs at a time.
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


class _Load:
    """One version's fetch and load, in a daemon thread: a hung S3 holds neither a request nor the
    process's exit. Its outcome is read once :meth:`wait` says it is done."""

    def __init__(self, pointer: Pointer, fetch: Callable[[str], bytes]):
        self.pointer = pointer
        self.model: TFLiteModel | None = None
        self.error: BaseException | None = None
        self._done = threading.Event()
        self._fetch = fetch
        threading.Thread(target=self._run, name=f"model-load-{pointer.version}", daemon=True).start()

    def _run(self) -> None:
        try:
            self.model = TFLiteModel.from_bytes(
                self._fetch(self.pointer.version), expected_sha256=self.pointer.sha256
            )
        except BaseException as error:  # handed to the request that reads the outcome
            self.error = error
        finally:
            self._done.set()

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, seconds: float) -> bool:
        return self._done.wait(seconds)


class ModelProvider:
    """The serving model and the rules for replacing it. Thread-safe; ``clock`` is injectable for tests.

    ``fetch_deadline_seconds`` is how long a request waits for a new version's fetch before the
    serving model answers it instead."""

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
        self._loading: _Load | None = None
        self._wanted: Pointer | None = None  # what the pointer named when last read
        self._next_check = 0.0

    def current(self) -> ServedModel:
        with self._lock:
            if self._loading is not None and self._loading.done():
                self._finish(self._loading)
            now = self._clock()
            if self._served is None or now >= self._next_check:
                self._next_check = now + self._refresh_seconds
                self._refresh()
            assert self._served is not None  # nosec B101  # type narrowing: _refresh() always sets a model or raises
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

    def _refresh(self) -> None:
        try:
            pointer = self._read_pointer()
        except _LOAD_ERRORS:
            logger.exception("Cannot read the model registry pointer; keeping the serving model")
            self._serve_something()
            return
        self._wanted = pointer
        if pointer is None:
            self._swap(self._baseline_model())
            return
        if self._served is not None and (self._served.version, self._served.sha256) == (
            pointer.version,
            pointer.sha256,
        ):
            return
        load = self._loading
        if load is None:
            load = self._loading = _Load(pointer, self._fetch)
        elif load.pointer != pointer:
            # another version's fetch is still hanging: wait for it to end rather than start a second
            logger.warning(
                "Model %s is not fetched while the fetch of %s has not ended",
                pointer.version,
                load.pointer.version,
                extra={"model_version": pointer.version, "fetching_version": load.pointer.version},
            )
            self._serve_something()
            return
        if load.wait(self._fetch_deadline):
            self._finish(load)
        else:
            logger.warning(
                "Model %s is still being fetched after %s s; the serving model answers meanwhile",
                pointer.version,
                self._fetch_deadline,
                extra={"model_version": pointer.version, "model_sha256": pointer.sha256},
            )
            self._serve_something()

    def _serve_something(self) -> None:
        if self._served is None:
            self._swap(self._baseline_model())

    def _finish(self, load: _Load) -> None:
        """Serve the outcome of a fetch that has ended, or log why it does not serve."""
        self._loading = None
        pointer = load.pointer
        if pointer != self._wanted:
            # the registry moved on while it was fetched: read the pointer again now
            logger.info(
                "Model %s was fetched after the registry stopped naming it; it does not serve",
                pointer.version,
                extra={"model_version": pointer.version},
            )
            self._next_check = float("-inf")
            return
        if load.model is not None:
            self._swap(ServedModel(version=pointer.version, sha256=load.model.sha256, predictor=load.model))
            return
        if not isinstance(load.error, _LOAD_ERRORS):
            raise load.error  # a bug, not a broken artifact: it must not pass as one
        logger.error(
            "Model %s failed to load; it does not replace the serving model",
            pointer.version,
            exc_info=load.error,
            extra={"model_version": pointer.version, "model_sha256": pointer.sha256},
        )
        self._serve_something()


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
