"""Every environment variable the functions read, in one place.

``template.yaml`` sets them (Globals and per-function ``Environment``); tests and local runs set
them with ``monkeypatch.setenv`` and call ``get_settings.cache_clear()``. Powertools reads its own
``POWERTOOLS_*`` variables itself.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from classifier.limits import DEFAULT_JOB_CHUNK_IMAGES

DEFAULT_MODEL_REFRESH_SECONDS = 60.0
# How long a request waits for a model refresh (the registry pointer, a new version's .tflite)
# before the serving model answers it (classifier.api.model_provider); DynamoDB and S3 answer in a
# fraction of it.
DEFAULT_MODEL_FETCH_DEADLINE_SECONDS = 2.0
# The monitor's defaults (classifier.drift says why these figures); stdlib only here: the layer's
# build imports classifier.aws, and with it this module, without numpy.
DEFAULT_DRIFT_THRESHOLD = 0.1
DEFAULT_MIN_WINDOW = 500
DEFAULT_LOW_CONFIDENCE = 0.5


@dataclass(frozen=True)
class Settings:
    predictions_table: str  # PREDICTIONS_TABLE: prediction records
    models_table: str  # MODELS_TABLE: model registry; empty means "no registry, serve the baseline"
    jobs_table: str  # JOBS_TABLE: retraining jobs
    artifacts_bucket: str  # ARTIFACTS_BUCKET: models, datasets, training data (see classifier.storage)
    model_refresh_seconds: float  # MODEL_REFRESH_SECONDS: how often serving re-reads the registry pointer
    # MODEL_FETCH_DEADLINE_SECONDS: how long a request waits for a model refresh
    model_fetch_deadline_seconds: float = DEFAULT_MODEL_FETCH_DEADLINE_SECONDS
    idempotency_table: str = ""  # IDEMPOTENCY_TABLE: Powertools idempotency records of POST /retrain
    retrain_function: str = ""  # RETRAIN_FUNCTION: name of the retraining Lambda, invoked asynchronously
    base_train_data: str = ""  # BASE_TRAIN_DATA: path or s3:// URI; default s3://<bucket>/datasets/base/...
    base_test_data: str = ""  # BASE_TEST_DATA: the fixed test set every candidate is evaluated on
    operator_usage_plan: str = ""  # OPERATOR_USAGE_PLAN: name of the usage plan whose keys are operators
    drift_threshold: float = DEFAULT_DRIFT_THRESHOLD  # DRIFT_THRESHOLD: JS distance a window may reach
    min_window_predictions: int = DEFAULT_MIN_WINDOW  # MIN_WINDOW_PREDICTIONS: fewer is "not enough data"
    low_confidence_threshold: float = (
        DEFAULT_LOW_CONFIDENCE  # LOW_CONFIDENCE_THRESHOLD: top-1 under it is low
    )
    monitor_window_hours: float = 1.0  # MONITOR_WINDOW_HOURS: the scheduled monitor's window
    dynamodb_read_timeout_seconds: float = 2.0  # DYNAMODB_READ_TIMEOUT_SECONDS (classifier.aws.clients)
    # KEEP_MODEL_INPUTS: keep each prediction's 32x32 model input (a PNG) in its record; "true" or "false"
    keep_model_inputs: bool = True
    batch_jobs_table: str = ""  # BATCH_JOBS_TABLE: batch jobs (POST /predict/jobs)
    batch_job_queue_url: str = ""  # BATCH_JOB_QUEUE_URL: the queue of a job's chunks
    batch_job_split_function: str = ""  # BATCH_JOB_SPLIT_FUNCTION: invoked for a job from an S3 prefix
    batch_job_chunk_images: int = DEFAULT_JOB_CHUNK_IMAGES  # BATCH_JOB_CHUNK_IMAGES: entries per chunk

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "Settings":
        refresh = environ.get("MODEL_REFRESH_SECONDS", "").strip()
        try:
            model_refresh_seconds = float(refresh) if refresh else DEFAULT_MODEL_REFRESH_SECONDS
        except ValueError as error:
            raise ValueError(
                f"MODEL_REFRESH_SECONDS must be a number of seconds, not {refresh!r}."
            ) from error
        if model_refresh_seconds < 0:
            raise ValueError(f"MODEL_REFRESH_SECONDS must be >= 0, not {model_refresh_seconds}.")
        keep = environ.get("KEEP_MODEL_INPUTS", "").strip().lower()
        if keep not in ("", "true", "false"):
            raise ValueError(f"KEEP_MODEL_INPUTS must be 'true' or 'false', not {keep!r}.")
        return cls(
            predictions_table=environ.get("PREDICTIONS_TABLE", ""),
            models_table=environ.get("MODELS_TABLE", ""),
            jobs_table=environ.get("JOBS_TABLE", ""),
            artifacts_bucket=environ.get("ARTIFACTS_BUCKET", ""),
            model_refresh_seconds=model_refresh_seconds,
            model_fetch_deadline_seconds=_number(
                environ, "MODEL_FETCH_DEADLINE_SECONDS", DEFAULT_MODEL_FETCH_DEADLINE_SECONDS
            ),
            idempotency_table=environ.get("IDEMPOTENCY_TABLE", ""),
            retrain_function=environ.get("RETRAIN_FUNCTION", ""),
            base_train_data=environ.get("BASE_TRAIN_DATA", ""),
            base_test_data=environ.get("BASE_TEST_DATA", ""),
            operator_usage_plan=environ.get("OPERATOR_USAGE_PLAN", ""),
            drift_threshold=_number(environ, "DRIFT_THRESHOLD", DEFAULT_DRIFT_THRESHOLD),
            min_window_predictions=int(_number(environ, "MIN_WINDOW_PREDICTIONS", DEFAULT_MIN_WINDOW)),
            low_confidence_threshold=_number(environ, "LOW_CONFIDENCE_THRESHOLD", DEFAULT_LOW_CONFIDENCE),
            monitor_window_hours=_number(environ, "MONITOR_WINDOW_HOURS", 1.0),
            dynamodb_read_timeout_seconds=_number(environ, "DYNAMODB_READ_TIMEOUT_SECONDS", 2.0),
            keep_model_inputs=keep != "false",
            batch_jobs_table=environ.get("BATCH_JOBS_TABLE", ""),
            batch_job_queue_url=environ.get("BATCH_JOB_QUEUE_URL", ""),
            batch_job_split_function=environ.get("BATCH_JOB_SPLIT_FUNCTION", ""),
            batch_job_chunk_images=max(
                1, int(_number(environ, "BATCH_JOB_CHUNK_IMAGES", DEFAULT_JOB_CHUNK_IMAGES))
            ),
        )


def _number(environ: Mapping[str, str], name: str, default: float) -> float:
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError as error:
        raise ValueError(f"{name} must be a number, not {text!r}.") from error
    if value < 0:
        raise ValueError(f"{name} must be >= 0, not {value}.")
    return value


@cache
def get_settings() -> Settings:
    """The process's settings, read from the environment on first use."""
    return Settings.from_env()
