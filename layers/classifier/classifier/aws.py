"""AWS clients, created lazily on first use and cached for the life of the process (warm starts reuse
them). Nothing here runs at import, so tests start moto before the first call and reset with
:func:`reset_clients`. The endpoint comes from the standard ``AWS_ENDPOINT_URL`` variables when set
(moto server, LocalStack).
"""

from functools import cache

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

# Lambda answers within API Gateway's 29 s: fail fast, let the caller's retry policy decide.
_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})


@cache
def session() -> boto3.session.Session:
    return boto3.session.Session()


@cache
def dynamodb():
    """The DynamoDB service resource; ``dynamodb().Table(name)`` is cheap and makes no call."""
    return session().resource("dynamodb", config=_CONFIG)


def table(name: str):
    return dynamodb().Table(name)


@cache
def s3():
    return session().client("s3", config=_CONFIG)


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
    for getter in (session, dynamodb, s3):
        getter.cache_clear()
