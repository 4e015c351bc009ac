"""Batch jobs through the local API and the real template, as a client runs one: POST /predict/jobs,
upload the zip with the presigned POST, the S3 poller starts the split, the SQS poller feeds the
workers (two at once, the template's MaximumConcurrency here), GET the job until it ends, fetch the
results by their links. And a worker killed mid-invocation: its chunks come back after the
visibility timeout and every image is still named exactly once. And a split that fails on every
try: its event reaches the split dead-letter queue, whose consumer ends the job failed."""

import io
import json
import os
import signal
import time
import zipfile

import pytest
import requests

from classifier.labels import LABELS
from tests.conftest import BASELINE_DIR, REPO
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CLIENT, OTHER = "client-jobs-0", "client-jobs-1"
PER_CLASS = 200


@pytest.fixture(scope="module")
def api(start_local_api):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", f"{REPO / 'layers' / 'classifier'}:{REPO}")  # worker processes
        patch.chdir(REPO)
        yield start_local_api(
            REPO / "template.yaml",
            api_key=CLIENT,
            extra_api_keys=(OTHER,),
            parameters={"BatchJobConcurrency": "2", "BatchJobChunkImages": "100"},
            s3_poll_interval_s=0.2,
            sqs_visibility_timeout_s=2,
            async_retry_delays_s=(0.2, 0.4),  # Lambda's 1 and 2 minutes, shortened
        )


def call(api, method, path, key=CLIENT, **kwargs):
    return requests.request(method, f"{api.url}{path}", headers={"x-api-key": key}, timeout=30, **kwargs)


def job_zip(test_zip, per_class: int, broken: bool) -> tuple[bytes, list[str], dict[str, str]]:
    """``per_class`` test images of each class (the first ones), in class folders; with ``broken``,
    a text file and a truncated JPEG among them. The names in zip order, and the broken ones' codes."""
    reasons = {}
    buffer = io.BytesIO()
    with zipfile.ZipFile(test_zip) as source, zipfile.ZipFile(buffer, "w") as out:
        for label in LABELS:
            for index in range(per_class):
                out.writestr(f"{label}/{index:04d}.jpg", source.read(f"{label}/{index:04d}.jpg"))
            if broken and label == "cat":
                out.writestr("cat/notes.txt", b"these are my cats")
                out.writestr("cat/truncated.jpg", source.read("cat/0300.jpg")[:150])
                reasons |= {"cat/notes.txt": "undecodable_image", "cat/truncated.jpg": "undecodable_image"}
    data = buffer.getvalue()
    return data, zipfile.ZipFile(io.BytesIO(data)).namelist(), reasons


def run_job(api, data: bytes, *, during=None, timeout_s: float = 60.0) -> tuple[dict, list[dict]]:
    created = call(api, "POST", "/predict/jobs", json={"name": "test set", "top_k": 3})
    assert created.status_code == 202, created.text
    job = created.json()
    assert job["status"] == "waiting_for_upload"
    upload = requests.post(
        job["upload"]["url"], data=job["upload"]["fields"], files={"file": ("upload.zip", data)}, timeout=30
    )
    assert upload.status_code in (200, 201, 204), upload.text
    if during is not None:
        during(job["job_id"])
    final = wait_for(
        lambda: (view := call(api, "GET", f"/predict/jobs/{job['job_id']}").json())["status"]
        in ("succeeded", "failed")
        and view,
        timeout_s=timeout_s,
        interval_s=0.25,
    )
    lines = [
        json.loads(line) for line in requests.get(final["results"]["jsonl"], timeout=30).text.splitlines()
    ]
    return final, lines


def test_a_job_of_2000_test_images_names_each_once_and_matches_the_model_card(api, test_zip):
    data, names, broken = job_zip(test_zip, PER_CLASS, broken=True)
    started = time.monotonic()

    final, lines = run_job(api, data)

    elapsed = time.monotonic() - started
    assert final["status"] == "succeeded", final
    assert [line["name"] for line in lines] == names  # every entry once, in the zip's order
    for line in lines:
        if line["name"] in broken:
            assert line["error"]["code"] == broken[line["name"]] and line["error"]["reason"]
    readable = [line for line in lines if line["name"] not in broken]
    assert all("label" in line and len(line["top_k"]) == 3 for line in readable)
    accuracy = sum(line["label"] == line["name"].split("/")[0] for line in readable) / len(readable)
    card = json.loads((BASELINE_DIR / "card.json").read_text())
    assert abs(accuracy - card["accuracy"]) <= 0.01, (accuracy, card["accuracy"])
    assert final["images"] == {"total": len(names), "done": len(readable), "failed": 2, "pending": 0}
    assert final["summary"]["rejections"] == {"undecodable_image": 2}
    assert sum(final["summary"]["per_class"].values()) == len(readable)
    csv_rows = requests.get(final["results"]["csv"], timeout=30).text.splitlines()
    assert len(csv_rows) == len(names) + 1
    # another client cannot see it; its owner lists it
    assert call(api, "GET", f"/predict/jobs/{final['job_id']}", key=OTHER).status_code == 404
    assert final["job_id"] in [job["job_id"] for job in call(api, "GET", "/predict/jobs").json()["items"]]
    print(f"\n2,000-image job end to end: {elapsed:.1f} s, {len(names) / elapsed:.0f} images/s")


def test_a_worker_killed_mid_invocation_loses_and_duplicates_nothing(api, test_zip):
    data, names, _ = job_zip(test_zip, 100, broken=False)
    pool = api.runtime.pools["BatchJobWorkerFunction"]
    killed = []

    def kill_a_busy_worker(job_id: str) -> None:
        deadline = time.monotonic() + 20
        while not killed and time.monotonic() < deadline:
            view = call(api, "GET", f"/predict/jobs/{job_id}").json()
            busy = pool.busy_pids()
            if view["status"] == "running" and view["chunks"]["done"] >= 1 and busy:
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
            time.sleep(0.01)

    final, lines = run_job(api, data, during=kill_a_busy_worker)

    assert killed, "no worker was busy to kill"
    assert final["status"] == "succeeded", final
    assert [line["name"] for line in lines] == names
    assert final["chunks"] == {"total": 10, "done": 10, "failed": 0}
    assert final["images"]["done"] == len(names)


def test_a_job_whose_split_fails_on_every_try_is_reported_failed_not_left_waiting(api):
    import boto3

    # given a job whose split is started while its zip is not in S3 (it fails on every try)
    created = call(api, "POST", "/predict/jobs", key=OTHER, json={"name": "never uploaded"})
    assert created.status_code == 202, created.text
    job_id = created.json()["job_id"]
    lambda_client = boto3.client("lambda", endpoint_url=api.lambda_api.url)
    function = api.template.physical_name("BatchJobSplitFunction")
    answer = lambda_client.invoke(
        FunctionName=function, InvocationType="Event", Payload=json.dumps({"job_id": job_id})
    )
    assert answer["StatusCode"] == 202

    # then, after Lambda's tries and the dead-letter queue, the client sees it failed, and why
    final = wait_for(
        lambda: (view := call(api, "GET", f"/predict/jobs/{job_id}", key=OTHER).json())["status"] == "failed"
        and view,
        timeout_s=30,
        interval_s=0.25,
    )
    assert final["error"]["code"] == "split_failed", final
    assert "Submit the job again" in final["error"]["message"]
