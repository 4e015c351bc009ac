"""Lambda's execution environments, locally: one worker process per sandbox, one event at a time.

A ``Sandbox`` is a long-lived child process (``python -m infra.local_api.worker``) that imports
one function's handler once (the cold start) and then runs the events it is sent, one after the
other, keeping its module state between them (warm invocations), as a Lambda sandbox does. The
parent and the worker speak over two pipes of their own, one message per event and one per
result, each a 4-byte big-endian length and that many bytes of UTF-8 JSON; the handler's stdout
and stderr stay the server's, so its logging cannot corrupt the protocol.

A ``SandboxPool`` holds one function's sandboxes: it reuses an idle one (warm), starts a new one
(cold) while the function is under its concurrency limit, and otherwise makes the caller wait for
a free one up to a bound, after which the caller is throttled, as Lambda answers 429 when a
function's reserved concurrency is spent. A sandbox past its time limit is killed; one that dies
mid-event is discarded; either way the next event gets a fresh one. A sandbox idle for
``IDLE_S`` is stopped, as Lambda reclaims idle environments, except the ones the pool keeps warm.
"""

import json
import logging
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from infra.template import Function

logger = logging.getLogger("local_api.lambda")

REPO_ROOT = Path(__file__).resolve().parents[2]  # where ``infra`` imports from, for the workers
_HEADER = struct.Struct(">I")
_READ_CHUNK = 1 << 20
STOP_GRACE_S = 3.0  # a worker asked to stop gets this long before it is killed
# Lambda does not document how long an idle environment lives; it is minutes, so the local one is
# stopped after ten, which bounds how many idle workers a long ``make serve`` holds.
IDLE_S = 600.0


class FunctionError(Exception):
    """The function failed: its handler raised (Lambda's ``Unhandled``), it could not be imported,
    or its process died mid-event (``Runtime.ExitError``)."""

    def __init__(self, payload: dict[str, Any]):
        super().__init__(payload.get("errorMessage", "function error"))
        self.payload = payload


class FunctionTimeoutError(Exception):
    """The handler ran past its limit (the function's ``Timeout``, or the caller's)."""


class FunctionThrottledError(Exception):
    """Every sandbox the function may have is busy and none came free in time (Lambda's 429)."""

    def __init__(self, function_id: str, limit: int):
        super().__init__(
            f"{function_id}'s concurrency ({limit}) is exhausted: every worker is busy; retry later"
        )
        self.function_id = function_id
        self.limit = limit


class _WorkerGone(Exception):
    """The worker's pipe closed: the process exited or was killed."""


# ---- the wire format, shared with the worker


def write_message(fd: int, message: Any) -> None:
    """One message: its length, then its JSON (values JSON cannot hold are sent as text)."""
    data = json.dumps(message, default=str).encode("utf-8")
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def read_message(fd: int, deadline: float | None = None) -> Any:
    """The next message, waiting until ``deadline`` (``time.monotonic()``) when given.

    Raises ``TimeoutError`` at the deadline and ``EOFError`` when the other side has closed."""
    (length,) = _HEADER.unpack(_read_exact(fd, _HEADER.size, deadline))
    return json.loads(_read_exact(fd, length, deadline))


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes:
    chunks: list[bytes] = []
    while size > 0:
        if deadline is not None:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError
        chunk = os.read(fd, min(size, _READ_CHUNK))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def encode_function(function: Function) -> dict[str, Any]:
    """What the worker needs to know of its function, as JSON (it does not read the template)."""
    return {
        "logical_id": function.logical_id,
        "code_dir": str(function.code_dir),
        "handler": function.handler,
        "timeout_s": function.timeout_s,
        "memory_mb": function.memory_mb,
        "environment": function.environment,
        "layer_dirs": [str(path) for path in function.layer_dirs],
        "reserved_concurrency": function.reserved_concurrency,
    }


def decode_function(spec: Mapping[str, Any]) -> Function:
    return Function(
        **{**spec, "code_dir": Path(spec["code_dir"]), "layer_dirs": tuple(map(Path, spec["layer_dirs"]))}
    )


# ---- one sandbox


class Sandbox:
    """One worker process for one function, started cold; ``invoke`` runs one event in it."""

    def __init__(self, function: Function, region: str, environment: Mapping[str, str]):
        self.function = function
        self.ready = False
        self.init_ms: float | None = None
        self._started = time.monotonic()
        events_read, self._events = os.pipe()
        self._results, results_write = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "infra.local_api.worker", str(events_read), str(results_write)],
                env=dict(environment),
                stdin=subprocess.DEVNULL,
                pass_fds=(events_read, results_write),
                start_new_session=True,  # its own process group, killed as one
            )
        except BaseException:
            for fd in (self._events, self._results):
                os.close(fd)
            raise
        finally:
            os.close(events_read)
            os.close(results_write)
        try:
            write_message(self._events, {"function": encode_function(function), "region": region})
        except BrokenPipeError:
            pass  # the worker died at once: wait_ready reports how it exited

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self, deadline: float) -> None:
        """Wait for the handler's import (the cold start); at once when already warm.

        Raises ``FunctionError`` when the import fails or the worker dies, ``FunctionTimeoutError``
        at ``deadline``."""
        if self.ready:
            return
        try:
            message = read_message(self._results, deadline)
        except TimeoutError:
            raise FunctionTimeoutError(f"{self.function.logical_id}: cold start ran past its limit") from None
        except EOFError:
            raise FunctionError(self._exit_payload("during its cold start")) from None
        if "init_error" in message:
            raise FunctionError(message["init_error"])
        self.ready = True
        self.init_ms = (time.monotonic() - self._started) * 1000
        logger.info(
            "%s: cold start, worker %d ready in %.0f ms", self.function.logical_id, self.pid, self.init_ms
        )

    def invoke(self, event: Any, request_id: str, limit_s: float, grace_s: float = 0.0) -> dict[str, Any]:
        """``{"result": ...}`` or ``{"error": payload}`` from the handler, within ``limit_s`` (what
        its context counts down) and ``grace_s`` more to write its answer.

        Raises ``FunctionTimeoutError`` past the limit and ``FunctionError`` when the worker dies;
        the worker is unusable afterwards in both cases (the caller kills it)."""
        deadline = time.monotonic() + limit_s + grace_s
        try:
            write_message(self._events, {"event": event, "request_id": request_id, "timeout_s": limit_s})
            return read_message(self._results, deadline)
        except TimeoutError:
            raise FunctionTimeoutError(f"{self.function.logical_id} ran past {limit_s:.3g} s") from None
        except (EOFError, BrokenPipeError):
            raise FunctionError(self._exit_payload(f"RequestId: {request_id}")) from None

    def _exit_payload(self, when: str) -> dict[str, Any]:
        """Lambda's report of a runtime that exited: the exit status or the signal that ended it."""
        try:
            code = self.process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            code = None
        if code is not None and code < 0:
            try:
                reason = f"signal: {signal.Signals(-code).name.removeprefix('SIG').lower()}"
            except ValueError:
                reason = f"signal {-code}"
        else:
            reason = f"exit status {code}"
        message = f"{when} Error: Runtime exited with error: {reason}"
        logger.error("%s (worker %d): %s", self.function.logical_id, self.pid, message)
        return {"errorMessage": message, "errorType": "Runtime.ExitError"}

    def send_signal(self, kill: bool = True) -> None:
        """SIGKILL (or SIGTERM) to the worker's process group: what the handler started goes too."""
        try:
            os.killpg(self.pid, signal.SIGKILL if kill else signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass  # gone already

    def wait_exit(self) -> None:
        """Reap the process, killing it when it has not exited after a grace."""
        try:
            self.process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self.send_signal(kill=True)
            self.process.wait()

    def stop(self, kill: bool = True) -> None:
        """End the process and close the pipes. Only the sandbox's user calls it: a pipe closed
        under a thread still reading it could be reused for another file."""
        if self.alive:
            self.send_signal(kill)
        self.wait_exit()
        for fd in (self._events, self._results):
            try:
                os.close(fd)
            except OSError:
                pass  # closed already


# ---- one function's sandboxes


class SandboxPool:
    """Up to ``limit`` sandboxes of one function: warm ones reused (newest first), cold ones
    started on demand, callers over the limit queued for a bounded time, then throttled. Idle ones
    are stopped after ``idle_s`` (None: never), oldest first, down to ``keep_warm``."""

    def __init__(
        self,
        function: Function,
        limit: int,
        start_sandbox: Callable[[], Sandbox],
        keep_warm: int = 0,
        idle_s: float | None = IDLE_S,
    ):
        self.function = function
        self.limit = limit
        self.keep_warm = min(keep_warm, limit)
        self.idle_s = idle_s
        self.reclaimed = 0  # sandboxes stopped for being idle
        self.cold_starts = 0
        self._start_sandbox = start_sandbox
        self._idle: list[Sandbox] = []  # longest idle first
        self._idle_since: dict[Sandbox, float] = {}
        self._reaping = False
        self._closing = threading.Event()  # wakes the reaper, which sleeps apart from callers
        self._all: set[Sandbox] = set()
        self._size = 0  # sandboxes alive or starting, idle or busy
        self._warming = 0  # of those, starting for no caller (a replacement being pre-warmed)
        self._changed = threading.Condition()
        self._closed = False

    @property
    def busy(self) -> int:
        with self._changed:
            return self._size - len(self._idle)

    def pids(self) -> list[int]:
        with self._changed:
            return [sandbox.pid for sandbox in self._all]

    def busy_pids(self) -> list[int]:
        """Workers running an event now (warm, not idle): what a test kills to crash an invocation."""
        with self._changed:
            idle = set(self._idle)
            return [sandbox.pid for sandbox in self._all if sandbox.ready and sandbox not in idle]

    def run(
        self,
        event: Any,
        *,
        wait_until: float | None,
        deadline: float | None,
        limit_s: float,
        grace_s: float = 0.0,
        request_id: str | None = None,
    ) -> Any:
        """The handler's result for ``event`` in a sandbox of this pool.

        ``wait_until``: until when to wait for a free sandbox at the limit (None: as long as it
        takes, as Lambda's event queue holds asynchronous events), then ``FunctionThrottledError``.
        ``deadline``: when the caller stops waiting, cold start included (None: the cold start and
        then the handler get ``limit_s`` each). ``limit_s``: the handler's own limit, which its
        context counts down; ``grace_s``: how long past it the worker may still answer."""
        request_id = request_id or str(uuid.uuid4())
        sandbox = self._acquire(wait_until)
        reusable = False
        try:
            sandbox.wait_ready(time.monotonic() + limit_s + grace_s if deadline is None else deadline)
            if deadline is not None:
                limit_s = min(limit_s, max(0.0, deadline - time.monotonic() - grace_s))
            outcome = sandbox.invoke(event, request_id, limit_s, grace_s)
            reusable = True
        finally:
            self._release(sandbox, reusable)
        if "error" in outcome:
            logger.error("%s failed: %s", self.function.logical_id, outcome["error"].get("errorMessage"))
            raise FunctionError(outcome["error"])
        return outcome["result"]

    def prewarm(self, deadline: float) -> None:
        """Start one sandbox and leave it idle, when the pool has room (a failure is only logged:
        the requests that follow get the function's error as Lambda would give it)."""
        try:
            try:
                sandbox = self._acquire(wait_until=time.monotonic(), warming=True)
            except (FunctionThrottledError, FunctionError):
                return
            reusable = False
            try:
                sandbox.wait_ready(deadline)
                reusable = True
            except (FunctionError, FunctionTimeoutError) as error:
                logger.error("%s: pre-warming failed: %s", self.function.logical_id, error)
            finally:
                self._release(sandbox, reusable)
        finally:
            with self._changed:
                self._warming -= 1
                self._changed.notify_all()

    def _acquire(self, wait_until: float | None, warming: bool = False) -> Sandbox:
        """A sandbox for one event: an idle one, else a new one while under the limit, else wait
        until ``wait_until`` (``warming``: the caller pre-warms, and is counted as such). A
        sandbox pre-warming is no caller's: a call at the limit waits for it rather than being
        throttled, since on Lambda that call would have started the sandbox itself."""
        with self._changed:
            self._warming += warming
            while True:
                if self._closed:
                    raise FunctionError(
                        {"errorMessage": "the local API is shutting down", "errorType": "Shutdown"}
                    )
                while self._idle:
                    sandbox = self._idle.pop()
                    self._idle_since.pop(sandbox, None)
                    if sandbox.alive:
                        return sandbox
                    self._forget(sandbox)  # died while idle: Lambda would start another
                if self._size < self.limit:
                    self._size += 1
                    break
                remaining = None if wait_until is None else wait_until - time.monotonic()
                if remaining is not None and remaining <= 0:
                    if self._warming > 0 and not warming:
                        self._changed.wait()  # the pre-warm's end notifies, ready or failed
                        continue
                    raise FunctionThrottledError(self.function.logical_id, self.limit)
                self._changed.wait(remaining)
        return self._cold_start()

    def _cold_start(self) -> Sandbox:
        try:
            sandbox = self._start_sandbox()
        except BaseException as error:
            with self._changed:
                self._size -= 1
                self._changed.notify()
            if isinstance(error, OSError):  # no process (out of file descriptors, say): a 502
                raise FunctionError(
                    {"errorMessage": str(error), "errorType": "Runtime.StartError"}
                ) from error
            raise
        with self._changed:
            self.cold_starts += 1
            self._all.add(sandbox)
            closed = self._closed
        if closed:  # close() ran while it started: it must not outlive the pool
            self._release(sandbox, reusable=False)
            raise FunctionError({"errorMessage": "the local API is shutting down", "errorType": "Shutdown"})
        return sandbox

    def _forget(self, sandbox: Sandbox) -> None:
        """Drop a sandbox from the books (the lock is held)."""
        self._size -= 1
        self._all.discard(sandbox)
        self._changed.notify()

    def _release(self, sandbox: Sandbox, reusable: bool) -> None:
        with self._changed:
            if reusable and not self._closed and sandbox.alive:
                self._idle.append(sandbox)
                self._idle_since[sandbox] = time.monotonic()
                self._changed.notify()
                if self.idle_s is not None and not self._reaping:
                    self._reaping = True
                    threading.Thread(
                        target=self._reap, name=f"reap-{self.function.logical_id}", daemon=True
                    ).start()
                return
            self._forget(sandbox)
            # Only a worker that had started: one that failed its cold start would fail again, forever.
            replenish = sandbox.ready and not self._closed and self._size < self.keep_warm
        sandbox.stop()
        if replenish:  # a killed or crashed worker is replaced at once, so the next call is warm
            threading.Thread(
                target=self.prewarm,
                args=(time.monotonic() + max(self.function.timeout_s, 30.0),),
                name=f"prewarm-{self.function.logical_id}",
                daemon=True,
            ).start()

    def _reap(self) -> None:
        """Stop sandboxes idle for ``idle_s``, oldest first, keeping ``keep_warm`` alive; runs
        while any idle sandbox could be stopped, and is started again by the next release."""
        while True:
            with self._changed:
                now = time.monotonic()
                spare = max(0, self._size - self.keep_warm)
                stale = [s for s in self._idle if now - self._idle_since[s] >= self.idle_s][:spare]
                for sandbox in stale:
                    self._idle.remove(sandbox)
                    del self._idle_since[sandbox]
                    self._forget(sandbox)
                self.reclaimed += len(stale)
                if not stale:
                    if self._closed or not self._idle or spare == 0:
                        self._reaping = False
                        return
                    # a release never makes an earlier deadline, so sleep until the oldest one's
                    wait_s = min(self._idle_since[s] for s in self._idle) + self.idle_s - now
            if not stale:
                self._closing.wait(max(0.01, wait_s))
                continue
            for sandbox in stale:
                logger.info("%s: stopped a worker idle for %.0f s", self.function.logical_id, self.idle_s)
                sandbox.stop(kill=False)

    def close(self) -> None:
        """Stop every sandbox. Busy ones are signalled and reaped here; the thread using each
        closes its pipes when it sees the worker gone (its caller gets a ``FunctionError``)."""
        with self._changed:
            self._closed = True
            self._closing.set()
            idle, self._idle = self._idle, []
            self._idle_since.clear()
            busy = [sandbox for sandbox in self._all if sandbox not in idle]
            self._changed.notify_all()
        for sandbox in idle + busy:
            sandbox.send_signal(kill=False)
        for sandbox in idle:
            sandbox.stop(kill=False)
        for sandbox in busy:
            sandbox.wait_exit()
