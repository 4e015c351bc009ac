"""The local API started in-process on a free port (moto for S3 and DynamoDB), and what tests
send it. Each module that uses ``start_local_api`` gets its own server and stops it at its end,
environment variables included, so no other test sees the local endpoints."""

import base64
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from infra.local_api import LocalApi
from tests.conftest import REPO, sample_zip

FIXTURES = Path(__file__).parent / "fixtures"
CURL_BOUNDARY = "------------------------d74496d66958873e"  # curl's form: 24 dashes, 16 hex digits


def curl_multipart(field: str, filename: str, content: bytes, content_type: str) -> tuple[bytes, str]:
    """A body and Content-Type byte for byte as ``curl -F field=@filename`` sends them."""
    body = (
        (
            f"--{CURL_BOUNDARY}\r\n"
            f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{CURL_BOUNDARY}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={CURL_BOUNDARY}"


def event_body(event: dict) -> bytes:
    """The request body as the handler sees it, base64 undone."""
    body = event["body"] or ""
    return base64.b64decode(body) if event["isBase64Encoded"] else body.encode()


def wait_for(check: Callable[[], object], timeout_s: float = 15.0, interval_s: float = 0.2):
    """``check()``'s first truthy answer, polling until ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = check()
        if answer:
            return answer
        time.sleep(interval_s)
    raise AssertionError(f"nothing after {timeout_s} s")


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def from_repo(monkeypatch_module):
    """Worker processes import the package and the handlers as the tests do, from the repository."""
    monkeypatch_module.setenv("PYTHONPATH", f"{REPO / 'layers' / 'classifier'}:{REPO}")
    monkeypatch_module.chdir(REPO)


def base_datasets(folder: Path, test_zip: Path, *, test_every: int = 10) -> Path:
    """``folder`` holding a small base training set (100 images) and test set (one image in
    ``test_every``), for ``LocalApi(bootstrap_data=...)``: retraining works, and quickly."""
    (folder / "cifar10-train.zip").write_bytes(sample_zip(test_zip, every=50, offset=7))
    (folder / "cifar10-test.zip").write_bytes(sample_zip(test_zip, every=test_every, offset=3))
    return folder


@pytest.fixture(scope="module")
def start_local_api():
    """Start a ``LocalApi`` (port 0: a free one) for this module; stopped at the module's end."""
    started: list[LocalApi] = []

    def start(template: Path, **options) -> LocalApi:
        api = LocalApi(template, port=0, **options).start()
        started.append(api)
        return api

    yield start
    for api in reversed(started):
        api.stop()
