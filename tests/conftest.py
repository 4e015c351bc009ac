"""Fixtures shared by every test folder: the team's CIFAR-10 data (never copied into the repo)
and small helpers to make encoded images."""

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from infra.devdata import SHARED_DATA

REPO = Path(__file__).resolve().parents[1]
BASELINE_DIR = REPO / "layers" / "classifier" / "classifier" / "baseline"


def data_dir() -> Path:
    """The CIFAR-10 folder (``infra.devdata.SHARED_DATA``), failing the test where it is missing."""
    path = SHARED_DATA
    if not (path / "cifar10-test.zip").is_file():
        pytest.fail(
            f"CIFAR-10 data not found in {path}: set CIFAR10_DATA to the folder holding cifar10-test.zip"
        )
    return path


@pytest.fixture(scope="session")
def test_zip() -> Path:
    return data_dir() / "cifar10-test.zip"


@pytest.fixture(scope="session")
def test_set(test_zip):
    from classifier.datasets import load_dataset

    return load_dataset(test_zip)


@pytest.fixture(scope="session")
def dog_jpeg(test_zip) -> bytes:
    """A real CIFAR-10 test image (a dog), as the JPEG bytes a user would send."""
    with zipfile.ZipFile(test_zip) as archive:
        return archive.read("dog/0000.jpg")


def encode(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def gradient(width: int = 64, height: int = 48) -> Image.Image:
    """An RGB image with structure in every channel, so crops and flips are visible."""
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) % 256], axis=-1)
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


# --- Lambda events and context ----------------------------------------------------------------
# Events are the JSON files in shared/events/, the same files `sam local invoke -e`, `make invoke`
# and the console's test tab take.

EVENTS_DIR = REPO / "shared" / "events"


def read_event(name: str) -> dict:
    return json.loads((EVENTS_DIR / f"{name}.json").read_text())


@pytest.fixture
def load_event():
    """``load_event("predict-raw")``: a fresh copy of ``shared/events/predict-raw.json``."""
    return read_event


@dataclass
class FakeLambdaContext:
    function_name: str = "test-function"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"
    log_group_name: str = "/aws/lambda/test-function"
    log_stream_name: str = "2026/01/01/[$LATEST]test"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


def sample_zip(source: Path, every: int, offset: int) -> bytes:
    """Every ``every``-th entry of a zip of class folders (all classes), as a new zip's bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(buffer, "w") as out:
        for info in archive.infolist()[offset::every]:
            out.writestr(info.filename, archive.read(info))
    return buffer.getvalue()
