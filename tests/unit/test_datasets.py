"""Datasets: zips and tars of class folders (local or s3://) and the official CIFAR-10 tarball."""

import io
import pickle
import tarfile
import zipfile

import boto3
import numpy as np
import pytest
from moto import mock_aws

from classifier import aws
from classifier.datasets import load_dataset
from classifier.errors import DatasetError
from classifier.labels import LABEL_INDEX
from classifier.limits import MAX_IMAGE_BYTES
from classifier.preprocessing import decode_image
from tests.conftest import encode, gradient


def write_zip(path, entries: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def test_zip_of_class_folders_loads_and_reports_bad_entries(tmp_path):
    good = encode(gradient(), "PNG")
    archive = write_zip(
        tmp_path / "upload.zip",
        {
            "cat/a.png": good,
            "ship/b.jpg": encode(gradient(50, 50), "JPEG"),
            "dragon/c.png": good,  # unknown class
            "cat/broken.jpg": b"\xff\xd8\xff\xe0 not really a jpeg",
            "deep/cat/d.png": good,  # wrong layout
            "loose.png": good,  # no class folder
        },
    )

    data = load_dataset(archive)

    assert list(data.labels) == [LABEL_INDEX["cat"], LABEL_INDEX["ship"]]
    assert np.array_equal(data.images[0], decode_image(good))
    reasons = {r.entry: r.reason for r in data.rejected}
    assert set(reasons) == {"dragon/c.png", "cat/broken.jpg", "deep/cat/d.png", "loose.png"}
    assert "unknown class" in reasons["dragon/c.png"]
    assert "CLASS/FILE" in reasons["loose.png"]
    assert data.counts()["cat"] == 1 and data.counts()["dog"] == 0


def test_content_hash_changes_with_pixels_or_labels(tmp_path):
    a = load_dataset(write_zip(tmp_path / "a.zip", {"cat/1.png": encode(gradient(), "PNG")}))
    b = load_dataset(write_zip(tmp_path / "b.zip", {"dog/1.png": encode(gradient(), "PNG")}))
    c = load_dataset(write_zip(tmp_path / "c.zip", {"cat/1.png": encode(gradient(40, 40), "PNG")}))
    again = load_dataset(tmp_path / "a.zip")

    assert a.content_hash() == again.content_hash()
    assert len({a.content_hash(), b.content_hash(), c.content_hash()}) == 3


def cifar_tarball(path, images_per_batch=4):
    """A small tarball in the official cifar-10-python layout: pickled CHW rows."""
    rng = np.random.default_rng(0)
    expected = {}
    with tarfile.open(path, "w:gz") as archive:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            images = rng.integers(0, 256, (images_per_batch, 32, 32, 3), dtype=np.uint8)
            labels = list(rng.integers(0, 10, images_per_batch))
            rows = images.transpose(0, 3, 1, 2).reshape(images_per_batch, -1)
            payload = pickle.dumps({b"data": rows, b"labels": labels, b"batch_label": name.encode()})
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
            expected[name] = (images, labels)
    return expected


def test_official_cifar_tarball_loads_both_splits(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    expected = cifar_tarball(path)

    train = load_dataset(path, "train")
    test = load_dataset(path, "test")

    assert train.images.shape == (20, 32, 32, 3) and train.images.dtype == np.uint8
    assert np.array_equal(train.images[:4], expected["data_batch_1"][0])
    assert list(train.labels[:4]) == expected["data_batch_1"][1]
    assert np.array_equal(test.images, expected["test_batch"][0])


def write_tar(path, entries: dict[str, bytes], mode="w:gz"):
    with tarfile.open(path, mode) as archive:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:xz"])
def test_a_tar_of_class_folders_loads_like_the_zip_of_the_same_entries(tmp_path, mode):
    entries = {
        "ship/b.jpg": encode(gradient(50, 50), "JPEG"),
        "cat/a.png": encode(gradient(), "PNG"),
        "dragon/c.png": encode(gradient(), "PNG"),
        "cat/broken.jpg": b"\xff\xd8\xff\xe0 not really a jpeg",
    }
    zipped = load_dataset(write_zip(tmp_path / "set.zip", entries))

    tarred = load_dataset(write_tar(tmp_path / "set.tar", entries, mode))

    assert tarred.names == zipped.names == ("ship/b.jpg", "cat/a.png")
    assert tarred.content_hash() == zipped.content_hash()
    assert [r.entry for r in tarred.rejected] == ["dragon/c.png", "cat/broken.jpg"]


def test_a_tar_entry_that_is_a_link_or_too_large_is_rejected_unread(tmp_path):
    good = encode(gradient(), "PNG")
    path = tmp_path / "set.tar"
    with tarfile.open(path, "w") as archive:
        info = tarfile.TarInfo("cat/a.png")
        info.size = len(good)
        archive.addfile(info, io.BytesIO(good))
        link = tarfile.TarInfo("dog/link.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
        folder = tarfile.TarInfo("frog")
        folder.type = tarfile.DIRTYPE
        archive.addfile(folder)  # skipped, as a zip's folder entries are
        huge = tarfile.TarInfo("frog/huge.png")
        huge.size = MAX_IMAGE_BYTES + 1
        archive.addfile(huge, io.BytesIO(bytes(huge.size)))

    data = load_dataset(path)

    assert data.names == ("cat/a.png",)
    reasons = {r.entry: r.reason for r in data.rejected}
    assert set(reasons) == {"dog/link.png", "frog/huge.png"}
    assert "regular file" in reasons["dog/link.png"]
    assert "limit" in reasons["frog/huge.png"]


def test_a_tarball_without_cifar_batches_is_refused(tmp_path):
    path = tmp_path / "other.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo("readme.txt")
        archive.addfile(info, io.BytesIO(b""))

    with pytest.raises(DatasetError, match="CIFAR-10"):
        load_dataset(path)


class _RunsCode:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_tarball_whose_batch_would_run_code_is_refused(tmp_path, capsys):
    path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        payload = pickle.dumps({b"data": _RunsCode(), b"labels": []})
        info = tarfile.TarInfo("cifar-10-batches-py/test_batch")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))

    with pytest.raises(DatasetError, match="builtins.print is not allowed"):
        load_dataset(path, "test")
    assert "must never run" not in capsys.readouterr().out


def test_missing_and_foreign_files_are_refused(tmp_path):
    with pytest.raises(DatasetError, match="No dataset"):
        load_dataset(tmp_path / "nope.zip")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DatasetError, match="neither"):
        load_dataset(tmp_path / "notes.txt")


@mock_aws
def test_s3_uri_loads_the_same_as_a_local_path(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    aws.reset_clients()  # a client cached by an earlier test may point at another endpoint
    archive = write_zip(tmp_path / "set.zip", {"frog/1.png": encode(gradient(), "PNG")})
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="artifacts")
    s3.upload_file(str(archive), "artifacts", "datasets/base/set.zip")

    remote = load_dataset(aws.local_copy("s3://artifacts/datasets/base/set.zip", tmp_path / "copy"))

    assert remote.content_hash() == load_dataset(archive).content_hash()
