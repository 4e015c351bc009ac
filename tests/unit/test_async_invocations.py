"""The local emulator's asynchronous invocations, as Lambda handles them: a failed event is tried
again (the function's ``MaximumRetryAttempts``, 2 by default) under one request id, and then goes,
unchanged, to the function's dead-letter queue with Lambda's attributes. Stand-in sandboxes fail
on cue; the queues are moto's, made from ``template.yaml``."""

import json
import threading
import time

import pytest

from infra.local_api.lambda_runtime import LocalLambda
from infra.local_api.sandbox import SandboxPool
from tests.unit.conftest import REGION, TEMPLATE


class ScriptedSandbox:
    """Fails the first ``failures`` events it is given (a handler that raised), then answers."""

    def __init__(self, log: list, failures: float):
        self.log, self.failures = log, failures
        self.pid, self.alive, self.ready = 1, True, True

    def wait_ready(self, deadline: float) -> None:
        pass

    def invoke(self, event, request_id, limit_s, grace_s=0.0):
        self.log.append((request_id, event, time.monotonic()))
        if len(self.log) <= self.failures:
            return {"error": {"errorType": "ClientError", "errorMessage": "NoSuchKey: the upload is gone"}}
        return {"result": "split"}

    def send_signal(self, kill: bool = True) -> None:
        pass

    def stop(self, kill: bool = True) -> None:
        self.alive = False

    def wait_exit(self) -> None:
        self.alive = False


def runtime_with(function_id: str, failures: float, delays=(0.05, 0.1)) -> tuple[LocalLambda, list]:
    runtime = LocalLambda(TEMPLATE, REGION, async_retry_delays_s=delays)
    log: list = []
    runtime.pools[function_id] = SandboxPool(
        TEMPLATE.functions[function_id], 1, lambda: ScriptedSandbox(log, failures)
    )
    return runtime, log


def dead_letters(aws_sqs, queue: str, wait_s: float = 5.0) -> list[dict]:
    url = aws_sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        messages = aws_sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if messages:
            return messages
        time.sleep(0.05)
    return []


def until_tries(log: list, count: int, wait_s: float = 5.0) -> None:
    deadline = time.monotonic() + wait_s
    while len(log) < count and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.fixture
def sqs(aws):
    from classifier.aws import client

    return client("sqs")


def test_an_event_failing_every_try_is_tried_three_times_then_dead_lettered_unchanged(sqs):
    runtime, log = runtime_with("BatchJobSplitFunction", failures=float("inf"))
    event = {"job_id": "abc123"}
    try:
        runtime.invoke_async("BatchJobSplitFunction", event)
        (message,) = dead_letters(sqs, "BatchJobSplitDeadLetterQueue")
    finally:
        runtime.close()

    # three tries, one request id, the waits between them as configured
    assert [entry[1] for entry in log] == [event] * 3
    assert len({entry[0] for entry in log}) == 1
    gaps = [later[2] - earlier[2] for earlier, later in zip(log, log[1:])]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1

    # the event unchanged, with Lambda's attributes
    assert json.loads(message["Body"]) == event
    attributes = {name: value["StringValue"] for name, value in message["MessageAttributes"].items()}
    assert attributes["RequestID"] == log[0][0] and attributes["ErrorCode"] == "200"
    assert attributes["ErrorMessage"] == "ClientError: NoSuchKey: the upload is gone"


def test_an_event_that_succeeds_on_a_retry_is_not_dead_lettered(sqs):
    runtime, log = runtime_with("BatchJobSplitFunction", failures=1)
    try:
        runtime.invoke_async("BatchJobSplitFunction", {"job_id": "abc123"})
        until_tries(log, 2)
        assert dead_letters(sqs, "BatchJobSplitDeadLetterQueue", wait_s=0.5) == []
    finally:
        runtime.close()
    assert len(log) == 2


def test_a_function_with_no_retries_is_tried_once():
    # the retrain function: MaximumRetryAttempts 0 (a failed job is marked failed, never re-run)
    assert TEMPLATE.functions["RetrainFunction"].async_retries == 0
    runtime, log = runtime_with("RetrainFunction", failures=float("inf"))
    try:
        runtime.invoke_async("RetrainFunction", {"job_id": "j"})
        until_tries(log, 1)
        time.sleep(0.3)
    finally:
        runtime.close()
    assert len(log) == 1


def test_closing_the_runtime_ends_the_retries_it_was_waiting_on(sqs):
    runtime, log = runtime_with("BatchJobSplitFunction", failures=float("inf"), delays=(30.0,))
    runtime.invoke_async("BatchJobSplitFunction", {"job_id": "abc123"})
    until_tries(log, 1)
    started = time.monotonic()
    runtime.close()
    waiting = [t for t in threading.enumerate() if t.name == "async-BatchJobSplitFunction"]
    for thread in waiting:
        thread.join(5)
    assert time.monotonic() - started < 5 and len(log) == 1
    assert dead_letters(sqs, "BatchJobSplitDeadLetterQueue", wait_s=0.2) == []
