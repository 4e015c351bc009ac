"""AWS clients, created lazily on first use and cached for the life of the process (warm starts reuse
them). Nothing here runs at import, so tests start moto before the first call and reset with
:func:`reset_clients`. The endpoint comes from the standard ``AWS_ENDPOINT_URL`` variables when set
(moto server, LocalStack).

The functions use botocore alone, never boto3: importing boto3 and building its DynamoDB resource
adds 0.1 to 0.15 s to a cold start (``make bench``). :mod:`classifier.aws.dynamodb` gives the same
table interface; :func:`upload_file` and :func:`download_file` stand in for boto3's S3 transfers.

The layer ships botocore's models for :data:`SERVICES` only (``layers/classifier/slim_botocore.py``):
with all 400-odd, creating the first client scans every model folder and parses the 1.2 MB
``endpoints.json``, about 90 ms of each cold start.
"""

import shutil
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError

from classifier.aws.dynamodb import Table
from classifier.settings import get_settings

# The AWS services the functions call: the only botocore models the layer ships. "apigateway" answers
# which usage plans a caller's key is in (its role, classifier.api.callers). "xray" is the X-Ray
# SDK's sampling poller, which Lambda does not start (the trace header decides); it is kept so that
# tracing can never fail on a missing model. "sqs": batch jobs send their chunks to a queue.
SERVICES = ("apigateway", "dynamodb", "lambda", "s3", "sqs", "xray")
# What Powertools' Tracer patches for X-Ray: every AWS call goes through botocore. Its default patches
# every library X-Ray knows (http.client, sqlite3, requests, ...), importing them on a cold start.
TRACED_LIBRARIES = ("botocore",)
# Lambda answers within API Gateway's 29 s: fail fast, let the caller's retry policy decide.
# botocore's max_attempts counts retries: 3 is 4 attempts in all.
_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})


# DynamoDB answers in milliseconds, and a prediction's record write, retried by
# classifier.api.records as well, must end within the predict function's 10 s so that the
# prediction is still answered and its record logged: with the default above, a DynamoDB that stops
# answering held one write for 4 x 5 s, and the function timed out with the record lost.
# A function that reads many items at once (the monitor's window) sets a longer read timeout
# (DYNAMODB_READ_TIMEOUT_SECONDS, classifier.settings).
def _service_config(service: str) -> Config:
    if service == "dynamodb":
        read_timeout = get_settings().dynamodb_read_timeout_seconds
        return Config(
            connect_timeout=1,
            read_timeout=read_timeout,
            retries={"mode": "standard", "total_max_attempts": 2},
        )
    return _CONFIG


@cache
def _loader(data_path: str | None) -> botocore.loaders.Loader:
    return botocore.loaders.create_loader(data_path)


@cache
def session() -> botocore.session.Session:
    made = botocore.session.get_session()
    # The loader holds the parsed service models, which no environment change alters, so it outlives
    # reset_clients. With a loader per session every reset parsed them again (about 30 ms a model,
    # 70 ms for the endpoints), and the tests reset for each test.
    made.register_component("data_loader", _loader(made.get_config_variable("data_path")))
    return made


_clients: dict[str, Any] = {}


def client(service: str):
    """A botocore client for ``service``, one of :data:`SERVICES`; one per service per process."""
    if service not in SERVICES:
        raise ValueError(
            f"{service!r} is not in classifier.aws.SERVICES {SERVICES}: the layer ships no botocore model "
            "for it. Add it there."
        )
    if service not in _clients:
        _clients[service] = session().create_client(service, config=_service_config(service))
    return _clients[service]


def close_connections() -> None:
    """Close the open connections of every client made so far; the clients stay usable and connect
    again on their next call. Before a SnapStart snapshot: a restored environment must not reuse a
    connection that the snapshot froze, whose other end is long gone."""
    for made in _clients.values():
        made.close()


def table(name: str) -> Table:
    """The table ``name`` (cheap: makes no call)."""
    return Table(client("dynamodb"), name)


def s3():
    return client("s3")


def upload_file(s3_client, path: str | Path, bucket: str, key: str) -> None:
    with open(path, "rb") as body:
        s3_client.put_object(Bucket=bucket, Key=key, Body=body)


def download_file(s3_client, bucket: str, key: str, path: str | Path) -> None:
    """Stream the object to ``path`` through a temporary file, so ``path`` is never half written."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.part")
    body = s3_client.get_object(Bucket=bucket, Key=key)["Body"]
    with open(partial, "wb") as out:
        shutil.copyfileobj(body, out, length=1 << 20)
    partial.replace(path)


def local_copy(source: str, directory: Path) -> Path:
    """A local path for ``source``: an ``s3://bucket/key`` URI is downloaded into ``directory`` once
    (kept under its file name, so a resumed job does not fetch it again); a path is returned as is."""
    if not source.startswith("s3://"):
        return Path(source)
    bucket, _, key = source.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise ValueError(f"{source} is not an s3://bucket/key URI.")
    local = Path(directory) / PurePosixPath(key).name
    if not local.is_file():
        local.parent.mkdir(parents=True, exist_ok=True)
        download_file(s3(), bucket, key, local)
    return local


_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})  # GetObject, HeadObject (no body: "404")


def is_missing(error: ClientError) -> bool:
    """Whether an S3 error says the object does not exist (as opposed to access or service errors)."""
    return error.response.get("Error", {}).get("Code") in _MISSING_CODES


def object_exists(client, bucket: str, key: str) -> bool:
    try:
        client.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if is_missing(error):
            return False
        raise
    return True


def reset_clients() -> None:
    """Forget every cached client (tests, after changing the environment or starting moto)."""
    session.cache_clear()
    _clients.clear()
