"""Faults injected into the real handlers: DynamoDB throttling and timeouts on the record write, S3
failures and corrupted artifacts during a model swap, an ingest killed half way through a zip.

Faults are injected at the HTTP layer (botocore's ``before-send`` event, ahead of moto), so the
functions' own botocore client sees them exactly as it would see AWS answering with them:
botocore's standard-mode retries run, then the package's own. Only botocore's backoff sleep is
zeroed, to keep the tests quick; what is counted are the attempts, not the time."""

import base64
import hashlib
import io
import json
import socket
import threading
import time
import zipfile

import pytest
from PIL import Image
from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from botocore.retries import standard

from classifier import aws as aws_clients
from classifier import storage
from classifier.api import model_provider, records
from classifier.cards import BASELINE_DIR, baseline_card
from classifier.mlops import registry, training_data
from functions.batch import app as batch
from functions.ingest import app as ingest
from functions.predict import app as predict
from tests.conftest import encode, gradient

BASELINE_BYTES = (BASELINE_DIR / "model.tflite").read_bytes()
BASELINE_VERSION = baseline_card()["version"]
SHA = hashlib.sha256(BASELINE_BYTES).hexdigest()


class RawBody:
    """The raw HTTP body botocore reads an injected response from."""

    def __init__(self, content: bytes):
        self._content = content

    def stream(self, **_):
        yield self._content


class Fault:
    """Fails the first ``times`` HTTP requests of one operation of a client, then lets them through
    (to moto). ``fault`` is an exception to raise (a timeout, a refused connection) or an
    ``(HTTP status, error code)`` AWS answers with; ``only`` restricts it to URLs containing a text."""

    def __init__(self, client, operation: str, fault, *, times: float = float("inf"), only: str = ""):
        self.fault, self.times, self.only = fault, times, only
        self.failed = 0
        self.passed = 0
        self.protocol = client.meta.service_model.protocol  # "json" (DynamoDB) or "rest-xml" (S3)
        service = client.meta.service_model.service_id.hyphenize()
        client.meta.events.register_first(f"before-send.{service}.{operation}", self)

    def __call__(self, request, **_):
        if self.only not in request.url:
            return None
        if self.failed >= self.times:
            self.passed += 1
            return None  # through to moto
        self.failed += 1
        if isinstance(self.fault, BaseException):
            raise self.fault
        status, code = self.fault
        # moto answers on the same event after this handler; pointing the request at no AWS host
        # keeps it from applying a write that the injected answer says was refused
        request.url = "http://fault.invalid/"
        if self.protocol == "json":
            body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": code})
            headers = {"Content-Type": "application/x-amz-json-1.0"}
        else:
            body = f"<Error><Code>{code}</Code><Message>{code}</Message></Error>"
            headers = {"Content-Type": "application/xml"}
        return AWSResponse(request.url, status, headers, RawBody(body.encode()))


THROTTLED = (400, "ProvisionedThroughputExceededException")


def read_timeout() -> ReadTimeoutError:
    return ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com/")


def no_connection() -> EndpointConnectionError:
    return EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com/")


WRITE_FAULTS = {"throttled": lambda: THROTTLED, "read timeout": read_timeout, "no connection": no_connection}


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    """Botocore's and the package's retries run in full, without their sleeps."""
    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0)
    monkeypatch.setattr(records, "RETRY_DELAY_S", 0)


def botocore_attempts(service: str) -> int:
    """Attempts botocore makes per call, as the functions' client for ``service`` is configured."""
    return aws_clients.client(service).meta.config.retries["total_max_attempts"]


def call(handler, event, context) -> tuple[int, dict]:
    response = handler.lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def function_log(handler, monkeypatch) -> io.StringIO:
    """The JSON lines the function's Powertools logger (and the package's loggers) write."""
    stream = io.StringIO()
    monkeypatch.setattr(handler.logger.registered_handler, "stream", stream)
    return stream


def logged_records(log: io.StringIO) -> list[dict]:
    """The records logged for recovery, without their None fields (the answer and the item omit them)
    and without the kept model input (in the record and its log line, never in the answer: checked
    apart, by ``test_a_logged_record_keeps_its_model_input``)."""
    lines = [json.loads(line) for line in log.getvalue().splitlines() if line.startswith("{")]
    return [
        {
            key: value
            for key, value in line["prediction_record"].items()
            if value is not None and key != "input_png"
        }
        for line in lines
        if "prediction_record" in line
    ]


def emitted_metric(capsys, name: str) -> float:
    """The sum of one metric over the EMF blobs Powertools printed to stdout (CloudWatch's input)."""
    total = 0.0
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            blob = json.loads(line)
            names = [m["Name"] for d in blob["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]]
            if name in names:
                value = blob[name]
                total += sum(value) if isinstance(value, list) else value
    return total


def stored_items(aws) -> list[dict]:
    """The stored records, without the kept model input (never part of an answer)."""
    items = [records.from_item(item) for item in aws.predictions.scan()["Items"]]
    return [{key: value for key, value in item.items() if key != "input_png"} for item in items]


def answered_record(body: dict) -> dict:
    """The record fields of an answer (what would have been stored), without ``top_k`` and ``stored``."""
    return {key: value for key, value in body.items() if key not in ("top_k", "stored", "index")}


# ---- 1. the record write throttled or timing out


@pytest.mark.parametrize("fault", sorted(WRITE_FAULTS))
def test_a_record_write_that_keeps_failing_is_answered_logged_and_counted(
    aws, load_event, lambda_context, monkeypatch, capsys, fault
):
    # given DynamoDB failing every PutItem (throttled, timing out or unreachable)
    failing = Fault(aws_clients.client("dynamodb"), "PutItem", WRITE_FAULTS[fault]())
    log = function_log(predict, monkeypatch)
    capsys.readouterr()

    # when a client predicts
    status, body = call(predict, load_event("predict-raw"), lambda_context)

    # then the prediction is answered, flagged not stored, after every retry
    assert status == 200 and body["label"] == "dog" and body["stored"] is False
    assert failing.failed == botocore_attempts("dynamodb") * records.WRITE_ATTEMPTS and failing.passed == 0
    # and nothing is lost: the log holds the full record, the same as the answer's fields
    (logged,) = logged_records(log)
    assert logged == answered_record(body)
    # and the RecordsNotStored metric counts the request
    assert emitted_metric(capsys, "RecordsNotStored") == 1
    assert stored_items(aws) == []


def test_a_logged_record_keeps_its_model_input(aws, load_event, lambda_context, monkeypatch):
    # given DynamoDB refusing every write
    Fault(aws_clients.client("dynamodb"), "PutItem", WRITE_FAULTS["throttled"]())
    log = function_log(predict, monkeypatch)
    # when a client predicts, then the record logged for recovery holds the 32x32 input as a PNG
    call(predict, load_event("predict-raw"), lambda_context)
    lines = [json.loads(line) for line in log.getvalue().splitlines() if '"prediction_record"' in line]
    png = base64.b64decode(lines[-1]["prediction_record"]["input_png"])
    assert png.startswith(b"\x89PNG") and Image.open(io.BytesIO(png)).size == (32, 32)


@pytest.mark.parametrize("fault", sorted(WRITE_FAULTS))
def test_a_batch_whose_write_keeps_failing_logs_every_record(
    aws, load_event, lambda_context, monkeypatch, capsys, fault
):
    # given DynamoDB failing every BatchWriteItem
    failing = Fault(aws_clients.client("dynamodb"), "BatchWriteItem", WRITE_FAULTS[fault]())
    log = function_log(batch, monkeypatch)
    capsys.readouterr()

    # when a client sends a batch of three images (and a file that is not one)
    status, body = call(batch, load_event("batch-json"), lambda_context)

    # then each image is answered, flagged not stored, and its full record is in the log
    assert status == 200 and body["stored"] is False and body["succeeded"] == 3
    answered = [entry for entry in body["results"] if "label" in entry]
    assert [entry["stored"] for entry in answered] == [False, False, False]
    assert failing.failed == botocore_attempts("dynamodb") * records.WRITE_ATTEMPTS
    assert sorted(logged_records(log), key=lambda r: r["id"]) == sorted(
        (answered_record(entry) for entry in answered), key=lambda r: r["id"]
    )
    assert emitted_metric(capsys, "RecordsNotStored") == 1
    assert stored_items(aws) == []


@pytest.mark.parametrize("fault", sorted(WRITE_FAULTS))
def test_a_transient_write_failure_is_retried_into_one_stored_record(
    aws, load_event, lambda_context, monkeypatch, capsys, fault
):
    # given DynamoDB failing more PutItem attempts than botocore retries, then recovering
    failing = Fault(
        aws_clients.client("dynamodb"), "PutItem", WRITE_FAULTS[fault](), times=botocore_attempts("dynamodb")
    )
    log = function_log(predict, monkeypatch)
    capsys.readouterr()

    # when a client predicts
    status, body = call(predict, load_event("predict-raw"), lambda_context)

    # then the package's own retry stores it: stored, exactly one item, equal to the answer
    assert status == 200 and body["stored"] is True
    assert (failing.failed, failing.passed) == (botocore_attempts("dynamodb"), 1)
    assert stored_items(aws) == [answered_record(body)]
    assert logged_records(log) == []
    assert emitted_metric(capsys, "RecordsNotStored") == 0


def test_a_write_applied_whose_answer_timed_out_is_stored_once(aws, load_event, lambda_context):
    # given DynamoDB applying the first PutItem but its answer never arriving (a read timeout)
    lost = {"answers": 0, "already_there_on_retry": None}
    applier = aws_clients.session().create_client("dynamodb")  # no fault on this one

    def lose_the_answer(request, **_):
        if lost["answers"] == 0:
            lost["answers"] += 1
            applier.put_item(**json.loads(request.body))
            raise read_timeout()
        lost["already_there_on_retry"] = len(stored_items(aws))

    aws_clients.client("dynamodb").meta.events.register_first("before-send.dynamodb.PutItem", lose_the_answer)

    # when a client predicts, then the retry writes the same id again: one item, equal to the answer
    status, body = call(predict, load_event("predict-raw"), lambda_context)
    assert status == 200 and body["stored"] is True and lost["answers"] == 1
    assert lost["already_there_on_retry"] == 1  # the lost answer's write had been applied
    assert stored_items(aws) == [answered_record(body)]


def test_a_transient_batch_failure_stores_each_record_once(aws, load_event, lambda_context, capsys):
    Fault(aws_clients.client("dynamodb"), "BatchWriteItem", THROTTLED, times=botocore_attempts("dynamodb"))

    status, body = call(batch, load_event("batch-json"), lambda_context)

    assert status == 200 and body["stored"] is True
    answered = sorted((answered_record(e) for e in body["results"] if "label" in e), key=lambda r: r["id"])
    assert sorted(stored_items(aws), key=lambda r: r["id"]) == answered


class HungEndpoint:
    """A TCP server that accepts connections and never answers: DynamoDB not responding at all."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/"
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                self.connections.append(self.server.accept()[0])
            except OSError:
                return

    def close(self):
        self.server.close()
        for connection in self.connections:
            connection.close()


def test_a_dynamodb_that_stops_answering_still_gets_the_prediction_answered_in_time(
    aws, load_event, lambda_context, monkeypatch
):
    # given a warm function, and DynamoDB accepting the record write's connection but never answering
    assert call(predict, load_event("predict-raw"), lambda_context)[0] == 200
    hung = HungEndpoint()
    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0)

    def to_hung(request, **_):
        request.url = hung.url

    aws_clients.client("dynamodb").meta.events.register_first("before-send.dynamodb.PutItem", to_hung)
    log = function_log(predict, monkeypatch)

    # when a client predicts
    started = time.monotonic()
    try:
        status, body = call(predict, load_event("predict-raw"), lambda_context)
    finally:
        hung.close()
    took = time.monotonic() - started

    # then the answer comes within the function's timeout (else Lambda would end it: a 5xx, and the
    # record in no log), flagged not stored, with the record logged
    timeout = aws.template.functions["PredictFunction"].timeout_s
    assert status == 200 and body["stored"] is False and took < timeout * 0.8
    assert logged_records(log) == [answered_record(body)]


def test_a_dynamodb_that_stops_answering_at_a_model_refresh_still_gets_the_answer_in_time(
    aws, load_event, lambda_context, monkeypatch
):
    # given a warm function due to re-read the registry pointer, and DynamoDB accepting every
    # connection (the pointer read and the record write alike) but never answering
    assert call(predict, load_event("predict-raw"), lambda_context)[0] == 200
    hung = HungEndpoint()
    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0)

    def to_hung(request, **_):
        request.url = hung.url

    aws_clients.client("dynamodb").meta.events.register_first("before-send.dynamodb", to_hung)
    log = function_log(predict, monkeypatch)
    model_provider.get_provider().expire()

    # when a client predicts
    started = time.monotonic()
    try:
        status, body = call(predict, load_event("predict-raw"), lambda_context)
    finally:
        hung.close()
    took = time.monotonic() - started

    # then the serving model answers within the function's timeout, flagged not stored, the record logged
    timeout = aws.template.functions["PredictFunction"].timeout_s
    assert status == 200 and body["stored"] is False and body["model_version"] == BASELINE_VERSION
    assert took < timeout * 0.8, took
    assert logged_records(log) == [answered_record(body)]


def test_the_worst_record_write_fits_in_the_predict_functions_timeout(aws):
    # given the DynamoDB client's timeouts and retries, and the package's retry budget
    config = aws_clients.client("dynamodb").meta.config
    one_call = botocore_attempts("dynamodb") * (config.connect_timeout + config.read_timeout)
    sleeps = sum(records.RETRY_DELAY_S * 2**i for i in range(records.WRITE_ATTEMPTS - 1))

    # then a write whose every attempt hangs to its timeouts still ends before the function does,
    # with time left for the rest of the request
    worst = records.WRITE_BUDGET_S + sleeps + one_call
    timeout = aws.template.functions["PredictFunction"].timeout_s
    assert worst < timeout * 0.8, (worst, timeout)


# ---- 2. S3 failures and corrupted artifacts during a model swap


def publish(aws, version: str, content: bytes = BASELINE_BYTES, sha256: str = SHA) -> None:
    """What promotion does: the artifact in S3, the version item, then the pointer."""
    key = storage.model_key(version)
    aws.s3.put_object(Bucket=aws.bucket, Key=key, Body=content)
    aws.models.put_item(Item={"version": version, "status": "promoted", "sha256": sha256, "tflite_key": key})
    aws.models.put_item(
        Item={"version": registry.POINTER_VERSION, "current_version": version, "sha256": sha256}
    )


def flipped(content: bytes) -> bytes:
    """The same length, a few bytes in the middle inverted: what a bad disk or transfer leaves."""
    middle = len(content) // 2
    return content[:middle] + bytes(b ^ 0xFF for b in content[middle : middle + 16]) + content[middle + 16 :]


JUNK = b"not a tflite model, but its sha256 is right"
# How each breakage is made once v3 is published; each returns the fault injected, if any.
BREAKAGES = {
    "artifact missing": lambda aws: aws.s3.delete_object(Bucket=aws.bucket, Key=storage.model_key("v3")),
    "S3 access denied": lambda aws: Fault(aws.s3, "GetObject", (403, "AccessDenied"), only="models/v3"),
    "S3 internal error": lambda aws: Fault(aws.s3, "GetObject", (500, "InternalError"), only="models/v3"),
    "S3 read timeout": lambda aws: Fault(aws.s3, "GetObject", read_timeout(), only="models/v3"),
    "bytes flipped": lambda aws: aws.s3.put_object(
        Bucket=aws.bucket, Key=storage.model_key("v3"), Body=flipped(BASELINE_BYTES)
    ),
    "a non-model with its own sha256": lambda aws: publish(aws, "v3", JUNK, hashlib.sha256(JUNK).hexdigest()),
}


def predict_now(load_event, lambda_context) -> dict:
    """A prediction after the refresh interval has passed (the provider re-reads the pointer)."""
    model_provider.get_provider().expire()
    status, body = call(predict, load_event("predict-raw"), lambda_context)
    assert status == 200, body
    return body


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_a_broken_new_version_never_replaces_the_serving_one_and_a_fixed_one_does(
    aws, load_event, lambda_context, breakage
):
    # given v2 serving
    publish(aws, "v2")
    assert predict_now(load_event, lambda_context)["model_version"] == "v2"

    # when v3 is promoted but its artifact cannot be read or is not the model the registry names
    publish(aws, "v3")
    fault = BREAKAGES[breakage](aws)

    # then every prediction is still answered, by v2, and recorded as v2's
    for _ in range(2):
        body = predict_now(load_event, lambda_context)
        assert body["model_version"] == "v2" and body["label"] == "dog" and body["stored"] is True
        assert records.get_record(aws.predictions, body["id"])["model_version"] == "v2"
    if isinstance(fault, Fault):
        assert fault.failed >= 2 and fault.passed == 0  # each refresh tried v3 again

    # when the artifact is fixed (republished, the fault gone), the next refresh swaps to v3
    if isinstance(fault, Fault):
        fault.times = 0
    publish(aws, "v3")
    body = predict_now(load_event, lambda_context)
    assert body["model_version"] == "v3" and body["model_sha256"] == SHA and body["label"] == "dog"


def test_an_s3_that_hangs_during_a_swap_leaves_the_old_model_answering_in_time(
    aws, load_event, lambda_context, monkeypatch
):
    # given v2 serving, then v3 promoted while S3 accepts the fetch's connection and never answers
    publish(aws, "v2")
    assert predict_now(load_event, lambda_context)["model_version"] == "v2"
    publish(aws, "v3")
    hung = HungEndpoint()

    def to_hung(request, **_):
        if "models/v3" in request.url:
            request.url = hung.url + request.url.split("/", 3)[3]

    s3_events = aws_clients.client("s3").meta.events
    s3_events.register_first("before-send.s3.GetObject", to_hung)
    deadline = model_provider.get_settings().model_fetch_deadline_seconds

    # when clients predict while the fetch hangs
    try:
        for _ in range(2):
            started = time.monotonic()
            body = predict_now(load_event, lambda_context)
            took = time.monotonic() - started

            # then v2 answers within the fetch deadline, far inside the function's timeout, and
            # the prediction is recorded as v2's
            timeout = aws.template.functions["PredictFunction"].timeout_s
            assert body["model_version"] == "v2" and body["stored"] is True
            assert took < deadline + 1 < timeout * 0.5, (took, deadline)
            assert records.get_record(aws.predictions, body["id"])["model_version"] == "v2"
    finally:
        # when S3 answers again (the hung connection drops: that fetch fails, the next one passes)
        s3_events.unregister("before-send.s3.GetObject", to_hung)
        hung.close()

    # then a request after the failed fetch has ended is served by v3
    for thread in threading.enumerate():
        if thread.name.startswith("model-refresh"):
            thread.join(30)
    body = predict_now(load_event, lambda_context)
    assert body["model_version"] == "v3" and body["label"] == "dog"


# ---- 4. an ingest killed half way through a zip


class Killed(BaseException):
    """The ingest function's process ending mid-call (a timeout, out of memory): nothing after runs."""


def training_objects(aws) -> dict[str, str]:
    pages = aws.s3.get_paginator("list_objects_v2").paginate(
        Bucket=aws.bucket, Prefix=storage.TRAINING_DATA_PREFIX
    )
    return {item["Key"]: item["ETag"].strip('"') for page in pages for item in page.get("Contents", [])}


def upload_event(bucket: str, key: str) -> dict:
    """What EventBridge delivers for an object created in the bucket."""
    return {
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {"bucket": {"name": bucket}, "object": {"key": key}},
    }


@pytest.mark.filterwarnings("ignore:No application metrics")  # the killed run adds none
def test_an_ingest_killed_half_way_finishes_on_the_rerun_storing_nothing_twice(
    aws, lambda_context, monkeypatch
):
    # given an upload of 8 new images in two classes, one of them twice, and a file that is not one
    images = {
        f"{label}/{i}.png": encode(gradient(32 + i, 32 + 2 * i + (label == "dog")), "PNG")
        for label in ("cat", "dog")
        for i in range(4)
    }
    entries = {**images, "cat/again.png": images["cat/0.png"], "dog/notes.txt": b"not an image"}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    upload = training_data.create_upload(aws.s3, aws.bucket)
    key, upload_id = upload["fields"]["key"], upload["upload_id"]
    aws.s3.put_object(Bucket=aws.bucket, Key=key, Body=buffer.getvalue())

    # when the ingest is killed after storing 3 of the images
    stored_before_crash = []

    def kill_after_three(request, **_):
        if storage.TRAINING_DATA_PREFIX in request.url:
            if len(stored_before_crash) == 3:
                raise Killed()
            stored_before_crash.append(request.url)

    aws.s3.meta.events.register_first("before-send.s3.PutObject", kill_after_three)
    with pytest.raises(Killed):
        ingest.lambda_handler(upload_event(aws.bucket, key), lambda_context)
    assert len(training_objects(aws)) == 3
    assert training_data.upload_status(aws.s3, aws.bucket, upload_id)["status"] == "processing"

    # and the event is delivered again (Lambda retries an asynchronous invocation that failed)
    aws.s3.meta.events.unregister("before-send.s3.PutObject", kill_after_three)
    (summary,) = ingest.lambda_handler(upload_event(aws.bucket, key), lambda_context)

    # then the upload is finished: each image stored once, content-addressed, and the report counts
    # what the upload brought, as if it had never crashed
    stored = training_objects(aws)
    assert sorted(stored) == sorted(
        storage.training_data_key(name.split("/")[0], hashlib.sha256(data).hexdigest(), "png")
        for name, data in images.items()
    )
    assert sorted(stored.values()) == sorted(hashlib.md5(data).hexdigest() for data in images.values())  # noqa: S324
    report = training_data.upload_status(aws.s3, aws.bucket, upload_id)
    assert report["status"] == "completed" and summary["status"] == "completed"
    assert report["counts"] == {"accepted": 8, "duplicate": 1, "rejected": 1} == summary["counts"]
    assert report["accepted_per_label"]["cat"] == 4 and report["accepted_per_label"]["dog"] == 4

    # and a third delivery of the same event changes nothing stored
    ingest.lambda_handler(upload_event(aws.bucket, key), lambda_context)
    assert training_objects(aws) == stored
