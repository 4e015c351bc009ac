"""The S3 layout of the artifacts bucket, defined once. Every key the system reads or writes is built here.

```
models/<version>/model.tflite | model.keras | card.json   one folder per model version
datasets/base/<name>                                       the fixed base train and test sets
training-data/<label>/<sha256>.<ext>                       accepted user images, content addressed
training-data/provenance/<label>/<sha256>.<ext>/<source>.json   who else produced a stored image
uploads/<upload_id>/<name>                                 presigned zip uploads and their reports
checkpoints/<job_id>/<name>                                a retraining job's checkpoints
monitoring/<window end>.json                               one drift report per monitoring window
```
"""

from classifier.labels import LABEL_INDEX

MODELS_PREFIX = "models/"
DATASETS_PREFIX = "datasets/base/"
TRAINING_DATA_PREFIX = "training-data/"
UPLOADS_PREFIX = "uploads/"
CHECKPOINTS_PREFIX = "checkpoints/"
MONITORING_PREFIX = "monitoring/"

TFLITE_NAME = "model.tflite"
KERAS_NAME = "model.keras"
CARD_NAME = "card.json"


def _segment(value: str, what: str) -> str:
    if not value or "/" in value or value in (".", ".."):
        raise ValueError(f"Not a valid {what} for an S3 key segment: {value!r}.")
    return value


def model_prefix(version: str) -> str:
    return f"{MODELS_PREFIX}{_segment(version, 'model version')}/"


def model_key(version: str, name: str = TFLITE_NAME) -> str:
    """Key of one artifact of a version: ``model.tflite`` (default), ``model.keras`` or ``card.json``."""
    return model_prefix(version) + _segment(name, "file name")


def dataset_key(name: str) -> str:
    return DATASETS_PREFIX + _segment(name, "file name")


def training_data_key(label: str, sha256: str, extension: str) -> str:
    if label not in LABEL_INDEX:
        raise ValueError(f"Unknown label {label!r}.")
    name = f"{_segment(sha256, 'sha256')}.{_segment(extension.lstrip('.'), 'extension')}"
    return f"{TRAINING_DATA_PREFIX}{label}/{name}"


PROVENANCE_FOLDER = "provenance"  # under TRAINING_DATA_PREFIX: not a label, so never read as an image


def training_data_parts(key: str) -> tuple[str, str]:
    """(label, file name) of a ``training-data/<label>/<name>`` image key; ValueError for any other key."""
    prefix, _, rest = key.partition(TRAINING_DATA_PREFIX)
    label, _, name = rest.partition("/")
    if prefix or label not in LABEL_INDEX or not name or "/" in name:
        raise ValueError(f"Not a training-data image key: {key!r}.")
    return label, name


def provenance_prefix(image_key: str) -> str:
    """Where the provenance markers of one training-data image are: one object per producer besides
    the first upload (a feedback, or an upload of an image a feedback had stored), so a feedback
    image is deleted only when nothing else produced it. Under ``training-data/`` so that every
    function allowed to store training data may also write its provenance."""
    label, name = training_data_parts(image_key)
    return f"{TRAINING_DATA_PREFIX}{PROVENANCE_FOLDER}/{label}/{name}/"


def provenance_key(image_key: str, source_id: str) -> str:
    """One producer's marker: ``feedback-<prediction id>.json`` or ``upload.json``."""
    return f"{provenance_prefix(image_key)}{_segment(source_id, 'source id')}.json"


def image_key_of_provenance(key: str) -> str | None:
    """The image key a provenance marker names, else None."""
    parts = key.split("/")
    if len(parts) != 5 or f"{parts[0]}/" != TRAINING_DATA_PREFIX or parts[1] != PROVENANCE_FOLDER:
        return None
    return f"{TRAINING_DATA_PREFIX}{parts[2]}/{parts[3]}" if parts[2] in LABEL_INDEX else None


def upload_key(upload_id: str, name: str) -> str:
    return f"{UPLOADS_PREFIX}{_segment(upload_id, 'upload id')}/{_segment(name, 'file name')}"


def checkpoint_key(job_id: str, name: str) -> str:
    return f"{CHECKPOINTS_PREFIX}{_segment(job_id, 'job id')}/{_segment(name, 'file name')}"


def monitoring_key(window_end: str) -> str:
    """One report per window, named by the window's end (a ``classifier.clock`` timestamp: they sort)."""
    return f"{MONITORING_PREFIX}{_segment(window_end, 'window end')}.json"


BASE_TRAIN_NAME = "cifar10-train.zip"
BASE_TEST_NAME = "cifar10-test.zip"


def base_dataset_uri(bucket: str, name: str) -> str:
    return f"s3://{bucket}/{dataset_key(name)}"


# Batch jobs: batch-jobs/<job_id>/upload.zip (the client's zip), parts/<chunk:06d>.jsonl (one per
# chunk: a redelivered chunk overwrites its own), results.jsonl, results.csv, summary.json.
BATCH_JOBS_PREFIX = "batch-jobs/"
BATCH_JOB_UPLOAD_NAME = "upload.zip"


def batch_job_key(job_id: str, name: str) -> str:
    return f"{BATCH_JOBS_PREFIX}{_segment(job_id, 'job id')}/{_segment(name, 'file name')}"


def batch_job_part_key(job_id: str, chunk: int) -> str:
    if chunk < 0:
        raise ValueError(f"Not a chunk number: {chunk}.")
    return f"{BATCH_JOBS_PREFIX}{_segment(job_id, 'job id')}/parts/{chunk:06d}.jsonl"


def batch_job_of_upload(key: str) -> str | None:
    """The job id of a ``batch-jobs/<id>/upload.zip`` key, else None."""
    parts = key.split("/")
    if (
        len(parts) == 3
        and f"{parts[0]}/" == BATCH_JOBS_PREFIX
        and parts[2] == BATCH_JOB_UPLOAD_NAME
        and parts[1]
    ):
        return parts[1]
    return None
