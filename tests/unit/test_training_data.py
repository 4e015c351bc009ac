"""Training data: direct uploads and zip uploads, each refused case, nothing stored ever touched."""

import io
import json
import zipfile

import pytest

from classifier import storage
from classifier.errors import RequestShapeError, ResourceNotFoundError, TooManyImagesError, UploadRefusedError
from classifier.limits import MAX_DIRECT_TRAINING_IMAGES
from classifier.mlops import training_data
from tests.conftest import encode, gradient

PNG = encode(gradient(), "PNG")
OTHER_PNG = encode(gradient(40, 40), "PNG")


def zip_bytes(entries: dict[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def ingest(aws, entries, compression=zipfile.ZIP_STORED):
    data = zip_bytes(entries, compression) if isinstance(entries, dict) else entries
    return training_data.ingest_zip(aws.s3, aws.bucket, io.BytesIO(data), len(data))


def stored(aws) -> dict[str, bytes]:
    pages = aws.s3.get_paginator("list_objects_v2").paginate(
        Bucket=aws.bucket, Prefix=storage.TRAINING_DATA_PREFIX
    )
    return {item["Key"]: item["ETag"] for page in pages for item in page.get("Contents", [])}


def test_direct_upload_accepts_dedupes_and_rejects_per_image(aws):
    results = training_data.add_images(
        aws.s3, aws.bucket, "cat", [("a.png", PNG), ("b.png", PNG), ("c.txt", b"not an image")]
    )

    assert [r.status for r in results] == ["accepted", "duplicate", "rejected"]
    assert results[0].key == f"training-data/cat/{results[0].sha256}.png"
    assert "not an image" in results[2].reason
    assert list(stored(aws)) == [results[0].key]


def test_unknown_labels_and_oversized_requests_are_refused(aws):
    with pytest.raises(RequestShapeError, match="Unknown label"):
        training_data.add_images(aws.s3, aws.bucket, "dragon", [("a.png", PNG)])
    with pytest.raises(TooManyImagesError):
        training_data.add_images(
            aws.s3, aws.bucket, "cat", [("a.png", PNG)] * (MAX_DIRECT_TRAINING_IMAGES + 1)
        )
    assert stored(aws) == {}


def test_a_good_zip_is_ingested_with_a_report(aws):
    report = ingest(aws, {"cat/1.png": PNG, "dog/2.png": OTHER_PNG, "dog/3.png": OTHER_PNG})

    assert report["status"] == "completed"
    assert report["counts"] == {"accepted": 2, "duplicate": 1, "rejected": 0}
    assert report["accepted_per_label"]["cat"] == 1 and report["accepted_per_label"]["dog"] == 1


@pytest.mark.parametrize(
    "name, data, reason",
    [
        ("../cat/escape.png", PNG, "unsafe path"),
        ("/etc/cat.png", PNG, "unsafe path"),
        ("cat\\windows.png", PNG, "unsafe path"),
        ("cat/inner.zip", zip_bytes({"cat/x.png": PNG}), "nested archive"),
        ("cat/disguised.png", zip_bytes({"cat/x.png": PNG}), "nested archive"),
        ("cat/readme.txt", b"hello, not an image", "not an image"),
        ("dragon/x.png", PNG, "unknown class"),
        ("x.png", PNG, "CLASS/FILE"),
    ],
)
def test_bad_entries_are_refused_one_by_one(aws, name, data, reason):
    report = ingest(aws, {name: data, "cat/good.png": PNG})

    assert report["counts"]["accepted"] == 1 and report["counts"]["rejected"] == 1
    assert report["rejected"][0]["name"] == name
    assert reason in report["rejected"][0]["reason"]


def test_a_highly_compressed_entry_is_refused_as_a_bomb(aws):
    report = ingest(aws, {"cat/bomb.png": b"\x00" * 2_000_000, "cat/good.png": PNG}, zipfile.ZIP_DEFLATED)

    assert report["counts"] == {"accepted": 1, "duplicate": 0, "rejected": 1}
    assert "compression ratio" in report["rejected"][0]["reason"]


def test_whole_archive_refusals(aws, monkeypatch):
    with pytest.raises(UploadRefusedError, match="not a zip"):
        ingest(aws, b"just some bytes")
    monkeypatch.setattr(training_data, "MAX_ZIP_ENTRIES", 2)
    with pytest.raises(UploadRefusedError, match="files"):
        ingest(aws, {f"cat/{i}.png": PNG for i in range(3)})
    monkeypatch.setattr(training_data, "MAX_ZIP_UNCOMPRESSED_BYTES", len(PNG))
    with pytest.raises(UploadRefusedError, match="unpack"):
        ingest(aws, {"cat/1.png": PNG, "dog/1.png": OTHER_PNG})
    assert stored(aws) == {}


def test_nothing_already_stored_is_touched(aws):
    first = training_data.add_images(aws.s3, aws.bucket, "cat", [("a.png", PNG)])[0]
    before = stored(aws)

    report = ingest(aws, {"cat/same.png": PNG, "cat/../../cat/x.png": OTHER_PNG})

    assert report["counts"]["duplicate"] == 1
    assert stored(aws) == before and first.key in before


def test_upload_lifecycle_and_report(aws):
    upload = training_data.create_upload(aws.s3, aws.bucket)
    upload_id = upload["upload_id"]
    assert training_data.upload_status(aws.s3, aws.bucket, upload_id)["status"] == "awaiting_upload"
    assert upload["fields"]["key"] == f"uploads/{upload_id}/upload.zip"

    key = upload["fields"]["key"]
    aws.s3.put_object(Bucket=aws.bucket, Key=key, Body=zip_bytes({"cat/1.png": PNG, "cat/x.txt": b"no"}))
    assert training_data.upload_status(aws.s3, aws.bucket, upload_id)["status"] == "processing"
    training_data.ingest_upload(aws.s3, aws.bucket, key)

    report = training_data.upload_status(aws.s3, aws.bucket, upload_id)
    assert report["status"] == "completed" and report["counts"]["accepted"] == 1
    assert json.loads(
        aws.s3.get_object(Bucket=aws.bucket, Key=f"uploads/{upload_id}/report.json")["Body"].read()
    )
    with pytest.raises(ResourceNotFoundError):
        training_data.upload_status(aws.s3, aws.bucket, "never-issued")


def test_a_refused_upload_still_gets_a_report(aws):
    upload = training_data.create_upload(aws.s3, aws.bucket)
    aws.s3.put_object(Bucket=aws.bucket, Key=upload["fields"]["key"], Body=b"not a zip")

    report = training_data.ingest_upload(aws.s3, aws.bucket, upload["fields"]["key"])

    assert report["status"] == "refused" and "not a zip" in report["reason"]


def test_summary_and_loading_user_data(aws):
    training_data.add_images(aws.s3, aws.bucket, "cat", [("a.png", PNG), ("b.png", OTHER_PNG)])
    training_data.add_images(aws.s3, aws.bucket, "ship", [("c.png", PNG)])

    summary = training_data.summary(aws.s3, aws.bucket, base_counts={"cat": 5000})
    data = training_data.load_user_data(aws.s3, aws.bucket)

    assert summary["labels"]["cat"] == {"base": 5000, "uploads": 2, "feedback": 0, "user": 2}
    assert summary["user_total"] == summary["uploads_total"] == 3 and summary["feedback_total"] == 0
    assert len(data) == 3 and data.counts()["bird"] == 0
    assert data.counts()["cat"] == 2 and data.counts()["ship"] == 1
