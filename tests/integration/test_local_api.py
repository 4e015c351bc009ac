"""The local API against a fixture template whose handlers echo the event they get: what API
Gateway would send, and what it enforces before a function runs."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading

import boto3
import pytest
import requests

from infra.local_api import LocalApi
from tests.integration.conftest import FIXTURES, curl_multipart, event_body, wait_for

pytestmark = pytest.mark.integration

KEY = "fixture-key"
THROTTLE_KEY = "throttle-test-key"  # its own buckets, so other tests' requests don't spend them


@pytest.fixture(scope="module")
def api(start_local_api) -> LocalApi:
    return start_local_api(
        FIXTURES / "template.yaml",
        api_key=KEY,
        extra_api_keys=(THROTTLE_KEY,),
        integration_timeout_s=1.0,
        s3_poll_interval_s=0.2,
    )


def call(api: LocalApi, method: str, path: str, key: str | None = KEY, **kwargs) -> requests.Response:
    headers = kwargs.pop("headers", {})
    if key is not None:
        headers["x-api-key"] = key
    return requests.request(method, api.url + path, headers=headers, timeout=30, **kwargs)


def echoed(response: requests.Response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()["event"]


def assert_error(response: requests.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == code
    assert isinstance(response.json()["error"]["message"], str)


# ---- what the handler receives


def test_multipart_upload_reaches_the_handler_byte_for_byte_as_curl_sent_it(api, dog_jpeg):
    body, content_type = curl_multipart("file", "dog.jpg", dog_jpeg, "image/jpeg")

    event = echoed(call(api, "POST", "/echo", data=body, headers={"Content-Type": content_type}))

    assert event["isBase64Encoded"] is True
    assert event_body(event) == body
    assert event["headers"]["Content-Type"] == content_type


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_real_curl_form_upload_arrives_as_multipart(api, dog_jpeg, tmp_path):
    image = tmp_path / "dog.jpg"
    image.write_bytes(dog_jpeg)

    out = subprocess.run(
        ["curl", "-sS", "-H", f"x-api-key: {KEY}", "-F", f"file=@{image}", f"{api.url}/echo"],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    event = json.loads(out)["event"]

    assert event["headers"]["Content-Type"].startswith("multipart/form-data; boundary=")
    assert dog_jpeg in event_body(event)
    assert b'name="file"; filename="dog.jpg"' in event_body(event)


def test_raw_image_body_is_base64_encoded(api, dog_jpeg):
    event = echoed(call(api, "POST", "/echo", data=dog_jpeg, headers={"Content-Type": "image/jpeg"}))

    assert event["isBase64Encoded"] is True
    assert event_body(event) == dog_jpeg


def test_json_body_path_and_query_parameters_and_request_context(api):
    response = call(api, "POST", "/echo?top_k=3&tag=a&tag=b", json={"image": "aGk="})
    event = echoed(response)

    assert event["isBase64Encoded"] is False
    assert json.loads(event["body"]) == {"image": "aGk="}
    assert event["queryStringParameters"] == {"top_k": "3", "tag": "b"}
    assert event["multiValueQueryStringParameters"] == {"top_k": ["3"], "tag": ["a", "b"]}
    assert event["pathParameters"] is None
    context = event["requestContext"]
    assert context["requestId"] == response.headers["x-amzn-RequestId"]
    assert context["identity"]["apiKey"] == KEY
    assert (context["stage"], context["resourcePath"], context["httpMethod"]) == ("v1", "/echo", "POST")


def test_path_parameters_and_the_deployed_url_form_with_the_stage(api):
    event = echoed(call(api, "GET", "/v1/predictions/abc-123"))

    assert event["resource"] == "/predictions/{id}"
    assert event["path"] == "/predictions/abc-123"
    assert event["pathParameters"] == {"id": "abc-123"}
    assert event["body"] is None


def test_handlers_get_the_template_environment_and_a_context(api):
    answer = call(api, "POST", "/echo", json={}).json()

    assert answer["environment"] == {
        "JOBS_TABLE": "JobsTable",
        "ARTIFACTS_BUCKET": "local-artifactsbucket",
        "GREETING": "hello from us-east-1",
    }
    assert 0 < answer["remaining_ms"] <= 10_000


# ---- what API Gateway enforces


def test_missing_and_wrong_api_keys_are_refused_with_403(api):
    assert_error(call(api, "POST", "/echo", key=None, json={}), 403, "invalid_api_key")
    assert_error(call(api, "POST", "/echo", key="not-the-key", json={}), 403, "invalid_api_key")


def test_a_route_is_throttled_once_its_burst_is_spent_while_another_still_answers(api):
    burst = api.template.route_throttles["/predict/POST"].burst  # 3, refilled at 0.01/s

    answers = [call(api, "POST", "/predict", key=THROTTLE_KEY, json={}).status_code for _ in range(burst + 1)]

    assert answers == [200] * burst + [429]
    assert_error(call(api, "POST", "/predict", key=THROTTLE_KEY, json={}), 429, "throttled")
    assert call(api, "GET", "/predictions/x", key=THROTTLE_KEY).status_code == 200
    assert call(api, "POST", "/predict", json={}).status_code == 200  # another key, other buckets


def test_a_body_over_10_mb_is_refused_with_413(api):
    response = call(
        api, "POST", "/echo", data=b"x" * (10 * 1024 * 1024 + 1), headers={"Content-Type": "image/png"}
    )

    assert_error(response, 413, "payload_too_large")


def test_an_event_over_the_lambda_6_mb_limit_is_refused_with_413(api):
    # 5 MB of image is 6.7 MB once base64-encoded into the event.
    response = call(
        api, "POST", "/echo", data=b"x" * (5 * 1024 * 1024), headers={"Content-Type": "image/png"}
    )

    assert_error(response, 413, "payload_too_large")
    assert "6 MB" in response.json()["error"]["message"]


def test_a_handler_past_the_integration_timeout_gets_504_and_its_worker_is_replaced(api):
    pool = api.runtime.pools["EchoFunction"]
    before = set(pool.pids())

    response = call(api, "GET", "/slow?seconds=3")

    assert_error(response, 504, "timeout")
    assert response.elapsed.total_seconds() < 2.5
    assert len(before - set(pool.pids())) == 1  # the worker that ran it was killed
    assert call(api, "POST", "/echo", json={}).status_code == 200


def test_a_handler_that_raises_gets_502_in_the_error_form(api):
    assert_error(call(api, "GET", "/boom"), 502, "internal_error")


def test_an_unknown_route_gets_404_in_the_error_form(api):
    assert_error(call(api, "GET", "/nowhere"), 404, "route_not_found")
    assert_error(call(api, "DELETE", "/echo"), 404, "route_not_found")


# ---- asynchronous work


def test_an_asynchronous_invocation_runs_the_function_in_a_background_process(api):
    job_id = call(api, "POST", "/jobs").json()["job_id"]

    job = wait_for(
        lambda: (answer := call(api, "GET", f"/jobs/{job_id}").json()).get("status") == "done" and answer
    )

    assert int(job["pid"]) != os.getpid()
    assert 0 < int(job["time_left_ms"]) <= 5000


def test_boto3_lambda_invoke_reaches_the_function(api):
    result = boto3.client("lambda").invoke(
        FunctionName="WorkerFunction", Payload=json.dumps({"job_id": "direct"})
    )

    assert "FunctionError" not in result
    assert json.loads(result["Payload"].read()) == {"ok": True}


def test_an_upload_under_a_trigger_prefix_runs_the_s3_triggered_function(api):
    s3 = boto3.client("s3")
    s3.put_object(Bucket="local-artifactsbucket", Key="uploads/set 1.zip", Body=b"PK\x05\x06" + b"\0" * 18)
    s3.put_object(Bucket="local-artifactsbucket", Key="uploads/notes.txt", Body=b"not a zip")

    def report():
        try:
            body = s3.get_object(Bucket="local-artifactsbucket", Key="reports/set 1.zip.json")["Body"].read()
        except s3.exceptions.NoSuchKey:
            return None
        return json.loads(body)

    assert wait_for(report) == {"key": "uploads/set 1.zip", "size": 22, "event": "ObjectCreated:Put"}
    keys = [
        item["Key"]
        for item in s3.list_objects_v2(Bucket="local-artifactsbucket", Prefix="reports/")["Contents"]
    ]
    assert keys == ["reports/set 1.zip.json"]  # the suffix filter kept notes.txt out


# ---- starting and stopping


def test_stop_closes_the_port_and_restores_the_environment():
    before = {
        key: os.environ.get(key) for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_LAMBDA", "JOBS_TABLE")
    }
    api = LocalApi(FIXTURES / "template.yaml", port=0, api_key=KEY).start()
    assert call(api, "GET", "/predictions/1").status_code == 200
    threads = [api.server._thread, api._lambda_thread, api.notifications._thread]

    api.stop()

    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", api.port), timeout=1).close()
    assert {key: os.environ.get(key) for key in before} == before
    assert not [thread.name for thread in threads if thread.is_alive()]


def test_the_serve_command_prints_url_key_and_curl_line_and_stops_on_sigterm(tmp_path):
    environment = {**os.environ, "API_KEY": "cli-key", "OPERATOR_API_KEY": "op-key,op-key-2", "PORT": "0"}
    environment.pop("AWS_ENDPOINT_URL", None)
    command = [sys.executable, "-m", "infra.local_api", "--template", str(FIXTURES / "template.yaml")]
    process = subprocess.Popen(
        command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    watchdog = threading.Timer(30, process.kill)  # a hung server fails the test instead of hanging it
    watchdog.start()
    try:
        lines = []
        while not lines or not (lines[-1].startswith("Ctrl-C") or lines[-1] == ""):  # "": it exited
            lines.append(process.stdout.readline())
        url = lines[0].split()[3]
        assert url.startswith("http://127.0.0.1:")
        assert "Client API key:   cli-key\n" in lines and "Operator API key: op-key\n" in lines
        assert any(
            line.startswith('Try:     curl -H "x-api-key: cli-key" -F file=@dog.jpg') for line in lines
        )
        for key in ("cli-key", "op-key", "op-key-2"):  # every key given, of both kinds, is valid
            assert (
                requests.post(url + "/echo", json={}, headers={"x-api-key": key}, timeout=10).status_code
                == 200
            )
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        watchdog.cancel()
