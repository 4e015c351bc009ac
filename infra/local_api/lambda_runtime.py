"""Lambda, locally: every function runs in worker processes of its own (``infra.local_api.sandbox``),
one event at a time per worker, as in Lambda's sandboxes. API routes, the Lambda Invoke API
(``RequestResponse`` and ``Event``) and S3 notifications all go through the same per-function
pools, so functions share no process, module state or environment with each other or with the
server. This module holds ``LocalLambda`` (the pools and the limits each kind of caller waits
under), a minimal Lambda Invoke API that boto3 reaches through ``AWS_ENDPOINT_URL_LAMBDA``, an S3
poller that stands in for bucket notifications, SQS event source mappings, and what a worker needs to run a handler
(``load_handler``, ``LambdaContext``).

Function code needs no local mode: ``boto3.client("lambda").invoke(FunctionName=...,
InvocationType="Event")`` lands here because the local API sets ``AWS_ENDPOINT_URL_LAMBDA``.
"""

import importlib.util
import json
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3

from infra import events
from infra.local_api.sandbox import (
    IDLE_S,
    REPO_ROOT,
    FunctionError,
    FunctionThrottledError,
    FunctionTimeoutError,
    Sandbox,
    SandboxPool,
)
from infra.template import Function, Template

__all__ = [
    "FunctionError",
    "FunctionThrottledError",
    "FunctionTimeoutError",
    "LambdaContext",
    "LambdaInvokeApi",
    "LocalLambda",
    "S3Notifications",
    "SqsPoller",
    "load_handler",
]

logger = logging.getLogger("local_api.lambda")

WORKER_GRACE_S = 2.0  # a worker gets this long past its Timeout to write its result before it is killed
DEFAULT_CONCURRENCY = 4  # workers per function where the template reserves no concurrency
QUEUE_WAIT_S = 10.0  # how long a synchronous caller waits for a busy function's free worker
# Between the tries of a failed asynchronous event: Lambda waits about a minute, then about two
ASYNC_RETRY_DELAYS_S = (60.0, 120.0)
# Local stand-ins for what Lambda itself provides; X-Ray has no daemon here.
LAMBDA_ENVIRONMENT = {
    "POWERTOOLS_TRACE_DISABLED": "true",
    "AWS_LAMBDA_LOG_LEVEL": "INFO",
    "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
    "PYTHONUNBUFFERED": "1",  # the handler's logs reach the terminal as they are written
}


class LambdaContext:
    """The context object Lambda passes to a handler, with a real ``get_remaining_time_in_millis``
    (counting down ``timeout_s``, the function's ``Timeout`` unless the caller's limit is shorter)."""

    def __init__(
        self, function: Function, region: str, request_id: str | None = None, timeout_s: float | None = None
    ):
        self.function_name = function.logical_id
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:123456789012:function:{function.logical_id}"
        self.memory_limit_in_mb = function.memory_mb
        self.aws_request_id = request_id or str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function.logical_id}"
        self.log_stream_name = f"local/[$LATEST]{uuid.uuid4().hex}"
        self._deadline = time.monotonic() + (function.timeout_s if timeout_s is None else timeout_s)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def sandbox_environment(function: Function, base: dict[str, str]) -> dict[str, str]:
    """A worker's environment: the server's (endpoints, credentials, region), Lambda's stand-ins,
    then the function's own variables (template Globals and its ``Environment``), with the
    repository on ``PYTHONPATH`` so the worker module imports from any directory."""
    environment = {**base, **LAMBDA_ENVIRONMENT, **function.environment}
    paths = [str(REPO_ROOT), *filter(None, environment.get("PYTHONPATH", "").split(os.pathsep))]
    environment["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return environment


_import_lock = threading.Lock()


@contextmanager
def _own_environment(function: Function):
    """The function's own variables while its module imports (Powertools reads some at import)."""
    saved = {key: os.environ.get(key) for key in function.environment}
    os.environ.update(function.environment)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def load_handler(function: Function) -> Callable[[dict, Any], Any]:
    """Import the handler's module from its file (as Lambda does from /var/task) and return it.

    The code folder and the function's layer folders join ``sys.path`` (at the end), the way
    Lambda puts /var/task and /opt/python there."""
    name = f"local_lambda.{function.logical_id}"
    with _import_lock:
        module = sys.modules.get(name)
        if module is None:
            for folder in (function.code_dir, *(layer / "python" for layer in function.layer_dirs)):
                if folder.is_dir() and str(folder) not in sys.path:
                    sys.path.append(str(folder))
            for layer in function.layer_dirs:  # an unbuilt layer: the package sits at its root
                if str(layer) not in sys.path:
                    sys.path.append(str(layer))
            spec = importlib.util.spec_from_file_location(name, function.module_file)
            if spec is None or spec.loader is None:
                raise FileNotFoundError(f"{function.logical_id}: no handler module at {function.module_file}")
            module = importlib.util.module_from_spec(spec)
            with _own_environment(function):
                spec.loader.exec_module(module)
            sys.modules[name] = module
    return getattr(module, function.handler_name)


def error_payload(error: BaseException) -> dict[str, Any]:
    return {
        "errorMessage": str(error),
        "errorType": type(error).__name__,
        "stackTrace": traceback.format_exception(error),
    }


def _mapping_concurrency(template: Template, function_id: str) -> int | None:
    """A function fed by SQS event source mappings runs at most the sum of their
    ``MaximumConcurrency`` at once (None when none sets one)."""
    limits = [t.max_concurrency for t in template.sqs_triggers if t.function_id == function_id]
    return sum(limits) if limits and all(limits) else None


class LocalLambda:
    """Runs the template's functions, each in a pool of worker processes of its own.

    A pool grows on demand up to the function's ``ReservedConcurrentExecutions``, else
    ``default_concurrency``; each new worker is a cold start, an idle one is reused warm."""

    def __init__(
        self,
        template: Template,
        region: str,
        parameters: dict[str, str] | None = None,
        *,
        default_concurrency: int = DEFAULT_CONCURRENCY,
        queue_wait_s: float = QUEUE_WAIT_S,
        keep_warm: Iterable[str] = (),
        idle_s: float | None = IDLE_S,
        async_retry_delays_s: tuple[float, ...] = ASYNC_RETRY_DELAYS_S,
    ):
        self.template = template
        self.region = region
        self.parameters = dict(parameters or {})
        self.queue_wait_s = queue_wait_s
        self.async_retry_delays_s = async_retry_delays_s
        self._closing = threading.Event()  # ends the waits between an asynchronous event's tries
        warm = set(keep_warm)
        self.pools = {
            function_id: SandboxPool(
                function,
                function.reserved_concurrency
                or _mapping_concurrency(template, function_id)
                or default_concurrency,
                self._starter(function),
                keep_warm=1 if function_id in warm else 0,
                idle_s=idle_s,
            )
            for function_id, function in template.functions.items()
        }

    def _starter(self, function: Function) -> Callable[[], Sandbox]:
        # The server's environment as it is when the worker starts: the endpoints are set by then.
        return lambda: Sandbox(function, self.region, sandbox_environment(function, dict(os.environ)))

    def prewarm(self, function_ids: Iterable[str], timeout_s: float = 60.0) -> None:
        """One warm worker for each of ``function_ids``, started side by side; returns when all are
        ready (or failed, which is logged: their requests get the function's error)."""
        deadline = time.monotonic() + timeout_s
        threads = [
            threading.Thread(
                target=self.pools[function_id].prewarm, args=(deadline,), name=f"prewarm-{function_id}"
            )
            for function_id in dict.fromkeys(function_ids)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    # ---- API routes

    def invoke(self, function_id: str, event: dict, timeout_s: float) -> Any:
        """The handler's result within the caller's ``timeout_s`` (the integration timeout: queue
        and cold start included), the function's own ``Timeout`` applying to the handler.

        Raises ``FunctionError``, ``FunctionTimeoutError`` (the worker is killed) or
        ``FunctionThrottledError`` (no free worker within the queue bound)."""
        now = time.monotonic()
        deadline = now + timeout_s
        return self.pools[function_id].run(
            event,
            wait_until=min(deadline, now + self.queue_wait_s),
            deadline=deadline,
            limit_s=self.template.functions[function_id].timeout_s,
        )

    # ---- the Lambda Invoke API, S3 notifications

    def invoke_sync(self, function_id: str, payload: dict) -> Any:
        """Lambda's ``RequestResponse``: the result, or ``FunctionError`` / ``FunctionTimeoutError``
        / ``FunctionThrottledError``. A cold start counts against the function's ``Timeout``."""
        return self._run_to_timeout(function_id, payload, wait_s=self.queue_wait_s)

    def invoke_sync_waiting(self, function_id: str, payload: dict) -> Any:
        """``invoke_sync``, waiting as long as it takes for a free worker (an event source mapping's
        poller holds its batch until the function has room)."""
        return self._run_to_timeout(function_id, payload, wait_s=None)

    def invoke_async(self, function_id: str, payload: dict) -> None:
        """Lambda's ``InvocationType="Event"``: queued (as long as it takes for a free worker, as
        Lambda's event queue holds events for a function at its concurrency limit), then run."""
        threading.Thread(
            target=self._run_in_background,
            args=(function_id, payload),
            name=f"async-{function_id}",
            daemon=True,
        ).start()

    def _run_in_background(self, function_id: str, payload: dict) -> None:
        """Lambda's handling of an asynchronous event: the function's ``async_retries`` more tries
        after a failure, ``async_retry_delays_s`` apart (Lambda waits about 1, then 2 minutes), one
        request id across them; then the event, unchanged, to the function's dead-letter queue with
        Lambda's ``RequestID``, ``ErrorCode`` and ``ErrorMessage`` attributes."""
        function = self.template.functions[function_id]
        request_id = str(uuid.uuid4())
        error = ""
        for attempt in range(function.async_retries + 1):
            if attempt:
                delays = self.async_retry_delays_s or (0.0,)
                if self._closing.wait(delays[min(attempt, len(delays)) - 1]):
                    return
            try:
                self._run_to_timeout(function_id, payload, wait_s=None, request_id=request_id)
                return
            except FunctionError as failure:  # logged by the pool
                error = f"{failure.payload.get('errorType', 'Error')}: {failure}"
            except FunctionTimeoutError:
                error = f"Task timed out after {function.timeout_s:.2f} seconds"
        if function.dead_letter_queue is None or self._closing.is_set():
            return
        sqs = boto3.client("sqs", region_name=self.region)
        sqs.send_message(
            QueueUrl=sqs.get_queue_url(QueueName=function.dead_letter_queue)["QueueUrl"],
            MessageBody=json.dumps(payload),
            MessageAttributes={
                "RequestID": {"DataType": "String", "StringValue": request_id},
                "ErrorCode": {"DataType": "Number", "StringValue": "200"},  # a function error's status
                "ErrorMessage": {
                    "DataType": "String",
                    "StringValue": error.encode()[:1024].decode(errors="ignore"),
                },
            },
        )
        logger.error(
            "%s: the event failed on each of its %d tries; sent to %s",
            function_id,
            function.async_retries + 1,
            function.dead_letter_queue,
        )

    def _run_to_timeout(
        self, function_id: str, payload: dict, wait_s: float | None, request_id: str | None = None
    ) -> Any:
        function = self.template.functions[function_id]
        try:
            return self.pools[function_id].run(
                payload,
                wait_until=None if wait_s is None else time.monotonic() + wait_s,
                deadline=None,  # from when a worker is free: a cold start, then the handler's own limit
                limit_s=function.timeout_s,
                grace_s=WORKER_GRACE_S,
                request_id=request_id,
            )
        except FunctionTimeoutError:
            logger.error("%s: Task timed out after %.2f seconds", function_id, function.timeout_s)
            raise

    def close(self) -> None:
        """Stop every worker of every function, and the retries of asynchronous events."""
        self._closing.set()
        for pool in self.pools.values():
            pool.close()


class _InvokeApiHandler(BaseHTTPRequestHandler):
    """``POST /2015-03-31/functions/{name}/invocations``: Lambda's Invoke, enough for boto3."""

    protocol_version = "HTTP/1.1"
    server: "LambdaInvokeApi"

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if len(parts) != 4 or parts[1] != "functions" or parts[3] != "invocations":
            return self._reply(
                404, {"Type": "User", "Message": f"Unknown operation {self.path}"}, "UnknownOperation"
            )
        runtime = self.server.runtime
        function = runtime.template.function_by_name(parts[2].replace("%3A", ":"))
        if function is None:
            message = f"Function not found: {parts[2]}"
            return self._reply(404, {"Type": "User", "Message": message}, "ResourceNotFoundException")
        payload = json.loads(body or b"{}")
        invocation_type = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if invocation_type == "DryRun":
            return self._reply(204, None)
        if invocation_type == "Event":
            runtime.invoke_async(function.logical_id, payload)
            return self._reply(202, None)
        try:
            return self._reply(200, runtime.invoke_sync(function.logical_id, payload))
        except FunctionThrottledError as error:
            reason = "ReservedFunctionConcurrentInvocationLimitExceeded"
            body = {"Type": "User", "message": str(error), "Reason": reason}
            return self._reply(429, body, "TooManyRequestsException")
        except FunctionError as error:
            return self._reply(200, error.payload, function_error="Unhandled")
        except FunctionTimeoutError as error:
            return self._reply(
                200, {"errorMessage": str(error), "errorType": "Sandbox.Timedout"}, function_error="Unhandled"
            )

    def _reply(
        self, status: int, payload: Any, error_type: str | None = None, function_error: str | None = None
    ):
        body = b"" if payload is None else json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Amz-Executed-Version", "$LATEST")
        if error_type:
            self.send_header("x-amzn-ErrorType", error_type)
        if function_error:
            self.send_header("X-Amz-Function-Error", function_error)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
        logger.debug("lambda invoke api: " + format, *args)


class LambdaInvokeApi(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # a burst of invocations waits in the backlog instead of being reset

    def __init__(self, runtime: LocalLambda, host: str = "127.0.0.1", port: int = 0):
        super().__init__((host, port), _InvokeApiHandler)
        self.runtime = runtime

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class Schedules:
    """Scheduled functions (``Schedule`` events) invoked asynchronously every ``interval_s``, through
    their pools: the template's own rate (an hour for the monitor) is too slow to see locally."""

    def __init__(self, runtime: LocalLambda, interval_s: float):
        self.runtime = runtime
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not self.runtime.template.scheduled_functions or self.interval_s <= 0:
            return
        self._thread = threading.Thread(target=self._loop, name="schedules", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            for function_id in self.runtime.template.scheduled_functions:
                self.runtime.invoke_async(
                    function_id, events.scheduled_event(function_id, self.runtime.region)
                )

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


class S3Notifications:
    """Bucket notifications by polling: a new or changed object under a trigger's prefix (and
    suffix) invokes the trigger's function asynchronously (through its pool) with an S3 event."""

    def __init__(self, runtime: LocalLambda, interval_s: float = 1.0):
        self.runtime = runtime
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: dict[tuple[str, str], str] = {}

    def start(self) -> None:
        triggers = self.runtime.template.s3_triggers
        if not triggers:
            return
        self._client = boto3.client("s3")
        self._scan(notify=False)  # what is already there is not news
        self._thread = threading.Thread(target=self._loop, name="s3-notifications", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._scan(notify=True)
            except Exception:  # a failed poll is retried on the next tick; the server keeps serving
                logger.exception("polling S3 for notifications failed")

    def _scan(self, notify: bool) -> None:
        for trigger in self.runtime.template.s3_triggers:
            if not any(name.startswith("s3:ObjectCreated") for name in trigger.events):
                continue
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=trigger.bucket, Prefix=trigger.prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    key, etag = item["Key"], item["ETag"]
                    if not key.endswith(trigger.suffix) or self._seen.get((trigger.bucket, key)) == etag:
                        continue
                    self._seen[(trigger.bucket, key)] = etag
                    if notify:
                        found = dict(
                            bucket=trigger.bucket,
                            key=key,
                            size=item["Size"],
                            etag=etag,
                            region=self.runtime.region,
                        )
                        if trigger.kind == "eventbridge":
                            event = events.s3_eventbridge_event(**found)
                        else:
                            event = events.s3_event(**found, event_name="ObjectCreated:Put")
                        self.runtime.invoke_async(trigger.function_id, event)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


class SqsPoller:
    """SQS event source mappings: for each ``SQS`` event of the template, ``MaximumConcurrency``
    threads (one when unset) that each receive up to ``BatchSize`` messages, invoke the function
    through its pool with an SQS event and wait for it, as Lambda's pollers do.

    Messages of a successful invocation are deleted, except those it names in
    ``batchItemFailures`` (with ``ReportBatchItemFailures``); a failed, timed-out or killed
    invocation deletes none. What is not deleted comes back after the visibility timeout, and the
    queue's redrive policy (moto implements it on receive) moves a message received
    ``maxReceiveCount`` times to its dead-letter queue."""

    def __init__(self, runtime: LocalLambda, *, visibility_timeout_s: float | None = None, wait_s: int = 1):
        self.runtime = runtime
        self.visibility_timeout_s = visibility_timeout_s
        self.wait_s = wait_s
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.invocations = 0

    def start(self) -> None:
        triggers = self.runtime.template.sqs_triggers
        if not triggers:
            return
        self._client = boto3.client("sqs")
        for trigger in triggers:
            url = self._client.get_queue_url(QueueName=trigger.queue)["QueueUrl"]
            arn = f"arn:aws:sqs:{self.runtime.region}:123456789012:{trigger.queue}"
            for number in range(trigger.max_concurrency or 1):
                thread = threading.Thread(
                    target=self._loop,
                    args=(trigger, url, arn),
                    name=f"sqs-{trigger.function_id}-{number}",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)

    def _loop(self, trigger, url: str, arn: str) -> None:
        while not self._stop.is_set():
            try:
                self._poll_once(trigger, url, arn)
            except Exception:  # a failed poll is retried; the server keeps serving
                if not self._stop.is_set():
                    logger.exception("polling SQS for %s failed", trigger.function_id)
                    self._stop.wait(1.0)

    def _poll_once(self, trigger, url: str, arn: str) -> None:
        options: dict[str, Any] = {}
        if self.visibility_timeout_s is not None:
            options["VisibilityTimeout"] = max(0, round(self.visibility_timeout_s))
        messages = self._client.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=min(trigger.batch_size, 10),
            WaitTimeSeconds=self.wait_s,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            **options,
        ).get("Messages", [])
        if not messages or self._stop.is_set():
            return
        event = events.sqs_event(messages, queue_arn=arn, region=self.runtime.region)
        self.invocations += 1
        try:
            result = self.runtime.invoke_sync_waiting(trigger.function_id, event)
        except (FunctionError, FunctionTimeoutError, FunctionThrottledError):
            return  # every message comes back after its visibility timeout
        failed = set()
        if trigger.report_batch_item_failures and isinstance(result, dict):
            failed = {item.get("itemIdentifier") for item in result.get("batchItemFailures") or []}
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            self._client.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(done[start : start + 10])
                ],
            )

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
