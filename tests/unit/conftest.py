"""Unit-test fixtures for the functions: moto with the template's own tables and bucket, and the
functions' environment as ``template.yaml`` sets it."""

import os
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws

from classifier import aws as aws_clients
from classifier.api import callers, model_provider
from classifier.settings import get_settings
from infra.local_api import create_storage
from infra.template import Template

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
TEMPLATE = Template(REPO / "template.yaml", region=REGION)
# Every function shares the Globals environment; PredictFunction's is representative.
FUNCTION_ENVIRONMENT = TEMPLATE.functions["PredictFunction"].environment

# Powertools reads POWERTOOLS_* when a handler module is imported, which may happen at collection.
for _key, _value in FUNCTION_ENVIRONMENT.items():
    if _key.startswith("POWERTOOLS_"):
        os.environ.setdefault(_key, _value)
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")  # no X-Ray daemon in tests


def reset_process_state() -> None:
    """What a fresh Lambda sandbox would not have: cached settings, clients and the serving model."""
    get_settings.cache_clear()
    aws_clients.reset_clients()
    model_provider.set_provider(None)
    callers.set_lookup(None)


@pytest.fixture
def aws(monkeypatch):
    """moto S3 and DynamoDB with ``template.yaml``'s tables and bucket, and the functions' environment."""
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for key, value in FUNCTION_ENVIRONMENT.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        # moto clears boto3's default session; this one keeps the parsed botocore models across tests
        boto3.setup_default_session(botocore_session=aws_clients.session())
        create_storage(TEMPLATE, REGION)
        reset_process_state()
        yield SimpleNamespace(
            template=TEMPLATE,
            predictions=aws_clients.table(FUNCTION_ENVIRONMENT["PREDICTIONS_TABLE"]),
            models=aws_clients.table(FUNCTION_ENVIRONMENT["MODELS_TABLE"]),
            bucket=FUNCTION_ENVIRONMENT["ARTIFACTS_BUCKET"],
            s3=aws_clients.s3(),
        )
    reset_process_state()
