"""Lambda, locally: the template's handlers called in process (API routes, with a timeout) or in a
background process (asynchronous invocations and S3 notifications, killed at the function's
``Timeout``), a minimal Lambda Invoke API that boto3 reaches through ``AWS_ENDPOINT_URL_LAMBDA``,
and an S3 poller that stands in for bucket notifications.

Function code needs no local mode: ``boto3.client("lambda").invoke(FunctionName=...,
InvocationType="Event")`` lands here because the local API sets ``AWS_ENDPOINT_URL_LAMBDA``.
"""

import importlib.util
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3

from infra import events
from infra.template import Function, Template

logger = logging.getLogger("local_api.lambda")

WORKER_GRACE_S = 2.0  # a worker gets this long past its Timeout to write its result before it is killed


class FunctionError(Exception):
    """The handler raised (Lambda's ``Unhandled`` function error)."""

    def __init__(self, payload: dict[str, Any]):
        super().__init__(payload.get("errorMessage", "function error"))
        self.payload = payload


class FunctionTimeoutError(Exception):
    """The handler ran past its limit (the function's ``Timeout``, or the caller's)."""


class LambdaContext:
    """The context object Lambda passes to a handler, with a real ``get_remaining_time_in_millis``."""

    def __init__(self, function: Function, region: str, request_id: str | None = None):
        self.function_name = function.logical_id
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:123456789012:function:{function.logical_id}"
        self.memory_limit_in_mb = function.memory_mb
        self.aws_request_id = request_id or str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function.logical_id}"
        self.log_stream_name = f"local/[$LATEST]{uuid.uuid4().hex}"
        self._deadline = time.monotonic() + function.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def function_environment(template: Template) -> dict[str, str]:
    """Every function's variables in one mapping (all handlers share this process's environment)."""
    environment: dict[str, str] = {}
    for function in template.functions.values():
        environment.update(function.environment)
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


class LocalLambda:
    """Runs the template's functions: in process for API routes, in worker processes otherwise."""

    def __init__(self, template: Template, region: str, parameters: dict[str, str] | None = None):
        self.template = template
        self.region = region
        self.parameters = dict(parameters or {})
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="lambda")
        self._workers: set[subprocess.Popen] = set()
        self._workers_lock = threading.Lock()
        self._closed = False

    # ---- in process (API routes)

    def invoke(self, function_id: str, event: dict, timeout_s: float) -> Any:
        """The handler's result, or ``FunctionError`` / ``FunctionTimeoutError``.

        A handler past ``timeout_s`` keeps running in its thread (a thread cannot be killed);
        the caller gets its answer on time, as API Gateway's caller does."""
        function = self.template.functions[function_id]
        limit = min(timeout_s, function.timeout_s)

        def call() -> Any:
            handler = load_handler(function)
            return handler(event, LambdaContext(function, self.region))

        future = self._pool.submit(call)
        try:
            return future.result(timeout=limit)
        except FutureTimeout as error:
            raise FunctionTimeoutError(f"{function_id} ran past {limit:g} s") from error
        except Exception as error:  # the function's own failure, reported as Lambda reports it
            logger.exception("%s raised", function_id)
            raise FunctionError(error_payload(error)) from error

    # ---- worker processes (asynchronous invocations, S3 notifications, Lambda Invoke API)

    def invoke_async(self, function_id: str, payload: dict) -> None:
        """Lambda's ``InvocationType="Event"``: run the function in a background process."""
        threading.Thread(
            target=self._run_in_background,
            args=(function_id, payload),
            name=f"async-{function_id}",
            daemon=True,
        ).start()

    def _run_in_background(self, function_id: str, payload: dict) -> None:
        try:
            self._run_worker(function_id, payload)
        except (FunctionError, FunctionTimeoutError):
            pass  # logged by _run_worker; Lambda would retry twice, the local API does not

    def invoke_sync(self, function_id: str, payload: dict) -> Any:
        """Lambda's ``RequestResponse`` in a worker process: the result, or ``FunctionError``."""
        return self._run_worker(function_id, payload)

    def _run_worker(self, function_id: str, payload: dict) -> Any:
        function = self.template.functions[function_id]
        with tempfile.TemporaryDirectory(prefix="local-lambda-") as folder:
            event_file, result_file = Path(folder, "event.json"), Path(folder, "result.json")
            event_file.write_text(json.dumps(payload), encoding="utf-8")
            command = [
                sys.executable, "-m", "infra.local_api.worker",
                str(self.template.path), function_id, str(event_file), str(result_file),
                json.dumps(self.parameters),
            ]  # fmt: skip
            with self._workers_lock:
                if self._closed:
                    raise FunctionError(
                        {"errorMessage": "the local API is shutting down", "errorType": "Shutdown"}
                    )
                process = subprocess.Popen(command, env=dict(os.environ))
                self._workers.add(process)
            try:
                process.wait(timeout=function.timeout_s + WORKER_GRACE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                logger.error("%s: Task timed out after %.2f seconds", function_id, function.timeout_s)
                raise FunctionTimeoutError(
                    f"{function_id} timed out after {function.timeout_s:g} s"
                ) from None
            finally:
                with self._workers_lock:
                    self._workers.discard(process)
            if not result_file.exists():
                raise FunctionError(
                    {"errorMessage": f"worker exited {process.returncode}", "errorType": "Runtime"}
                )
            outcome = json.loads(result_file.read_text(encoding="utf-8"))
        if "error" in outcome:
            logger.error("%s failed: %s", function_id, outcome["error"]["errorMessage"])
            raise FunctionError(outcome["error"])
        return outcome["result"]

    def close(self) -> None:
        with self._workers_lock:
            self._closed = True
            workers = list(self._workers)
        for process in workers:
            process.terminate()
        for process in workers:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
        self._pool.shutdown(wait=False, cancel_futures=True)


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

    def __init__(self, runtime: LocalLambda, host: str = "127.0.0.1", port: int = 0):
        super().__init__((host, port), _InvokeApiHandler)
        self.runtime = runtime

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class S3Notifications:
    """Bucket notifications by polling: a new or changed object under a trigger's prefix (and
    suffix) starts the trigger's function in a worker process with an S3 event."""

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
                        found = dict(bucket=trigger.bucket, key=key, size=item["Size"], etag=etag,
                                     region=self.runtime.region)
                        if trigger.kind == "eventbridge":
                            event = events.s3_eventbridge_event(**found)
                        else:
                            event = events.s3_event(**found, event_name="ObjectCreated:Put")
                        self.runtime.invoke_async(trigger.function_id, event)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
