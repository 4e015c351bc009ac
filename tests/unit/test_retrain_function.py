"""The retrain container function without Docker: every path its Dockerfile copies exists, and its
handler imports and runs a tiny job here (continuing in a new invocation when time runs short)."""

import json
from types import SimpleNamespace

import pytest

from classifier.aws import table
from classifier.mlops import jobs
from infra.template import dockerfile_copies
from tests.conftest import REPO, sample_zip
from tests.unit.conftest import FUNCTION_ENVIRONMENT

DOCKERFILE = REPO / "functions" / "retrain" / "Dockerfile"


def test_every_path_the_dockerfile_copies_exists():
    copies = dockerfile_copies(DOCKERFILE)

    assert copies, "the Dockerfile copies nothing"
    for source, _ in copies:
        assert (REPO / source).exists(), f"{source} (copied by the Dockerfile) is missing"
    assert any(source == "layers/classifier/classifier" for source, _ in copies)
    assert "tensorflow-cpu" in (REPO / "requirements" / "train.txt").read_text()


def tiny_zip(source, target, every, offset):
    target.write_bytes(sample_zip(source, every, offset))
    return str(target)


@pytest.mark.slow
def test_the_handler_runs_a_tiny_job_across_two_invocations(aws, monkeypatch, tmp_path, test_zip):
    from functions.retrain import app

    monkeypatch.setenv("BASE_TRAIN_DATA", tiny_zip(test_zip, tmp_path / "train.zip", 100, 5))
    monkeypatch.setenv("BASE_TEST_DATA", tiny_zip(test_zip, tmp_path / "test.zip", 50, 9))
    from classifier.settings import get_settings

    get_settings.cache_clear()
    invoked = []
    monkeypatch.setattr(
        app, "client", lambda service: SimpleNamespace(invoke=lambda **kw: invoked.append(kw))
    )
    jobs_table = table(FUNCTION_ENVIRONMENT["JOBS_TABLE"])
    job = jobs.create_job(jobs_table, {"mode": "finetune", "epochs": 2})
    short = SimpleNamespace(
        function_name="retrain",
        get_remaining_time_in_millis=lambda: 211_000,
        aws_request_id="1",
        invoked_function_arn="arn:aws:lambda:us-east-1:1:function:retrain",
        memory_limit_in_mb=10240,
        function_version="$LATEST",
        log_group_name="",
        log_stream_name="",
    )
    long = SimpleNamespace(**{**short.__dict__, "get_remaining_time_in_millis": lambda: 900_000})

    first = app.lambda_handler({"job_id": job["job_id"]}, short)

    assert first["status"] == "continue"
    assert invoked and invoked[0]["InvocationType"] == "Event"
    assert json.loads(invoked[0]["Payload"]) == {"job_id": job["job_id"]}

    second = app.lambda_handler(json.loads(invoked[0]["Payload"]), long)

    assert second["status"] in ("succeeded", "rejected")
    assert jobs.get_job(jobs_table, job["job_id"])["invocations"] == 2
