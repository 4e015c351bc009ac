"""Asynchronous batch jobs (``POST /predict/jobs``): a zip of up to 100,000 images, or an operator's
S3 prefix, classified offline; the results land in S3 as JSON lines, CSV and a summary.

The path of a job, one function each (``template.yaml``, "Batch jobs"):

1. **create** (the jobs API): the job record, ``waiting_for_upload``, and a presigned POST for
   ``batch-jobs/<id>/upload.zip``; or, with ``source``, the split function invoked at once.
2. **split** (S3 "Object Created" through EventBridge, or that invocation): the zip's central
   directory is read with ranged GETs (:class:`~classifier.aws.S3RangeReader`, never the whole
   zip), each entry checked by the training-data zip rules (traversal, encryption, nested
   archives, sizes, compression ratio), and chunks of entries (name, offsets, sizes) sent to the
   queue. The record turns ``running`` with its totals before the first message is sent.
3. **run a chunk** (the workers, an SQS event source mapping): one ranged GET per span of
   consecutive entries, decoding and the model in batches (:mod:`classifier.api.inference`), one
   part file per chunk, ``batch-jobs/<id>/parts/<chunk:06d>.jsonl``: a redelivered chunk overwrites
   its own part, so no result is ever written twice. Then one conditional ``UpdateItem``: ``ADD
   chunks_done :1`` unless the chunk is already in ``done_chunks`` (a string set), so a
   redelivery is counted once. The worker whose update completes the count merges.
4. **dead letters**: a chunk that failed ``maxReceiveCount`` times lands in the dead-letter queue,
   whose consumer writes its part with an error line per image and counts it failed: the job
   still ends, ``failed``, with every image named once.
5. **a split that keeps failing**: an event the split function failed on every try (Lambda's two
   retries of an asynchronous invocation) lands in the split dead-letter queue, whose consumer
   ends the job ``failed`` with ``split_failed`` (:func:`fail_split`), unless a later split
   queued all its chunks: no job stays ``running`` or ``waiting_for_upload`` for want of a split.
6. **merge**: the parts in chunk order become ``results.jsonl``, ``results.csv`` and
   ``summary.json``; the record gets the summary and ``succeeded`` (or ``failed`` with the count of
   failed chunks).

A job's predictions are not written to the predictions table one by one: the job record and its
results in S3 are the record.
"""

import concurrent.futures
import csv
import io
import json
import struct
import time
import uuid
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from classifier import clock, storage
from classifier.api.inference import Classification, ImageInput, Rejected, classify
from classifier.api.model_provider import ServedModel
from classifier.aws import S3RangeReader
from classifier.aws.codec import from_dynamo, to_dynamo, to_json
from classifier.errors import (
    ClassifierError,
    ForbiddenError,
    InvalidParameterError,
    RequestShapeError,
    ResourceNotFoundError,
)
from classifier.labels import LABELS, NUM_CLASSES
from classifier.limits import (
    DEFAULT_JOB_CHUNK_IMAGES,
    DEFAULT_TOP_K,
    JOB_MODEL_BATCH,
    JOB_RESULT_LINK_SECONDS,
    MAX_IMAGE_BYTES,
    MAX_JOB_CHUNK_MESSAGE_BYTES,
    MAX_JOB_ENTRY_NAME_CHARS,
    MAX_JOB_IMAGES,
    MAX_JOB_NAME_CHARS,
    MAX_JOB_READ_BYTES,
    MAX_JOB_UNCOMPRESSED_BYTES,
    MAX_JOB_ZIP_BYTES,
    PRESIGNED_UPLOAD_SECONDS,
)
from classifier.payloads import decode_cursor, encode_cursor
from classifier.mlops.training_data import DAMAGED_ZIP_ERRORS, content_problem, entry_problem

WAITING = "waiting_for_upload"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
SPLIT_FAILED = "split_failed"  # the error code of a job whose split failed on every try
OWNER_INDEX = "ByOwner"  # (owner, created_at) on the batch jobs table: one caller's jobs, newest first
RESULTS_NAME = "results.jsonl"
CSV_NAME = "results.csv"
SUMMARY_NAME = "summary.json"
SEND_BATCH = 10  # SQS SendMessageBatch takes at most 10 messages
PREFIX_READERS = 8  # concurrent GETs of a prefix job's objects (latency bound, not CPU)
# Bytes of a local file header beyond the compressed data: the fixed 30, the name and the extra
# field (each at most 64 KiB). An entry whose span is larger than its data allows is refused.
_LOCAL_HEADER_SLACK = 30 + 2 * 65536
_CURSOR_KEYS = frozenset({"job_id", "owner", "created_at"})


# ---- the job record --------------------------------------------------------------------------


def parse_request(body: dict) -> dict:
    """``{"name"?, "top_k"?, "source"?}``: anything else is refused."""
    unknown = set(body) - {"name", "top_k", "source"}
    if unknown:
        raise RequestShapeError(f"Unknown fields {sorted(unknown)}; a job takes name, top_k and source.")
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or not 0 < len(name) <= MAX_JOB_NAME_CHARS):
        raise RequestShapeError(f"name must be a string of 1 to {MAX_JOB_NAME_CHARS} characters.")
    top_k = body.get("top_k", DEFAULT_TOP_K)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= NUM_CLASSES:
        raise InvalidParameterError(f"top_k must be an integer from 1 to {NUM_CLASSES}.")
    source = body.get("source")
    if source is not None and not isinstance(source, str):
        raise RequestShapeError('source must be a string: "s3://<bucket>/<prefix>/".')
    return {"name": name, "top_k": top_k, "source": source}


def parse_source(source: str, bucket: str) -> str:
    """The key prefix of an ``s3://<the artifacts bucket>/<prefix>/`` source; any other bucket is 400."""
    if not source.startswith("s3://"):
        raise RequestShapeError('source must be "s3://<bucket>/<prefix>/".')
    named, _, prefix = source.removeprefix("s3://").partition("/")
    if named != bucket:
        raise RequestShapeError(f"source must be in this service's bucket ({bucket}), not {named!r}.")
    if not prefix or ".." in prefix.split("/"):
        raise RequestShapeError("source needs a key prefix inside the bucket, without '..'.")
    return prefix


def create_job(
    table: Any,
    s3: Any,
    bucket: str,
    request: dict,
    *,
    owner: str,
    is_operator: bool,
    start_split: Callable[[str], None],
) -> dict:
    """A new job: a presigned upload for its zip, or (``source``, operators only) split at once."""
    job_id = uuid.uuid4().hex
    item: dict[str, Any] = {
        "job_id": job_id,
        "owner": owner,
        "created_at": clock.utc_now(),
        "top_k": request["top_k"],
        **({"name": request["name"]} if request["name"] else {}),
    }
    if request["source"] is not None:
        if not is_operator:
            raise ForbiddenError(
                "This API key may not read S3 prefixes: a job from a source needs an operator key."
            )
        prefix = parse_source(request["source"], bucket)
        item |= {"status": RUNNING, "source": {"kind": "prefix", "bucket": bucket, "prefix": prefix}}
        table.put_item(Item=to_dynamo(item))
        start_split(job_id)
        return {**job_view(item, s3, bucket)}
    key = storage.batch_job_key(job_id, storage.BATCH_JOB_UPLOAD_NAME)
    post = s3.generate_presigned_post(
        bucket,
        key,
        Conditions=[["content-length-range", 1, MAX_JOB_ZIP_BYTES]],
        ExpiresIn=PRESIGNED_UPLOAD_SECONDS,
    )
    item |= {"status": WAITING, "source": {"kind": "upload", "bucket": bucket, "key": key}}
    table.put_item(Item=to_dynamo(item))
    return {
        **job_view(item, s3, bucket),
        "upload": {
            "url": post["url"],
            "fields": post["fields"],
            "expires_in": PRESIGNED_UPLOAD_SECONDS,
            "max_bytes": MAX_JOB_ZIP_BYTES,
            "max_images": MAX_JOB_IMAGES,
            "layout": "a zip of images (JPEG, PNG, WebP, GIF, BMP); folders allowed",
        },
    }


def load_job(table: Any, job_id: str, *, owner: str | None = None) -> dict:
    """The stored item; with ``owner``, only that key id's (another's is "not found", like a missing one)."""
    item = table.get_item(Key={"job_id": job_id}, ConsistentRead=True).get("Item")
    if item is None or (owner is not None and item.get("owner") != owner):
        raise ResourceNotFoundError(f"No batch job {job_id!r}.")
    return item


def get_job(table: Any, s3: Any, bucket: str, job_id: str, *, owner: str | None = None) -> dict:
    return job_view(load_job(table, job_id, owner=owner), s3, bucket)


def list_jobs(table: Any, s3: Any, bucket: str, *, owner: str, limit: int, cursor: str | None) -> dict:
    """One page of the caller's jobs, newest first: one query of the owner index, never a scan."""
    query: dict[str, Any] = {
        "IndexName": OWNER_INDEX,
        "KeyConditionExpression": "#owner = :owner",
        "ExpressionAttributeNames": {"#owner": "owner"},
        "ExpressionAttributeValues": {":owner": owner},
        "ScanIndexForward": False,
        "Limit": limit,
    }
    if cursor:
        start = decode_cursor(cursor, (_CURSOR_KEYS,))
        if start.get("owner") != owner:  # a cursor of another caller's listing would leak
            raise InvalidParameterError("The cursor is not one this API returned for this listing.")
        query["ExclusiveStartKey"] = start
    page = table.query(**query)
    last = page.get("LastEvaluatedKey")
    return {
        "items": [job_view(item, s3, bucket, links=False) for item in page.get("Items", [])],
        "next_cursor": encode_cursor(last) if last else None,
    }


def _seconds(timestamp: str) -> float:
    return datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def job_view(item: dict, s3: Any, bucket: str, *, links: bool = True, now: float | None = None) -> dict:
    """What GET /predict/jobs/{id} answers: status, counts, rate, time left; at the end, the summary
    and presigned links to the results."""
    job = from_dynamo(
        {key: value for key, value in item.items() if key not in ("done_chunks", "failed_chunks")}
    )
    total = job.get("images_total")
    done, failed = int(job.get("images_done", 0)), int(job.get("images_failed", 0))
    view: dict[str, Any] = {
        "job_id": job["job_id"],
        "name": job.get("name"),
        "status": job["status"],
        "top_k": job.get("top_k"),
        "created_at": job["created_at"],
        "started_at": job.get("started_at"),
        "finished_at": job.get("finished_at"),
        "images": {
            "total": total,
            "done": done,
            "failed": failed,
            "pending": None if total is None else max(0, int(total) - done - failed),
        },
        "chunks": {
            "total": job.get("chunks_total"),
            "done": int(job.get("chunks_done", 0)),
            "failed": int(job.get("chunks_failed", 0)),
        },
        "images_per_second": None,
        "seconds_left": None,
    }
    if job.get("started_at"):
        end = (
            _seconds(job["finished_at"]) if job.get("finished_at") else (time.time() if now is None else now)
        )
        elapsed = max(end - _seconds(job["started_at"]), 1e-3)
        rate = (done + failed) / elapsed
        view["images_per_second"] = round(rate, 1)
        if job["status"] == RUNNING and total is not None and rate > 0:
            view["seconds_left"] = round(view["images"]["pending"] / rate, 1)
        elif job["status"] != RUNNING:
            view["seconds_left"] = 0
    if "error" in job:
        view["error"] = job["error"]
    if "summary" in job:
        view["summary"] = job["summary"]
    if links and job["status"] in (SUCCEEDED, FAILED) and "summary" in job:
        view["results"] = {
            name.split(".")[-1] if name != SUMMARY_NAME else "summary": s3.generate_presigned_url(
                "get_object",
                Params={"Bucket": bucket, "Key": storage.batch_job_key(job["job_id"], name)},
                ExpiresIn=JOB_RESULT_LINK_SECONDS,
            )
            for name in (RESULTS_NAME, CSV_NAME, SUMMARY_NAME)
        } | {"expires_in": JOB_RESULT_LINK_SECONDS}
    return view


def _end_failed(table: Any, job_id: str, code: str, message: str, *, unless: str) -> None:
    """End a waiting or running job ``failed`` with an error, unless its item has the attribute
    ``unless``; raises ConditionalCheckFailedException when the job is not one to end."""
    table.update_item(
        Key={"job_id": job_id},
        UpdateExpression=(
            "SET #status = :failed, #error = :error, finished_at = :now, "
            "started_at = if_not_exists(started_at, :now)"
        ),
        ConditionExpression=f"#status IN (:waiting, :running) AND attribute_not_exists({unless})",
        ExpressionAttributeNames={"#status": "status", "#error": "error"},
        ExpressionAttributeValues={
            ":failed": FAILED,
            ":waiting": WAITING,
            ":running": RUNNING,
            ":error": {"code": code, "message": message},
            ":now": clock.utc_now(),
        },
    )


def _refuse(table: Any, job_id: str, code: str, message: str) -> dict:
    """End a job before any chunk ran: the zip as a whole is refused."""
    _end_failed(table, job_id, code, message, unless="chunks_total")
    return {"job_id": job_id, "status": FAILED, "error": {"code": code, "message": message}}


# ---- splitting ---------------------------------------------------------------------------------


def zip_entries(reader: Any) -> list[dict]:
    """The entries of a zip (a seekable file), in the zip's order, each with the offsets a worker
    reads it by, or with the reason the training-data rules refuse it. Raises ``ClassifierError``
    (``upload_refused``) for a zip refused as a whole."""
    try:
        handle = zipfile.ZipFile(reader)
    except DAMAGED_ZIP_ERRORS as error:
        raise JobRefusedError("The upload is not a zip archive.") from error
    with handle:
        infos = [info for info in handle.infolist() if not info.filename.endswith("/")]
        end_of_entries = handle.start_dir
    if len(infos) > MAX_JOB_IMAGES:
        raise JobRefusedError(f"The zip has {len(infos):,} files; the limit is {MAX_JOB_IMAGES:,}.")
    declared = sum(info.file_size for info in infos)
    if declared > MAX_JOB_UNCOMPRESSED_BYTES:
        raise JobRefusedError(
            f"The zip would unpack to {declared:,} bytes; the limit is {MAX_JOB_UNCOMPRESSED_BYTES:,}."
        )
    # Where each entry's bytes end: the next local header in the file, or the central directory.
    offsets = sorted({info.header_offset for info in infos})
    following = dict(zip(offsets, [*offsets[1:], end_of_entries], strict=True))
    entries = []
    for index, info in enumerate(infos):
        entry: dict[str, Any] = {"i": index, "n": info.filename}
        end = following[info.header_offset]
        problem = entry_problem(info)
        if problem is None and len(info.filename) > MAX_JOB_ENTRY_NAME_CHARS:
            problem = f"a path over {MAX_JOB_ENTRY_NAME_CHARS} characters"
            entry["n"] = info.filename[:MAX_JOB_ENTRY_NAME_CHARS]
        if problem is None and (
            end <= info.header_offset or end - info.header_offset > info.compress_size + _LOCAL_HEADER_SLACK
        ):
            problem = "the entry's data does not match its directory record (overlapping or padded entries)"
        if problem is not None:
            entry["e"] = ["entry_refused", problem]
        else:
            entry |= {
                "o": info.header_offset,
                "z": end,
                "c": info.compress_size,
                "s": info.file_size,
                "m": info.compress_type,
                "f": info.flag_bits,
                "r": info.CRC,
            }
        entries.append(entry)
    return entries


def prefix_entries(s3: Any, bucket: str, prefix: str) -> list[dict]:
    """The objects under ``prefix`` in key order, each a job entry (folder markers skipped)."""
    entries: list[dict] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = item["Key"]
            if key.endswith("/"):
                continue
            if len(entries) >= MAX_JOB_IMAGES:
                raise JobRefusedError(f"More than {MAX_JOB_IMAGES:,} objects under {prefix}.")
            entry: dict[str, Any] = {"i": len(entries), "n": key[len(prefix) :].lstrip("/") or key, "k": key}
            if item["Size"] > MAX_IMAGE_BYTES:
                entry["e"] = ["entry_refused", f"over the {MAX_IMAGE_BYTES:,}-byte image limit"]
            entries.append(entry)
    return entries


class JobRefusedError(ClassifierError):
    """The job's input refused as a whole (not a zip, too many images, too large)."""

    code = "upload_refused"


def chunk_entries(entries: Sequence[dict], chunk_images: int) -> list[list[dict]]:
    """Consecutive runs of at most ``chunk_images`` entries, each small enough for one SQS message."""
    chunks: list[list[dict]] = []
    current: list[dict] = []
    size = 0
    for entry in entries:
        entry_size = len(json.dumps(entry, separators=(",", ":")))
        if current and (
            len(current) >= chunk_images or size + entry_size > MAX_JOB_CHUNK_MESSAGE_BYTES - 1024
        ):
            chunks.append(current)
            current, size = [], 0
        current.append(entry)
        size += entry_size + 1
    if current:
        chunks.append(current)
    return chunks


def split_job(
    table: Any,
    s3: Any,
    sqs: Any,
    queue_url: str,
    job_id: str,
    *,
    chunk_images: int = DEFAULT_JOB_CHUNK_IMAGES,
    etag: str | None = None,
) -> dict:
    """Read the job's input, mark it running with its totals, send its chunks. Safe to repeat (an
    S3 event delivered twice, a retried invocation): chunks are numbered by position, so a chunk
    sent twice is one part and one count."""
    item = load_job(table, job_id)
    if (
        item["status"] not in (WAITING, RUNNING)
        or "chunks_total" in item
        and item.get("chunks_done", 0) + item.get("chunks_failed", 0) >= item["chunks_total"]
    ):
        return {"job_id": job_id, "status": item["status"], "chunks": 0, "note": "already split"}
    source = item["source"]
    bucket = source["bucket"]
    try:
        if source["kind"] == "upload":
            reader = S3RangeReader(s3, bucket, source["key"], if_match=etag)
            if reader.size > MAX_JOB_ZIP_BYTES:
                raise JobRefusedError(f"The upload is over {MAX_JOB_ZIP_BYTES:,} bytes.")
            etag = reader.etag
            entries = zip_entries(io.BufferedReader(reader, buffer_size=1 << 16))
        else:
            entries = prefix_entries(s3, bucket, source["prefix"])
    except JobRefusedError as error:
        return _refuse(table, job_id, error.code, str(error))
    chunks = chunk_entries(entries, chunk_images)
    now = clock.utc_now()
    try:
        table.update_item(
            Key={"job_id": job_id},
            UpdateExpression=(
                "SET #status = :running, images_total = :images, chunks_total = :chunks, "
                "started_at = if_not_exists(started_at, :now), source_etag = :etag, "
                "chunks_done = if_not_exists(chunks_done, :zero), chunks_failed = if_not_exists(chunks_failed, :zero), "
                "images_done = if_not_exists(images_done, :zero), images_failed = if_not_exists(images_failed, :zero)"
            ),
            ConditionExpression=(
                "#status = :waiting OR (#status = :running AND (attribute_not_exists(source_etag) OR source_etag = :etag))"
            ),
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":running": RUNNING,
                ":waiting": WAITING,
                ":images": len(entries),
                ":chunks": len(chunks),
                ":now": now,
                ":etag": etag or "",
                ":zero": 0,
            },
        )
    except ClientError as error:
        if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        return {
            "job_id": job_id,
            "status": "ignored",
            "chunks": 0,
            "note": "the job's input changed or it ended",
        }
    if not chunks:
        finish_job(table, s3, bucket, load_job(table, job_id))
        return {"job_id": job_id, "status": SUCCEEDED, "chunks": 0, "images": 0}
    common = {"job_id": job_id, "top_k": int(item["top_k"]), "source": {**from_dynamo(source), "etag": etag}}
    messages = [
        {
            "Id": str(number),
            "MessageBody": json.dumps({**common, "chunk": number, "entries": chunk}, separators=(",", ":")),
        }
        for number, chunk in enumerate(chunks)
    ]
    for start in range(0, len(messages), SEND_BATCH):
        _send(sqs, queue_url, messages[start : start + SEND_BATCH])
    # every chunk is on the queue: from here a dead-lettered split event of this job is stale
    table.update_item(
        Key={"job_id": job_id},
        UpdateExpression="SET chunks_queued = :true",
        ConditionExpression="attribute_exists(job_id)",
        ExpressionAttributeValues={":true": True},
    )
    return {"job_id": job_id, "status": RUNNING, "chunks": len(chunks), "images": len(entries)}


def fail_split(table: Any, job_id: str, reason: str) -> dict:
    """End a job whose split failed on every try (the split dead-letter queue's consumer):
    ``failed``, with ``split_failed`` and the reason. A job that has ended, or whose chunks a later
    split queued, is left as it is. Chunks of a split that stopped half way are not counted after
    this (a chunk counts only on a running job); their parts stay in S3."""
    message = f"The job's input could not be split into chunks on any try: {reason}. Submit the job again."
    try:
        _end_failed(table, job_id, SPLIT_FAILED, message, unless="chunks_queued")
    except ClientError as error:
        if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        item = table.get_item(Key={"job_id": job_id}, ConsistentRead=True).get("Item")
        return {
            "job_id": job_id,
            "status": item["status"] if item else None,
            "note": "left as it is: it has ended, its chunks are queued, or it does not exist",
        }
    return {"job_id": job_id, "status": FAILED, "error": {"code": SPLIT_FAILED, "message": message}}


def _send(sqs: Any, queue_url: str, batch: list[dict]) -> None:
    for _ in range(5):
        failed = sqs.send_message_batch(QueueUrl=queue_url, Entries=batch).get("Failed", [])
        if not failed:
            return
        ids = {entry["Id"] for entry in failed}
        batch = [entry for entry in batch if entry["Id"] in ids]
        time.sleep(0.1)
    raise RuntimeError(f"{len(batch)} chunk messages were not sent: {failed}")


# ---- running a chunk -----------------------------------------------------------------------------


def _entry_bytes(blob: bytes, entry: dict) -> bytes:
    """One entry's uncompressed bytes (at most ``MAX_IMAGE_BYTES + 1``) from the bytes of its local
    header onwards, checked against its CRC by zipfile."""
    if len(blob) < zipfile.sizeFileHeader:
        raise zipfile.BadZipFile("truncated local header")
    header = struct.unpack(zipfile.structFileHeader, blob[: zipfile.sizeFileHeader])
    if header[zipfile._FH_SIGNATURE] != zipfile.stringFileHeader:
        raise zipfile.BadZipFile("bad local file header")
    start = (
        zipfile.sizeFileHeader + header[zipfile._FH_FILENAME_LENGTH] + header[zipfile._FH_EXTRA_FIELD_LENGTH]
    )
    info = zipfile.ZipInfo(entry["n"])
    info.compress_type, info.compress_size, info.file_size = entry["m"], entry["c"], entry["s"]
    info.flag_bits, info.CRC, info.header_offset = entry["f"], entry["r"], 0
    data = io.BytesIO(blob)
    data.seek(start)
    with zipfile.ZipExtFile(data, "r", info, None, False) as stream:
        return stream.read(MAX_IMAGE_BYTES + 1)


def read_zip_entries(s3: Any, source: dict, entries: Sequence[dict]) -> list[ImageInput | Rejected]:
    """Each entry's image, or why it cannot be read: one ranged GET per span of consecutive entries."""
    reader = S3RangeReader(
        s3,
        source["bucket"],
        source["key"],
        size=max((e.get("z", 0) for e in entries), default=0),
        if_match=source.get("etag") or None,
    )
    results: list[ImageInput | Rejected | None] = [None] * len(entries)
    spans: list[list[int]] = []
    for position, entry in enumerate(entries):
        if "e" in entry:
            results[position] = _rejected(entry["n"], *entry["e"])
            continue
        span = spans[-1] if spans else None
        if (
            span is not None
            and entries[span[-1]]["z"] == entry["o"]
            and entry["z"] - entries[span[0]]["o"] <= MAX_JOB_READ_BYTES
        ):
            span.append(position)
        else:
            spans.append([position])
    for span in spans:
        first = entries[span[0]]["o"]
        blob = reader.read_range(first, entries[span[-1]]["z"] - first)
        for position in span:
            entry = entries[position]
            try:
                data = _entry_bytes(blob[entry["o"] - first : entry["z"] - first], entry)
            except DAMAGED_ZIP_ERRORS as error:
                results[position] = _rejected(entry["n"], "damaged_entry", f"the entry is damaged: {error}")
                continue
            problem = content_problem(data)
            results[position] = (
                _rejected(entry["n"], "entry_refused", problem) if problem else ImageInput(data, entry["n"])
            )
    return [result for result in results if result is not None]


def read_prefix_entries(s3: Any, source: dict, entries: Sequence[dict]) -> list[ImageInput | Rejected]:
    def read(entry: dict) -> ImageInput | Rejected:
        if "e" in entry:
            return _rejected(entry["n"], *entry["e"])
        try:
            body = s3.get_object(Bucket=source["bucket"], Key=entry["k"])["Body"].read(MAX_IMAGE_BYTES + 1)
        except ClientError as error:
            return _rejected(entry["n"], "unreadable_object", str(error))
        problem = content_problem(body)
        return _rejected(entry["n"], "entry_refused", problem) if problem else ImageInput(body, entry["n"])

    with concurrent.futures.ThreadPoolExecutor(PREFIX_READERS) as pool:
        return list(pool.map(read, entries))


class _EntryError(ClassifierError):
    pass


def _rejected(name: str, code: str, message: str) -> Rejected:
    error = _EntryError(message)
    error.code = code
    return Rejected(name, error)


def result_line(result: Classification | Rejected, top_k: int) -> dict:
    """One line of ``results.jsonl`` (the parts also keep the ten probabilities, for the CSV)."""
    if isinstance(result, Rejected):
        return {"name": result.name, "error": {"code": result.error.code, "reason": str(result.error)}}
    return {
        "name": result.name,
        "label": result.label,
        "confidence": to_json(result.confidence),
        "top_k": [{"label": label, "probability": to_json(p)} for label, p in result.top_k(top_k)],
        "probabilities": [to_json(p) for p in result.probabilities],
    }


def run_chunk(
    message: dict,
    *,
    table: Any,
    s3: Any,
    model: ServedModel,
) -> dict:
    """Classify one chunk, write its part, count it once; merge if it was the last."""
    job_id, chunk, source = message["job_id"], int(message["chunk"]), message["source"]
    entries = message["entries"]
    items = (read_zip_entries if source["kind"] == "upload" else read_prefix_entries)(s3, source, entries)
    lines = []
    for start in range(0, len(items), JOB_MODEL_BATCH):
        batch = classify(items[start : start + JOB_MODEL_BATCH], model.predictor)
        lines += [result_line(result, int(message["top_k"])) for result in batch]
    write_part(s3, source["bucket"], job_id, chunk, lines)
    failed = sum("error" in line for line in lines)
    return count_chunk(
        table,
        s3,
        source["bucket"],
        job_id,
        chunk,
        done=len(lines) - failed,
        failed=failed,
        model_version=model.version,
    )


def write_part(s3: Any, bucket: str, job_id: str, chunk: int, lines: Iterable[dict]) -> None:
    body = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines).encode()
    s3.put_object(
        Bucket=bucket,
        Key=storage.batch_job_part_key(job_id, chunk),
        Body=body,
        ContentType="application/x-ndjson",
    )


def count_chunk(
    table: Any,
    s3: Any,
    bucket: str,
    job_id: str,
    chunk: int,
    *,
    done: int,
    failed: int,
    model_version: str | None = None,
    chunk_failed: bool = False,
) -> dict:
    """Count a chunk done (or failed) once, atomically; the update that completes the job merges.
    A chunk counted before (a redelivery) changes nothing, but still merges a complete job whose
    merge never happened (its worker died after counting)."""
    counter, chunk_set = (
        ("chunks_failed", "failed_chunks") if chunk_failed else ("chunks_done", "done_chunks")
    )
    values: dict[str, Any] = {
        ":one": 1,
        ":done": done,
        ":failed": failed,
        ":chunk": {str(chunk)},
        ":id": str(chunk),
        ":running": RUNNING,
    }
    update = f"ADD {counter} :one, {chunk_set} :chunk, images_done :done, images_failed :failed"
    if model_version:
        update += ", model_versions :version"
        values[":version"] = {model_version}
    try:
        item = table.update_item(
            Key={"job_id": job_id},
            UpdateExpression=update,
            ConditionExpression=(
                "#status = :running AND NOT contains(done_chunks, :id) AND NOT contains(failed_chunks, :id)"
            ),
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )["Attributes"]
        counted = True
    except ClientError as error:
        if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        item = load_job(table, job_id)
        counted = False
    outcome = {"job_id": job_id, "chunk": chunk, "counted": counted, "merged": False}
    if item["status"] == RUNNING and _complete(item):
        finish_job(table, s3, bucket, item)
        outcome["merged"] = True
    return outcome


def _complete(item: dict) -> bool:
    return "chunks_total" in item and int(item.get("chunks_done", 0)) + int(
        item.get("chunks_failed", 0)
    ) >= int(item["chunks_total"])


def fail_chunk(message: dict, reason: str, *, table: Any, s3: Any) -> dict:
    """A chunk that kept failing (the dead-letter queue's consumer): an error line per image in its
    part, counted failed; the job ends ``failed`` once every chunk is accounted for."""
    job_id, chunk, source = message["job_id"], int(message["chunk"]), message["source"]
    item = load_job(table, job_id)
    if str(chunk) in item.get("done_chunks", set()) or str(chunk) in item.get("failed_chunks", set()):
        return count_chunk(table, s3, source["bucket"], job_id, chunk, done=0, failed=0)
    entries = message["entries"]
    lines = [{"name": entry["n"], "error": {"code": "chunk_failed", "reason": reason}} for entry in entries]
    write_part(s3, source["bucket"], job_id, chunk, lines)
    return count_chunk(
        table, s3, source["bucket"], job_id, chunk, done=0, failed=len(lines), chunk_failed=True
    )


# ---- merging -------------------------------------------------------------------------------------


def finish_job(table: Any, s3: Any, bucket: str, item: dict) -> dict:
    """Merge the parts in chunk order into the results and the summary; end the job. Idempotent:
    the files are rewritten whole, and only a running job's record is changed."""
    job_id = item["job_id"]
    jsonl, rows = io.StringIO(), io.StringIO()
    table_writer = csv.writer(rows)
    table_writer.writerow(["name", "label", "confidence", *LABELS, "error"])
    labels: Counter[str] = Counter()
    rejections: Counter[str] = Counter()
    confidence_sum, classified, lines_total = 0.0, 0, 0
    for chunk in range(int(item.get("chunks_total", 0))):
        part = s3.get_object(Bucket=bucket, Key=storage.batch_job_part_key(job_id, chunk))["Body"].read()
        for raw in part.decode().splitlines():
            line = json.loads(raw)
            lines_total += 1
            probabilities = line.pop("probabilities", None)
            jsonl.write(json.dumps(line, separators=(",", ":")) + "\n")
            if "error" in line:
                rejections[line["error"]["code"]] += 1
                table_writer.writerow([line["name"], "", "", *[""] * NUM_CLASSES, line["error"]["code"]])
                continue
            labels[line["label"]] += 1
            confidence_sum += line["confidence"]
            classified += 1
            table_writer.writerow([line["name"], line["label"], line["confidence"], *probabilities, ""])
    chunks_failed = int(item.get("chunks_failed", 0))
    summary = {
        "images": lines_total,
        "classified": classified,
        "failed": lines_total - classified,
        "per_class": {label: labels.get(label, 0) for label in LABELS},
        "mean_confidence": round(confidence_sum / classified, 6) if classified else None,
        "rejections": dict(sorted(rejections.items())),
        "chunks_failed": chunks_failed,
        "model_versions": sorted(item.get("model_versions", set())),
    }
    for name, body, kind in (
        (RESULTS_NAME, jsonl.getvalue(), "application/x-ndjson"),
        (CSV_NAME, rows.getvalue(), "text/csv"),
        (SUMMARY_NAME, json.dumps({"job_id": job_id, **summary}, indent=1), "application/json"),
    ):
        s3.put_object(
            Bucket=bucket, Key=storage.batch_job_key(job_id, name), Body=body.encode(), ContentType=kind
        )
    status = FAILED if chunks_failed else SUCCEEDED
    try:
        table.update_item(
            Key={"job_id": job_id},
            UpdateExpression="SET #status = :status, finished_at = :now, summary = :summary",
            ConditionExpression="#status = :running",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":status": status,
                ":now": clock.utc_now(),
                ":summary": to_dynamo(summary),
                ":running": RUNNING,
            },
        )
    except ClientError as error:
        if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise  # another merge ended it first: the files it wrote are the same
    return {"job_id": job_id, "status": status, **summary}
