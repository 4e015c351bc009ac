"""Batch jobs in-process on moto (S3, DynamoDB, SQS): the API, the split over ranged reads, the
workers with partial batch responses, redelivery, the dead-letter path and the merge."""

import csv
import io
import json
import zipfile

import pytest

from classifier import storage
from classifier.api import batch_jobs, callers
from classifier.api.callers import RoleLookup
from classifier.aws import S3RangeReader, client, table
from infra import events
from tests.unit.conftest import FUNCTION_ENVIRONMENT, TEMPLATE

JOBS_ENV = TEMPLATE.functions["BatchJobSplitFunction"].environment
OPERATOR_PLAN = FUNCTION_ENVIRONMENT["OPERATOR_USAGE_PLAN"]


@pytest.fixture
def jobs(aws, monkeypatch):
    for key in ("BATCH_JOBS_TABLE", "BATCH_JOB_QUEUE_URL"):
        monkeypatch.setenv(key, JOBS_ENV[key])
    monkeypatch.setenv("BATCH_JOB_CHUNK_IMAGES", "10")
    monkeypatch.setenv("BATCH_JOB_SPLIT_FUNCTION", "BatchJobSplitFunction")
    from classifier.settings import get_settings

    get_settings.cache_clear()
    callers.set_lookup(RoleLookup(lambda key_id: [OPERATOR_PLAN] if key_id == "ops" else [], OPERATOR_PLAN))
    aws.jobs = table(JOBS_ENV["BATCH_JOBS_TABLE"])
    aws.sqs = client("sqs")
    aws.queue = JOBS_ENV["BATCH_JOB_QUEUE_URL"]
    return aws


def job_zip(test_zip, count: int) -> tuple[bytes, list[str], dict[str, str]]:
    """``count`` test images in class folders plus broken entries; the entry names in zip order and
    the broken ones' expected error codes."""
    broken = {}
    buffer = io.BytesIO()
    with zipfile.ZipFile(test_zip) as source, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
        infos = [info for info in source.infolist() if not info.is_dir()][::97][:count]
        for position, info in enumerate(infos):
            out.writestr(
                info.filename, source.read(info), zipfile.ZIP_STORED if position % 2 else zipfile.ZIP_DEFLATED
            )
            if position == 3:
                out.writestr("notes/readme.txt", b"not an image at all")
                broken["notes/readme.txt"] = "undecodable_image"
                out.writestr("broken/truncated.jpg", source.read(info)[:200])
                broken["broken/truncated.jpg"] = "undecodable_image"
                out.writestr("../escape.jpg", source.read(info))
                broken["../escape.jpg"] = "entry_refused"
                out.writestr("inner.zip", b"PK\x03\x04 nested")
                broken["inner.zip"] = "entry_refused"
        out.writestr("folder/", b"")
    data = buffer.getvalue()
    names = [
        info.filename
        for info in zipfile.ZipFile(io.BytesIO(data)).infolist()
        if not info.filename.endswith("/")
    ]
    return data, names, broken


def api_call(method: str, path: str, key_id: str, body: dict | None = None, job_id: str | None = None):
    from functions.jobs import app

    route = next(r for r in TEMPLATE.routes if r.method == method and r.path == path)
    event = events.api_event(
        route=route,
        path=path.replace("{job_id}", job_id or ""),
        path_parameters={"job_id": job_id} if job_id else None,
        headers=[("content-type", "application/json")],
        body=json.dumps(body).encode() if body is not None else b"",
        api_key="key-" + key_id,
        api_key_id=key_id,
    )
    response = app.lambda_handler(event, _context())
    return response["statusCode"], json.loads(response["body"])


def _context():
    from tests.conftest import FakeLambdaContext

    return FakeLambdaContext()


def receive_all(aws) -> list[dict]:
    messages = []
    while True:
        batch = aws.sqs.receive_message(QueueUrl=aws.queue, MaxNumberOfMessages=10, AttributeNames=["All"])
        if not batch.get("Messages"):
            return messages
        messages += batch["Messages"]


def run_worker(
    messages: list[dict], handler_name: str = "lambda_handler", queue: str = "BatchJobQueue"
) -> dict:
    from functions.job_worker import app

    event = events.sqs_event(
        messages, queue_arn=f"arn:aws:sqs:us-east-1:123456789012:{queue}", region="us-east-1"
    )
    return getattr(app, handler_name)(event, _context())


def start_upload_job(jobs, test_zip, count: int):
    status, job = api_call("POST", "/predict/jobs", "alice", {"name": "holiday", "top_k": 2})
    assert status == 202, job
    assert job["status"] == "waiting_for_upload" and job["upload"]["fields"]["key"].endswith("/upload.zip")
    data, names, broken = job_zip(test_zip, count)
    jobs.s3.put_object(Bucket=jobs.bucket, Key=job["upload"]["fields"]["key"], Body=data)
    from functions.job_split import app as split_app

    key = storage.batch_job_key(job["job_id"], "upload.zip")
    (outcome,) = split_app.lambda_handler(
        events.s3_eventbridge_event(
            bucket=jobs.bucket, key=key, size=len(data), etag="x", region="us-east-1"
        ),
        _context(),
    )
    return job["job_id"], names, broken, outcome


def test_the_range_reader_lets_zipfile_read_the_directory_without_the_whole_object(jobs, test_zip):
    data, names, _ = job_zip(test_zip, 40)
    jobs.s3.put_object(Bucket=jobs.bucket, Key="batch-jobs/x/upload.zip", Body=data)
    reader = S3RangeReader(jobs.s3, jobs.bucket, "batch-jobs/x/upload.zip")

    with zipfile.ZipFile(io.BufferedReader(reader, buffer_size=4096)) as archive:
        listed = [info.filename for info in archive.infolist() if not info.filename.endswith("/")]

    assert listed == names
    assert reader.gets <= 4 and reader.bytes_read < len(data) / 4


def test_a_job_names_every_entry_once_in_zip_order_with_reasons_for_the_broken(jobs, test_zip):
    job_id, names, broken, outcome = start_upload_job(jobs, test_zip, 30)
    assert outcome == {"job_id": job_id, "status": "running", "chunks": 4, "images": len(names)}
    messages = receive_all(jobs)
    assert len(messages) == 4

    # a chunk delivered twice (a redelivery) is one part and one count
    assert run_worker(messages[:2]) == {"batchItemFailures": []}
    run_worker(messages[1:2])
    job = batch_jobs.load_job(jobs.jobs, job_id)
    assert job["chunks_done"] == 2 and job["done_chunks"] == {"0", "1"} and job["status"] == "running"
    run_worker(messages[2:])

    status, view = api_call("GET", "/predict/jobs/{job_id}", "alice", job_id=job_id)
    assert status == 200 and view["status"] == "succeeded", view
    assert view["images"] == {"total": len(names), "done": len(names) - 4, "failed": 4, "pending": 0}
    assert view["summary"]["rejections"] == {"entry_refused": 2, "undecodable_image": 2}
    assert sum(view["summary"]["per_class"].values()) == len(names) - 4
    lines = [json.loads(line) for line in _get(jobs, job_id, "results.jsonl").splitlines()]
    assert [line["name"] for line in lines] == names
    for line in lines:
        if line["name"] in broken:
            assert line["error"]["code"] == broken[line["name"]] and line["error"]["reason"]
        else:
            assert line["label"] == line["name"].split("/")[0] or line["confidence"] < 1
            assert len(line["top_k"]) == 2 and "probabilities" not in line
    right = sum(line.get("label") == line["name"].split("/")[0] for line in lines)
    assert right >= 0.7 * (len(names) - 4)
    rows = list(csv.reader(io.StringIO(_get(jobs, job_id, "results.csv"))))
    assert (
        rows[0][:3] == ["name", "label", "confidence"] and len(rows[0]) == 14 and len(rows) == len(names) + 1
    )
    assert set(view["results"]) == {"jsonl", "csv", "summary", "expires_in"}


def _get(jobs, job_id: str, name: str) -> str:
    return (
        jobs.s3.get_object(Bucket=jobs.bucket, Key=storage.batch_job_key(job_id, name))["Body"]
        .read()
        .decode()
    )


def test_a_chunk_that_kept_failing_ends_the_job_failed_with_every_image_named(jobs, test_zip):
    job_id, names, _, _ = start_upload_job(jobs, test_zip, 12)
    first, second = receive_all(jobs)
    run_worker([first])

    # the dead-letter queue's consumer gets the second chunk after its last receive
    assert run_worker([second], "dead_letter_handler", "BatchJobDeadLetterQueue") == {"batchItemFailures": []}

    view = batch_jobs.get_job(jobs.jobs, jobs.s3, jobs.bucket, job_id)
    assert view["status"] == "failed" and view["chunks"] == {"total": 2, "done": 1, "failed": 1}
    lines = [json.loads(line) for line in _get(jobs, job_id, "results.jsonl").splitlines()]
    assert [line["name"] for line in lines] == names
    assert {line["error"]["code"] for line in lines[10:]} == {"chunk_failed"}


def test_a_zip_refused_as_a_whole_fails_the_job_and_a_repeated_event_changes_nothing(jobs):
    status, job = api_call("POST", "/predict/jobs", "alice", {})
    jobs.s3.put_object(Bucket=jobs.bucket, Key=job["upload"]["fields"]["key"], Body=b"not a zip")
    outcome = batch_jobs.split_job(jobs.jobs, jobs.s3, jobs.sqs, jobs.queue, job["job_id"])
    again = batch_jobs.split_job(jobs.jobs, jobs.s3, jobs.sqs, jobs.queue, job["job_id"])

    assert outcome["status"] == "failed" and outcome["error"]["code"] == "upload_refused"
    assert again["note"] == "already split" and receive_all(jobs) == []


def test_clients_see_only_their_own_jobs_and_only_operators_name_a_source(jobs, monkeypatch):
    _, mine = api_call("POST", "/predict/jobs", "alice", {"name": "a"})
    api_call("POST", "/predict/jobs", "bob", {"name": "b"})

    assert api_call("GET", "/predict/jobs/{job_id}", "bob", job_id=mine["job_id"])[0] == 404
    assert api_call("GET", "/predict/jobs/{job_id}", "ops", job_id=mine["job_id"])[0] == 200
    status, page = api_call("GET", "/predict/jobs", "alice")
    assert status == 200 and [item["job_id"] for item in page["items"]] == [mine["job_id"]]
    _, later = api_call("POST", "/predict/jobs", "alice", {"name": "a2"})
    first = _listing(jobs, "alice", "limit=1")
    second = _listing(jobs, "alice", f"limit=1&cursor={first['next_cursor']}")
    assert [i["job_id"] for i in first["items"] + second["items"]] == [later["job_id"], mine["job_id"]]
    assert _listing(jobs, "bob", f"cursor={first['next_cursor']}")["error"]["code"] == "invalid_parameter"
    source = {"source": f"s3://{jobs.bucket}/images/"}
    assert api_call("POST", "/predict/jobs", "alice", source)[1]["error"]["code"] == "forbidden"
    assert api_call("POST", "/predict/jobs", "ops", {"source": "s3://another-bucket/x/"})[0] == 400
    assert api_call("POST", "/predict/jobs", "alice", {"top_k": 11})[0] == 400
    assert api_call("POST", "/predict/jobs", "alice", {"colour": "red"})[0] == 400


def _listing(jobs, key_id: str, query: str) -> dict:
    from functions.jobs import app

    route = next(r for r in TEMPLATE.routes if r.method == "GET" and r.path == "/predict/jobs")
    pairs = [tuple(part.split("=", 1)) for part in query.split("&")]
    event = events.api_event(route=route, path="/predict/jobs", query=pairs, api_key="k", api_key_id=key_id)
    return json.loads(app.lambda_handler(event, _context())["body"])


def test_an_operators_prefix_job_reads_the_objects_under_it(jobs, test_zip, monkeypatch):
    with zipfile.ZipFile(test_zip) as archive:
        for index, name in enumerate(["cat/0000.jpg", "dog/0001.jpg", "ship/0002.jpg"]):
            jobs.s3.put_object(
                Bucket=jobs.bucket, Key=f"images/{index}-{name.replace('/', '-')}", Body=archive.read(name)
            )
    invoked = []
    monkeypatch.setattr("functions.jobs.app._start_split", invoked.append)

    status, job = api_call("POST", "/predict/jobs", "ops", {"source": f"s3://{jobs.bucket}/images/"})
    assert status == 202 and invoked == [job["job_id"]] and job["status"] == "running"
    batch_jobs.split_job(jobs.jobs, jobs.s3, jobs.sqs, jobs.queue, job["job_id"])
    run_worker(receive_all(jobs))

    lines = [json.loads(line) for line in _get(jobs, job["job_id"], "results.jsonl").splitlines()]
    assert [line["name"] for line in lines] == ["0-cat-0000.jpg", "1-dog-0001.jpg", "2-ship-0002.jpg"]
    assert all("label" in line for line in lines)


def test_the_template_maps_the_chunk_queue_to_the_workers_with_partial_batch_responses():
    (chunks,) = [t for t in TEMPLATE.sqs_triggers if t.function_id == "BatchJobWorkerFunction"]
    assert chunks.queue == "BatchJobQueue" and chunks.report_batch_item_failures
    assert chunks.max_concurrency == int(TEMPLATE.parameters["BatchJobConcurrency"])
    queue = TEMPLATE.resources["BatchJobQueue"]["Properties"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] == 3
    assert queue["VisibilityTimeout"] >= TEMPLATE.functions["BatchJobWorkerFunction"].timeout_s
    (dead,) = [t for t in TEMPLATE.sqs_triggers if t.function_id == "BatchJobDeadLetterFunction"]
    assert dead.queue == "BatchJobDeadLetterQueue"
    table_spec = TEMPLATE.tables["BatchJobsTable"]
    assert [i["IndexName"] for i in table_spec["GlobalSecondaryIndexes"]] == [batch_jobs.OWNER_INDEX]


# ---- a split that fails on every try: the split dead-letter queue


def split_dead_letters(jobs) -> str:
    return jobs.sqs.get_queue_url(QueueName="BatchJobSplitDeadLetterQueue")["QueueUrl"]


def dead_letter(jobs, event: dict, error: str = "ClientError: An error occurred (NoSuchKey)") -> list[dict]:
    """What Lambda does with an asynchronous event its function failed on every try: the event,
    unchanged, to the function's dead-letter queue with the last error; then what that queue's
    mapping receives."""
    url = split_dead_letters(jobs)
    jobs.sqs.send_message(
        QueueUrl=url,
        MessageBody=json.dumps(event),
        MessageAttributes={
            "RequestID": {"DataType": "String", "StringValue": "0f6e3c3b-request"},
            "ErrorCode": {"DataType": "Number", "StringValue": "200"},
            "ErrorMessage": {"DataType": "String", "StringValue": error},
        },
    )
    messages = jobs.sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
    )["Messages"]
    return messages


def run_split_dead_letters(messages: list[dict]) -> dict:
    from functions.job_split import app

    event = events.sqs_event(
        messages,
        queue_arn="arn:aws:sqs:us-east-1:123456789012:BatchJobSplitDeadLetterQueue",
        region="us-east-1",
    )
    return app.dead_letter_handler(event, _context())


def upload_event(jobs, job_id: str) -> dict:
    key = storage.batch_job_key(job_id, "upload.zip")
    return events.s3_eventbridge_event(bucket=jobs.bucket, key=key, size=1, etag="x", region="us-east-1")


def test_a_job_whose_split_fails_on_every_try_ends_failed_with_the_reason(jobs):
    # given a job whose upload event reaches the split, but the zip cannot be read (it is gone)
    from functions.job_split import app as split_app

    status, job = api_call("POST", "/predict/jobs", "alice", {"name": "gone"})
    event = upload_event(jobs, job["job_id"])
    with pytest.raises(Exception):  # noqa: B017 (whatever S3 raised: Lambda retries, then dead-letters)
        split_app.lambda_handler(event, _context())

    # when Lambda gives up and the event reaches the split dead-letter queue's consumer
    response = run_split_dead_letters(dead_letter(jobs, event, "ClientError: NoSuchKey"))

    # then the job has ended, failed, with a reason the client can act on, and the message is gone
    assert response == {"batchItemFailures": []}
    status, view = api_call("GET", "/predict/jobs/{job_id}", "alice", job_id=job["job_id"])
    assert status == 200 and view["status"] == "failed"
    assert view["error"]["code"] == batch_jobs.SPLIT_FAILED
    assert "NoSuchKey" in view["error"]["message"] and "Submit the job again" in view["error"]["message"]
    assert view["finished_at"] and view["seconds_left"] == 0


def test_a_split_that_stopped_half_way_through_its_chunks_ends_the_job_failed(jobs, test_zip, monkeypatch):
    # given a split whose queue refuses the second batch of chunks, on every try
    status, job = api_call("POST", "/predict/jobs", "alice", {})
    data, _, _ = job_zip(test_zip, 40)  # 44 entries: 11 chunks of 4, two SendMessageBatch calls
    jobs.s3.put_object(Bucket=jobs.bucket, Key=job["upload"]["fields"]["key"], Body=data)
    sent = []

    def send(sqs, queue_url, batch):
        if sent:
            raise RuntimeError("SQS unavailable")
        sent.append(batch)
        sqs.send_message_batch(QueueUrl=queue_url, Entries=batch)

    monkeypatch.setattr(batch_jobs, "_send", send)
    with pytest.raises(RuntimeError):
        batch_jobs.split_job(jobs.jobs, jobs.s3, jobs.sqs, jobs.queue, job["job_id"], chunk_images=4)
    assert batch_jobs.load_job(jobs.jobs, job["job_id"])["status"] == "running"

    # when its event is dead-lettered, and then the chunks that were sent run
    run_split_dead_letters(dead_letter(jobs, upload_event(jobs, job["job_id"])))
    run_worker(receive_all(jobs))

    # then the job is failed for its split, and the chunks that ran after change nothing
    item = batch_jobs.load_job(jobs.jobs, job["job_id"])
    assert item["status"] == "failed" and item["error"]["code"] == batch_jobs.SPLIT_FAILED
    assert int(item.get("chunks_done", 0)) == 0 and "summary" not in item


def test_a_stale_dead_lettered_split_leaves_a_job_whose_chunks_were_queued(jobs, test_zip):
    # given a job split in full (a later try, or a second upload, succeeded)
    job_id, _, _, outcome = start_upload_job(jobs, test_zip, 20)
    assert outcome["status"] == "running"

    # when an earlier try's event reaches the dead-letter queue's consumer
    run_split_dead_letters(dead_letter(jobs, upload_event(jobs, job_id)))

    # then the job runs on and ends as its chunks say
    assert batch_jobs.load_job(jobs.jobs, job_id)["status"] == "running"
    run_worker(receive_all(jobs))
    assert batch_jobs.load_job(jobs.jobs, job_id)["status"] == "succeeded"

    # and a job that has ended is never changed by one
    run_split_dead_letters(dead_letter(jobs, upload_event(jobs, job_id)))
    assert batch_jobs.load_job(jobs.jobs, job_id)["status"] == "succeeded"


def test_a_dead_lettered_split_of_a_prefix_job_ends_it_failed(jobs, monkeypatch):
    monkeypatch.setattr("functions.jobs.app._start_split", lambda job_id: None)  # its try failed
    status, job = api_call("POST", "/predict/jobs", "ops", {"source": f"s3://{jobs.bucket}/images/"})
    run_split_dead_letters(
        dead_letter(jobs, {"job_id": job["job_id"]}, "Task timed out after 300.00 seconds")
    )
    item = batch_jobs.load_job(jobs.jobs, job["job_id"])
    assert item["status"] == "failed" and "Task timed out" in item["error"]["message"]


def test_a_dead_lettered_event_that_names_no_job_stays_in_the_queue(jobs):
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

    # an invocation whose every record failed is an error: the mapping deletes none of its messages
    for body in ({"something": "else"}, {"source": "aws.s3", "detail": {"object": {"key": "models/x"}}}):
        with pytest.raises(BatchProcessingError):
            run_split_dead_letters(dead_letter(jobs, body))


def test_the_template_maps_the_split_dead_letter_queue_to_its_consumer():
    split = TEMPLATE.functions["BatchJobSplitFunction"]
    assert split.dead_letter_queue == "BatchJobSplitDeadLetterQueue" and split.async_retries == 2
    (consumer,) = [t for t in TEMPLATE.sqs_triggers if t.function_id == "BatchJobSplitDeadLetterFunction"]
    assert consumer.queue == split.dead_letter_queue and consumer.report_batch_item_failures
    queue = TEMPLATE.resources["BatchJobSplitDeadLetterQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= TEMPLATE.functions["BatchJobSplitDeadLetterFunction"].timeout_s
