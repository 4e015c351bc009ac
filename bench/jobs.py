"""Batch job benchmark: a job of CIFAR-10 test images through the local API and the real template
(presigned upload, the S3 poller, the split function, the SQS poller and its workers, the merge),
end to end, with 1 and 2 workers and a few chunk sizes; then what a million images cost in AWS
through a job and through ``POST /predict``, at list prices.

For each setting a fresh local API runs a small warm-up job (the workers' cold starts), then the
timed job: **end to end** is from ``POST /predict/jobs`` to the job's ``succeeded``, upload
included; **first result** is from the upload's end to the first image counted done. The per-image
worker time (what Lambda bills) is the 1-worker job's running time over its images: chunks run
back to back there, S3 and SQS calls to moto included.

Run: ``make bench`` (after the handlers) or ``python -m bench.jobs [--images N]``.
"""

import argparse
import io
import json
import logging
import os
import sys
import time
import zipfile
from pathlib import Path

import boto3
import requests

REPO = Path(__file__).resolve().parents[1]
KEY = "bench-jobs-client"
SETTINGS = ((1, 250), (2, 250), (2, 100), (2, 500))  # (workers, images per chunk)

# AWS list prices, us-east-1, x86 (per unit). Lambda: per GB-second and per request; API Gateway
# REST: per request (first 333 million a month); S3 standard: PUT and GET per request; SQS standard:
# per request (64 KiB each); DynamoDB on demand: per write request unit (1 KiB).
LAMBDA_GB_SECOND = 0.0000166667
LAMBDA_REQUEST = 0.20 / 1e6
API_GATEWAY_REQUEST = 3.50 / 1e6
S3_PUT = 0.005 / 1000
S3_GET = 0.0004 / 1000
SQS_REQUEST = 0.40 / 1e6
DYNAMODB_WRITE_UNIT = 0.625 / 1e6
# POST /predict, warm, one image, from docs/performance.md (the handler with an instant store):
# Lambda bills it by the millisecond at the predict function's 1,769 MB; a prediction record is
# about 1.2 KiB, 2 write units.
PREDICT_MS = 8.6
PREDICT_MEMORY_MB = 1769
RECORD_WRITE_UNITS = 2


def job_zip(test_zip: Path, images: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(test_zip) as source, zipfile.ZipFile(buffer, "w") as out:
        infos = [info for info in source.infolist() if not info.is_dir()]
        for position in range(images):
            info = infos[position % len(infos)]
            out.writestr(f"{position // len(infos)}/{info.filename}", source.read(info))
    return buffer.getvalue()


def run_job(api, data: bytes, timeout_s: float = 600) -> dict:
    headers = {"x-api-key": api.api_key}
    started = time.monotonic()
    job = requests.post(f"{api.url}/predict/jobs", json={}, headers=headers, timeout=30).json()
    upload = job["upload"]
    requests.post(upload["url"], data=upload["fields"], files={"file": ("upload.zip", data)}, timeout=120)
    uploaded = time.monotonic()
    first = None
    # Progress is read from the table itself, every 20 ms: the API's read bucket (10 a second) would
    # throttle polling this often.
    jobs = boto3.client("dynamodb")
    table = api.template.physical_name("BatchJobsTable")
    while time.monotonic() - started < timeout_s:
        item = jobs.get_item(TableName=table, Key={"job_id": {"S": job["job_id"]}}, ConsistentRead=True)[
            "Item"
        ]
        if first is None and int(item.get("images_done", {"N": "0"})["N"]) > 0:
            first = time.monotonic() - uploaded
        if item["status"]["S"] in ("succeeded", "failed"):
            break
        time.sleep(0.02)
    ended = time.monotonic()
    view = requests.get(f"{api.url}/predict/jobs/{job['job_id']}", headers=headers, timeout=30).json()
    return {
        "status": view["status"],
        "images": view["images"]["total"],
        "end_to_end_s": ended - started,
        "upload_s": uploaded - started,
        "first_result_s": first if first is not None else ended - uploaded,
        "running_s": view["images"]["total"] / view["images_per_second"]
        if view["images_per_second"]
        else None,
    }


def measure(test_zip: Path, images: int, workers: int, chunk: int) -> dict:
    from infra.local_api import LocalApi

    parameters = {"BatchJobConcurrency": str(workers), "BatchJobChunkImages": str(chunk)}
    key = f"{KEY}-{workers}-{chunk}"  # moto keeps its API keys for the process: one per local API
    with LocalApi(
        REPO / "template.yaml", port=0, api_key=key, parameters=parameters, s3_poll_interval_s=0.1
    ) as api:
        cold = run_job(api, job_zip(test_zip, max(chunk * workers, 100)))
        warm = run_job(api, job_zip(test_zip, images))
    return {"workers": workers, "chunk": chunk, "cold_first_result_s": cold["first_result_s"], **warm}


def costs_per_million(
    per_image_s: float, memory_mb: int, chunk: int, batch_size: int, job_images: int
) -> dict:
    """Dollars per million images through batch jobs of ``job_images`` each, and through POST /predict."""
    images = 1e6
    chunks = images / chunk
    jobs = images / job_images
    gb = memory_mb / 1024
    job = {
        "Lambda GB-seconds": per_image_s * images * gb * LAMBDA_GB_SECOND,
        "Lambda requests": (chunks / batch_size + jobs * 2) * LAMBDA_REQUEST,  # workers; API + split per job
        # per chunk: one ranged GET (a span of its entries), one part PUT, the merge's GET of it;
        # per job: three result PUTs and the directory's few GETs
        "S3 requests": chunks * (S3_PUT + 2 * S3_GET) + jobs * (3 * S3_PUT + 4 * S3_GET),
        # send (10 per call), receive and delete (a batch each) per chunk
        "SQS requests": (chunks / 10 + 2 * chunks / batch_size) * SQS_REQUEST,
        # one conditional update per chunk; the item grows with its set of done chunk ids (~3 KiB)
        "DynamoDB writes": chunks * 3 * DYNAMODB_WRITE_UNIT + jobs * 4 * DYNAMODB_WRITE_UNIT,
        "API Gateway": jobs * 20 * API_GATEWAY_REQUEST,  # create and a few status polls per job
    }
    predict = {
        "API Gateway": images * API_GATEWAY_REQUEST,
        "Lambda requests": images * LAMBDA_REQUEST,
        "Lambda GB-seconds": images * PREDICT_MS / 1000 * PREDICT_MEMORY_MB / 1024 * LAMBDA_GB_SECOND,
        "DynamoDB writes": images * RECORD_WRITE_UNITS * DYNAMODB_WRITE_UNIT,
    }
    return {"job": job, "predict": predict}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000, help="images in the timed job")
    parser.add_argument("--quick", action="store_true", help="1 and 2 workers at 250 images per chunk only")
    options = parser.parse_args(argv)
    sys.path.insert(0, str(REPO / "layers" / "classifier"))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO / "layers" / "classifier"), str(REPO), os.environ.get("PYTHONPATH")])
    )
    from tests.conftest import data_dir

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto server's access log

    test_zip = data_dir() / "cifar10-test.zip"
    settings = SETTINGS[:2] if options.quick else SETTINGS
    print(f"\n== Batch jobs: {options.images:,} CIFAR-10 test images through the local API ==")
    print("workers  chunk  end to end  images/s  first result (warm / cold)  upload")
    rows = []
    for workers, chunk in settings:
        row = measure(test_zip, options.images, workers, chunk)
        rows.append(row)
        print(
            f"{workers:>7}  {chunk:>5}  {row['end_to_end_s']:>8.1f} s  {row['images'] / row['end_to_end_s']:>8.0f}"
            f"  {row['first_result_s']:>10.2f} s / {row['cold_first_result_s']:.2f} s  {row['upload_s']:>8.2f} s"
        )
    one = next(row for row in rows if row["workers"] == 1)
    per_image_s = (one["running_s"] or one["end_to_end_s"]) / one["images"]
    print(f"worker time per image (1 worker, chunk 250): {per_image_s * 1000:.2f} ms")
    from infra.template import Template

    template = Template(REPO / "template.yaml")
    memory = int(template.parameters["BatchJobMemory"])
    chunk = int(template.parameters["BatchJobChunkImages"])
    (mapping,) = [t for t in template.sqs_triggers if t.function_id == "BatchJobWorkerFunction"]
    cost = costs_per_million(per_image_s, memory, chunk, mapping.batch_size, job_images=100_000)
    print(
        f"\n== Cost per million images, AWS list prices (us-east-1), jobs of 100,000, {memory} MB, chunk {chunk} =="
    )
    for way, parts in (("batch job", cost["job"]), ("POST /predict", cost["predict"])):
        detail = ", ".join(f"{name} ${value:.4f}" for name, value in parts.items())
        print(f"{way:>14}: ${sum(parts.values()):.2f}  ({detail})")
    print(json.dumps({"rows": rows, "per_image_ms": per_image_s * 1000, "cost": cost}, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
