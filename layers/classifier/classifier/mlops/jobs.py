"""Retraining jobs in DynamoDB (``JOBS_TABLE``, HASH key ``job_id``), with the one-job-at-a-time lock.

A job item: job_id, status (queued | running | succeeded | rejected | failed), mode (finetune |
scratch), epochs and budget_seconds asked for, progress (epoch, epochs, loss, accuracy,
seconds_left), invocations, and at the end the resulting version, its metrics and the gate's
decision, or the failure's reason.

The lock is the item ``job_id = "LOCK"`` naming the active job. Creating a job writes the job and
the lock in one transaction that fails if a lock exists, so two concurrent POST /retrain give one
job and one 409. Finishing a job (success, rejection or failure) deletes the lock in the same
transaction. A lock whose heartbeat is older than ``STALE_LOCK_SECONDS`` (its job crashed without
running its own failure path, e.g. out of memory) can be taken over.
"""

import json
import time
import uuid
from typing import Any

from botocore.exceptions import ClientError

from classifier.aws.codec import from_dynamo, to_dynamo
from classifier.clock import utc_timestamp
from classifier.errors import ConflictError, RequestShapeError, ResourceNotFoundError

LOCK_ID = "LOCK"
STALE_LOCK_SECONDS = 1800  # two retrain invocations (900 s each) without a heartbeat
MODES = ("finetune", "scratch")
MAX_EPOCHS = 200
MAX_BUDGET_SECONDS = 4 * 3600  # over all invocations of one job
ACTIVE = ("queued", "running")


def parse_request(body: Any) -> dict:
    """Validate a POST /retrain body: {"mode", "epochs", "budget_seconds", "max_images"}, all optional."""
    body = {} if body is None else body
    if not isinstance(body, dict):
        raise RequestShapeError('The body must be a JSON object such as {"mode": "finetune", "epochs": 5}.')
    unknown = set(body) - {"mode", "epochs", "budget_seconds", "max_images"}
    if unknown:
        raise RequestShapeError(
            f"Unknown fields {sorted(unknown)}; allowed: mode, epochs, budget_seconds, max_images."
        )
    mode = body.get("mode", "finetune")
    if mode not in MODES:
        raise RequestShapeError(f"mode must be one of {MODES}, not {mode!r}.")
    request = {"mode": mode}
    for name, maximum in (
        ("epochs", MAX_EPOCHS),
        ("budget_seconds", MAX_BUDGET_SECONDS),
        ("max_images", 10**6),
    ):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= maximum:
            raise RequestShapeError(f"{name} must be a whole number from 1 to {maximum}, not {value!r}.")
        request[name] = value
    return request


def create_job(table: Any, request: dict, now: float | None = None) -> dict:
    """Record a queued job and take the lock atomically; ConflictError (409) while one is active."""
    now = time.time() if now is None else now
    job = {
        "job_id": uuid.uuid4().hex,
        "status": "queued",
        "created_at": utc_timestamp(now),
        "updated_at": utc_timestamp(now),
        "invocations": 0,
        **request,
    }
    lock = {"job_id": LOCK_ID, "active_job": job["job_id"], "heartbeat": int(now)}
    try:
        table.transact_write_items(
            TransactItems=[
                {"Put": {"Item": lock, "ConditionExpression": "attribute_not_exists(job_id)"}},
                {"Put": {"Item": to_dynamo(job)}},
            ]
        )
    except ClientError as error:
        if error.response["Error"]["Code"] != "TransactionCanceledException":
            raise
        active = table.get_item(Key={"job_id": LOCK_ID}, ConsistentRead=True).get("Item")
        if active and int(active["heartbeat"]) < now - STALE_LOCK_SECONDS and _release_stale(table, active):
            return create_job(table, request, now)
        holder = (active or {}).get("active_job", "?")
        raise ConflictError(
            f"Retraining job {holder} is still running; one job runs at a time. Follow it with GET /retrain/{holder}."
        ) from error
    return job


def start_job(table: Any, lambda_client: Any, function_name: str, request: dict) -> dict:
    """Record a job (:func:`create_job`) and invoke the retraining function on it asynchronously."""
    job = create_job(table, request)
    lambda_client.invoke(
        FunctionName=function_name,
        InvocationType="Event",
        Payload=json.dumps({"job_id": job["job_id"]}).encode(),
    )
    return job


def _release_stale(table: Any, lock: dict) -> bool:
    """Delete a stale lock if it is still the one read (another caller may have taken it over)."""
    try:
        table.delete_item(
            Key={"job_id": LOCK_ID},
            ConditionExpression="heartbeat = :seen AND active_job = :job",
            ExpressionAttributeValues={":seen": lock["heartbeat"], ":job": lock["active_job"]},
        )
    except ClientError as error:
        if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    update(
        table,
        lock["active_job"],
        status="failed",
        reason=f"stopped without a heartbeat for {STALE_LOCK_SECONDS} s (the function crashed or timed out)",
    )
    return True


def get_job(table: Any, job_id: str) -> dict:
    if job_id == LOCK_ID:
        raise ResourceNotFoundError(f"No retraining job {job_id!r}.")
    item = table.get_item(Key={"job_id": job_id}, ConsistentRead=True).get("Item")
    if item is None:
        raise ResourceNotFoundError(f"No retraining job {job_id!r}.")
    return from_dynamo(item)


def update(table: Any, job_id: str, **fields: Any) -> None:
    """Set fields on a job (progress, status) and refresh the lock's heartbeat."""
    fields["updated_at"] = utc_timestamp(time.time())
    names = {f"#{name}": name for name in fields}
    values = {f":{name}": to_dynamo(value) for name, value in fields.items()}
    table.update_item(
        Key={"job_id": job_id},
        UpdateExpression="SET " + ", ".join(f"#{name} = :{name}" for name in fields),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )
    try:
        table.update_item(
            Key={"job_id": LOCK_ID},
            UpdateExpression="SET heartbeat = :now",
            ConditionExpression="active_job = :job",
            ExpressionAttributeValues={":now": int(time.time()), ":job": job_id},
        )
    except ClientError as error:
        if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise  # no lock, or another job's: nothing to refresh


def finish(table: Any, job_id: str, status: str, **fields: Any) -> None:
    """Record the job's end (succeeded, rejected or failed) and free the lock."""
    update(table, job_id, status=status, finished_at=utc_timestamp(time.time()), **fields)
    try:
        table.delete_item(
            Key={"job_id": LOCK_ID},
            ConditionExpression="active_job = :job",
            ExpressionAttributeValues={":job": job_id},
        )
    except ClientError as error:
        if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise  # the lock already belongs to another job (taken over as stale): leave it
