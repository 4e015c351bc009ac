"""User training data: labelled images stored content-addressed in S3, from direct uploads or
from zips of class folders, each image checked by the preprocessing contract.

- ``add_images``: direct uploads (POST /training-data); per image accepted, duplicate or rejected.
- ``create_upload`` / ``ingest_zip``: a presigned S3 upload of a zip (the layout of
  ``../shared/data/*.zip``); the object landing in S3 triggers the ingest function, which checks
  the archive (zip bombs, path traversal, nested archives, non-images, unknown classes) entry by
  entry or as a whole and writes a report. Nothing already stored is ever overwritten or deleted:
  keys are the sha256 of the content, so the same image twice is one object.
- ``add_feedback_image`` / ``remove_feedback_image``: the kept model input of a prediction with
  feedback, stored as a training image of its true label (a PNG, content addressed like the rest),
  and moved when the feedback's label is replaced.
- ``summary`` and ``load_user_data``: what is stored, for GET /training-data and for retraining.

**Provenance.** An image's first producer is in its object metadata (``source``: ``upload`` or
``feedback``, and for feedback the prediction id and owner). Every feedback that produces an image
also writes a marker, ``training-data/provenance/<label>/<name>/feedback-<prediction id>.json``,
and an upload of an image that feedback had stored writes ``.../upload.json``. A feedback image is
deleted (its feedback moved to another label) only when no marker remains and its metadata says
feedback stored it: an upload's image is never deleted. The count of GET /training-data and the
manifest of a retraining job come from the same listing: an image is a feedback image when at least
one feedback names it, else an upload.
"""

import dataclasses
import hashlib
import io
import json
import lzma
import uuid
import zipfile
import zlib
from collections import Counter
from pathlib import PurePosixPath
from typing import Any, BinaryIO

import numpy as np
from botocore.exceptions import ClientError
from PIL import Image

from classifier import storage
from classifier.aws import is_missing, object_exists
from classifier.clock import utc_now
from classifier.datasets import Dataset, class_of
from classifier.errors import (
    InvalidImageError,
    RequestShapeError,
    ResourceNotFoundError,
    TooManyImagesError,
    UploadRefusedError,
)
from classifier.labels import LABEL_INDEX, LABELS
from classifier.limits import (
    MAX_DIRECT_TRAINING_IMAGES,
    MAX_IMAGE_BYTES,
    MAX_UPLOAD_ZIP_BYTES,
    MAX_ZIP_COMPRESSION_RATIO,
    MAX_ZIP_ENTRIES,
    MAX_ZIP_UNCOMPRESSED_BYTES,
    PRESIGNED_UPLOAD_SECONDS,
)
from classifier.preprocessing import decode_image

EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"}
ARCHIVE_SUFFIXES = frozenset({".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".zst"})
ARCHIVE_MAGIC = (b"PK\x03\x04", b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"7z\xbc\xaf", b"Rar!", b"\x28\xb5\x2f\xfd")
UPLOAD_NAME = "upload.zip"
REQUEST_NAME = "request.json"
REPORT_NAME = "report.json"
MAX_REPORTED_REJECTIONS = 1000  # entries listed by name in a report; all are counted
SOURCE_UPLOAD = "upload"  # object metadata "source" of an image an upload stored first
SOURCE_FEEDBACK = "feedback"  # ... that a prediction's feedback stored first
UPLOAD_MARKER = "upload"
FEEDBACK_MARKER_PREFIX = "feedback-"
# What zipfile raises for a damaged archive or entry (bad CRC or header, corrupt compressed data, an
# unknown compression method, undecodable names), besides BadZipFile.
DAMAGED_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    NotImplementedError,
    OSError,
    ValueError,
)


@dataclasses.dataclass(frozen=True)
class ItemResult:
    name: str
    status: str  # accepted | duplicate | rejected
    label: str | None = None
    sha256: str | None = None
    key: str | None = None
    reason: str | None = None

    def to_json(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


def check_label(label: Any) -> str:
    if label not in LABEL_INDEX:
        raise RequestShapeError(f"Unknown label {label!r}; use one of {', '.join(LABELS)}.")
    return label


def add_images(s3, bucket: str, label: str, items: list[tuple[str, bytes]]) -> list[ItemResult]:
    """Store each (name, bytes) under ``label``; the label itself is checked first."""
    check_label(label)
    if not items:
        raise RequestShapeError("No images in the request.")
    if len(items) > MAX_DIRECT_TRAINING_IMAGES:
        raise TooManyImagesError(
            f"{len(items)} images in one request; the limit is {MAX_DIRECT_TRAINING_IMAGES}. "
            'Send more as a zip upload (POST /training-data with {"upload": true}).'
        )
    return [store_image(s3, bucket, label, name, data) for name, data in items]


def store_image(
    s3, bucket: str, label: str, name: str, data: bytes, *, upload: "_UploadRun | None" = None
) -> ItemResult:
    """Validate one image and store it content-addressed; never overwrites. Within a zip upload,
    ``upload`` tells the images this upload stored itself from duplicates."""
    try:
        decode_image(data)
    except InvalidImageError as error:
        return ItemResult(name, "rejected", label, reason=str(error))
    digest = hashlib.sha256(data).hexdigest()
    key = storage.training_data_key(label, digest, EXTENSIONS[Image.open(io.BytesIO(data)).format])
    existing = _head(s3, bucket, key)
    if existing is not None and existing.get("Metadata", {}).get("source") == SOURCE_FEEDBACK:
        # feedback stored these bytes first: record the upload, so moving that feedback keeps them
        _put_marker(s3, bucket, key, UPLOAD_MARKER, {"source": SOURCE_UPLOAD, "name": name, "at": utc_now()})
    if upload is not None:
        return upload.store(s3, bucket, ItemResult(name, "accepted", label, digest, key), data, existing)
    if existing is not None:
        return ItemResult(name, "duplicate", label, digest, key)
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=data,
        Metadata={"source": SOURCE_UPLOAD, "source-name": _ascii(name)[:256]},
    )
    return ItemResult(name, "accepted", label, digest, key)


class _UploadRun:
    """One run of a zip upload's ingest. Each object it stores names the upload in its metadata, so
    that a run after an interrupted one (Lambda retries a crash or a timeout) counts the images the
    earlier run stored as accepted, not as duplicates, and its report is what one run would write."""

    def __init__(self, upload_id: str):
        self.upload_id = upload_id
        self.seen: set[str] = set()  # keys of this zip's entries so far: a repeat is a duplicate

    def store(self, s3, bucket: str, result: ItemResult, data: bytes, existing: dict | None) -> ItemResult:
        """``existing``: the object's head if it is stored already (None if not)."""
        key = result.key
        first_in_zip = key not in self.seen
        self.seen.add(key)
        stored_by = None if existing is None else existing.get("Metadata", {}).get("upload-id", "")
        if stored_by is not None:
            ours = first_in_zip and stored_by == self.upload_id
            return result if ours else dataclasses.replace(result, status="duplicate")
        if not first_in_zip:
            return dataclasses.replace(result, status="duplicate")
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=data,
            Metadata={
                "source": SOURCE_UPLOAD,
                "source-name": _ascii(result.name)[:256],
                "upload-id": self.upload_id,
            },
        )
        return result


def feedback_image_key(label: str, png: bytes) -> str:
    """Where a kept model input (PNG bytes) is stored as a training image of ``label``."""
    return storage.training_data_key(label, hashlib.sha256(png).hexdigest(), "png")


def add_feedback_image(s3, bucket: str, label: str, png: bytes, provenance: dict) -> str:
    """Store a kept model input as a training image of ``label`` (its true label, from feedback) and
    its provenance marker; return its key. ``provenance`` holds at least ``prediction_id`` and
    ``owner``. The marker goes first, so an image is never stored without a producer that
    :func:`remove_feedback_image` can see. Repeating it changes nothing."""
    key = feedback_image_key(label, png)
    prediction_id = provenance["prediction_id"]
    _put_marker(
        s3, bucket, key, FEEDBACK_MARKER_PREFIX + prediction_id, {"source": SOURCE_FEEDBACK, **provenance}
    )
    if not object_exists(s3, bucket, key):
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=png,
            ContentType="image/png",
            Metadata=_feedback_metadata(provenance),
        )
    return key


def remove_feedback_image(s3, bucket: str, key: str, prediction_id: str, png: bytes) -> bool:
    """Take one feedback's claim off a training image (its label was replaced); delete the image only
    if nothing else produced it: no other feedback or upload marker, and feedback stored it first
    (an upload's image is never deleted). True if the image was deleted.

    A producer that arrives between the check and the delete (its marker written, the object seen)
    is caught by a second look after the delete, which puts the same bytes back: content addressed,
    they are the same image."""
    s3.delete_object(Bucket=bucket, Key=storage.provenance_key(key, FEEDBACK_MARKER_PREFIX + prediction_id))
    if _markers(s3, bucket, key):
        return False
    existing = _head(s3, bucket, key)
    metadata = (existing or {}).get("Metadata", {})
    if existing is None or metadata.get("source") != SOURCE_FEEDBACK:
        return False
    s3.delete_object(Bucket=bucket, Key=key)
    if _markers(s3, bucket, key):
        s3.put_object(Bucket=bucket, Key=key, Body=png, ContentType="image/png", Metadata=metadata)
        return False
    return True


def _feedback_metadata(provenance: dict) -> dict[str, str]:
    metadata = {"source": SOURCE_FEEDBACK, "prediction-id": str(provenance["prediction_id"])}
    if provenance.get("owner"):
        metadata["owner"] = _ascii(str(provenance["owner"]))[:256]
    return metadata


def _put_marker(s3, bucket: str, key: str, source_id: str, body: dict) -> None:
    s3.put_object(
        Bucket=bucket,
        Key=storage.provenance_key(key, source_id),
        Body=json.dumps({"image_key": key, **body}).encode(),
        ContentType="application/json",
    )


def _markers(s3, bucket: str, key: str) -> list[str]:
    page = s3.list_objects_v2(Bucket=bucket, Prefix=storage.provenance_prefix(key), MaxKeys=1)
    return [item["Key"] for item in page.get("Contents", [])]


def _head(s3, bucket: str, key: str) -> dict | None:
    try:
        return s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if is_missing(error):
            return None
        raise


def create_upload(s3, bucket: str) -> dict:
    """A presigned POST for one zip of class folders, and the id to follow its report with."""
    upload_id = uuid.uuid4().hex
    key = storage.upload_key(upload_id, UPLOAD_NAME)
    post = s3.generate_presigned_post(
        bucket,
        key,
        Conditions=[["content-length-range", 1, MAX_UPLOAD_ZIP_BYTES]],
        ExpiresIn=PRESIGNED_UPLOAD_SECONDS,
    )
    s3.put_object(
        Bucket=bucket,
        Key=storage.upload_key(upload_id, REQUEST_NAME),
        Body=json.dumps({"upload_id": upload_id, "created_at": utc_now()}).encode(),
    )
    return {
        "upload_id": upload_id,
        "status": "awaiting_upload",
        "url": post["url"],
        "fields": post["fields"],
        "expires_in": PRESIGNED_UPLOAD_SECONDS,
        "max_bytes": MAX_UPLOAD_ZIP_BYTES,
        "layout": "a zip with one folder per class at its root: CLASS/NAME.jpg",
    }


def upload_status(s3, bucket: str, upload_id: str) -> dict:
    """The ingest report, or the pending state, of an upload; 404 for an id never issued."""
    try:
        report_key = storage.upload_key(upload_id, REPORT_NAME)
    except ValueError as error:
        raise ResourceNotFoundError(f"No upload {upload_id!r}.") from error
    try:
        return json.loads(s3.get_object(Bucket=bucket, Key=report_key)["Body"].read())
    except ClientError as error:
        if not is_missing(error):
            raise
    if not object_exists(s3, bucket, storage.upload_key(upload_id, REQUEST_NAME)):
        raise ResourceNotFoundError(f"No upload {upload_id!r}.")
    uploaded = object_exists(s3, bucket, storage.upload_key(upload_id, UPLOAD_NAME))
    return {"upload_id": upload_id, "status": "processing" if uploaded else "awaiting_upload"}


def upload_id_of(key: str) -> str | None:
    """The upload id of an ``uploads/<id>/upload.zip`` key, else None (other objects are ignored)."""
    parts = PurePosixPath(key).parts
    if len(parts) == 3 and f"{parts[0]}/" == storage.UPLOADS_PREFIX and parts[2] == UPLOAD_NAME:
        return parts[1]
    return None


def ingest_upload(s3, bucket: str, key: str) -> dict:
    """The ingest function's work for one uploaded object: check, store, write the report."""
    upload_id = upload_id_of(key)
    if upload_id is None:
        raise UploadRefusedError(f"{key} is not an upload this service issued.")
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read(MAX_UPLOAD_ZIP_BYTES + 1)
    try:
        report = ingest_zip(s3, bucket, io.BytesIO(body), len(body), upload_id=upload_id)
    except UploadRefusedError as error:
        report = {"status": "refused", "reason": str(error), "counts": {}}
    report = {"upload_id": upload_id, "finished_at": utc_now(), **report}
    s3.put_object(
        Bucket=bucket,
        Key=storage.upload_key(upload_id, REPORT_NAME),
        Body=json.dumps(report).encode(),
        ContentType="application/json",
    )
    return report


def ingest_zip(s3, bucket: str, archive: BinaryIO, size: int, *, upload_id: str | None = None) -> dict:
    """Check a zip as a whole, then entry by entry; store the images that pass. With ``upload_id``,
    a run that repeats an interrupted one reports what a single run would."""
    upload = _UploadRun(upload_id) if upload_id else None
    if size > MAX_UPLOAD_ZIP_BYTES:
        raise UploadRefusedError(f"The upload is over {MAX_UPLOAD_ZIP_BYTES:,} bytes.")
    try:
        handle = zipfile.ZipFile(archive)
    except DAMAGED_ZIP_ERRORS as error:
        raise UploadRefusedError("The upload is not a zip archive.") from error
    with handle:
        # Not ZipInfo.is_dir(): it raises IndexError on an entry with an empty name.
        entries = [info for info in handle.infolist() if not info.filename.endswith("/")]
        if len(entries) > MAX_ZIP_ENTRIES:
            raise UploadRefusedError(f"The zip has {len(entries):,} files; the limit is {MAX_ZIP_ENTRIES:,}.")
        declared = sum(info.file_size for info in entries)
        if declared > MAX_ZIP_UNCOMPRESSED_BYTES:
            raise UploadRefusedError(
                f"The zip would unpack to {declared:,} bytes; the limit is {MAX_ZIP_UNCOMPRESSED_BYTES:,}."
            )
        results = [_ingest_entry(s3, bucket, handle, info, upload) for info in entries]
    counts = Counter(result.status for result in results)
    accepted = Counter(result.label for result in results if result.status == "accepted")
    rejected = [result.to_json() for result in results if result.status == "rejected"]
    return {
        "status": "completed",
        "counts": {status: counts.get(status, 0) for status in ("accepted", "duplicate", "rejected")},
        "accepted_per_label": {label: accepted.get(label, 0) for label in LABELS},
        "rejected": rejected[:MAX_REPORTED_REJECTIONS],
        "rejected_not_listed": max(0, len(rejected) - MAX_REPORTED_REJECTIONS),
    }


def _ingest_entry(
    s3, bucket: str, handle: zipfile.ZipFile, info: zipfile.ZipInfo, upload: _UploadRun | None
) -> ItemResult:
    name = info.filename
    reason = entry_problem(info)
    if reason is None:
        try:
            label = class_of(name)
        except ValueError as error:
            reason = str(error)
    if reason is None:
        try:
            with handle.open(info) as entry:
                data = entry.read(MAX_IMAGE_BYTES + 1)  # never trust the declared size
        except DAMAGED_ZIP_ERRORS as error:
            reason = f"the entry is damaged: {error}"
    if reason is None:
        reason = content_problem(data)
    if reason is not None:
        return ItemResult(name, "rejected", reason=reason)
    return store_image(s3, bucket, label, name, data, upload=upload)


def content_problem(data: bytes) -> str | None:
    """Why an entry's bytes, read with at most ``MAX_IMAGE_BYTES + 1``, are refused, or None."""
    if len(data) > MAX_IMAGE_BYTES:
        return f"over the {MAX_IMAGE_BYTES:,}-byte image limit"
    if data.startswith(ARCHIVE_MAGIC):
        return "nested archives are not accepted"
    return None


def entry_problem(info: zipfile.ZipInfo) -> str | None:
    """Why a zip entry is refused from its central-directory record alone (path traversal,
    encryption, nested archives, sizes, zip bombs), or None. Batch jobs apply the same rules."""
    name = info.filename
    path = PurePosixPath(name)
    if name.startswith(("/", "\\")) or "\\" in name or ".." in path.parts or ":" in (path.parts or ("",))[0]:
        return "unsafe path (absolute, drive letter, backslash or '..')"
    if info.flag_bits & 0x1:
        return "encrypted entries are not accepted"
    if path.suffix.lower() in ARCHIVE_SUFFIXES:
        return "nested archives are not accepted"
    if info.file_size > MAX_IMAGE_BYTES:
        return f"over the {MAX_IMAGE_BYTES:,}-byte image limit"
    if info.file_size > MAX_ZIP_COMPRESSION_RATIO * max(info.compress_size, 1):
        return f"compression ratio over {MAX_ZIP_COMPRESSION_RATIO}:1 (a zip bomb?)"
    return None


def summary(s3, bucket: str, base_counts: dict[str, int]) -> dict:
    """Images per label: the fixed base set beside the user data stored so far, uploads and feedback
    images apart (``user`` is their sum)."""
    keys, feedback = _catalogue(s3, bucket)
    uploads = Counter(_label_of(key) for key in keys if key not in feedback)
    from_feedback = Counter(_label_of(key) for key in keys if key in feedback)
    labels = {
        label: {
            "base": int(base_counts.get(label, 0)),
            "uploads": uploads.get(label, 0),
            "feedback": from_feedback.get(label, 0),
            "user": uploads.get(label, 0) + from_feedback.get(label, 0),
        }
        for label in LABELS
    }
    return {
        "labels": labels,
        "base_total": sum(v["base"] for v in labels.values()),
        "uploads_total": sum(v["uploads"] for v in labels.values()),
        "feedback_total": sum(v["feedback"] for v in labels.values()),
        "user_total": sum(v["user"] for v in labels.values()),
    }


def load_user_data(s3, bucket: str) -> Dataset:
    """Every stored user image, decoded by the preprocessing contract, with its label."""
    return load_user_data_with_manifest(s3, bucket)[0]


def load_user_data_with_manifest(s3, bucket: str) -> tuple[Dataset, dict]:
    """Every stored user image (as :func:`load_user_data`) and its manifest: how many images came
    from uploads and from feedback, and each feedback image's key, label and the predictions whose
    feedback produced it (what a retraining job's record and the new version's card list)."""
    keys, feedback = _catalogue(s3, bucket)
    images, labels, names = [], [], []
    for key in sorted(keys):
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        images.append(decode_image(data))
        labels.append(LABEL_INDEX[_label_of(key)])
        names.append(key)
    listed = [
        {"key": key, "label": _label_of(key), "prediction_ids": sorted(feedback[key])}
        for key in sorted(keys)
        if key in feedback
    ]
    manifest = {
        "images": len(names),
        "uploads": len(names) - len(listed),
        "feedback": len(listed),
        "feedback_images": listed,
    }
    if not images:
        return Dataset(np.zeros((0, 32, 32, 3), np.uint8), np.zeros(0, np.int64)), manifest
    return Dataset(np.stack(images), np.asarray(labels, np.int64), names=tuple(names)), manifest


def _catalogue(s3, bucket: str) -> tuple[list[str], dict[str, set[str]]]:
    """One listing of ``training-data/``: the stored image keys, and for each image some feedback
    produced, the ids of those predictions (markers of images no longer stored are ignored)."""
    keys, feedback = [], {}
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=storage.TRAINING_DATA_PREFIX):
        for item in page.get("Contents", []):
            key = item["Key"]
            if _label_of(key) in LABEL_INDEX:
                keys.append(key)
                continue
            image = storage.image_key_of_provenance(key)
            source = PurePosixPath(key).stem
            if image is not None and source.startswith(FEEDBACK_MARKER_PREFIX):
                feedback.setdefault(image, set()).add(source.removeprefix(FEEDBACK_MARKER_PREFIX))
    stored = set(keys)
    return keys, {key: ids for key, ids in feedback.items() if key in stored}


def _label_of(key: str) -> str:
    return PurePosixPath(key).parts[1] if len(PurePosixPath(key).parts) == 3 else ""


def _ascii(text: str) -> str:
    """``text`` as an S3 metadata (HTTP header) value: printable ASCII, no newline or other control."""
    return "".join(c if c.isprintable() else "?" for c in text.encode("ascii", "replace").decode())
