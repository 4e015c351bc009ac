"""The local API's Lambda side, against the fixture template: each function runs in worker
processes of its own, one event at a time per worker, like Lambda's sandboxes. Functions share no
state; a function at its concurrency limit answers 429 (not a reset); a worker that dies
mid-request is a 502 and the next request gets a new one; hundreds of concurrent connections are
all answered; ``stop()`` leaves no worker behind."""

import http.client
import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from infra.local_api import LocalApi
from tests.integration.conftest import FIXTURES, wait_for

pytestmark = pytest.mark.integration

KEY = "workers-key"
KEYS = tuple(f"workers-key-{i}" for i in range(8))  # each key has its own token buckets
QUEUE_WAIT_S = 0.5


@pytest.fixture(scope="module")
def api(start_local_api) -> LocalApi:
    return start_local_api(
        FIXTURES / "template.yaml",
        api_key=KEY,
        extra_api_keys=KEYS,
        integration_timeout_s=5.0,
        queue_wait_s=QUEUE_WAIT_S,
    )


def call(api: LocalApi, method: str, path: str, key: str = KEY, **kwargs) -> requests.Response:
    return requests.request(method, api.url + path, headers={"x-api-key": key}, timeout=30, **kwargs)


def assert_error(response: requests.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code and isinstance(error["message"], str)
    return error


def in_background(function, *args) -> tuple[threading.Thread, list]:
    """``function(*args)`` on a thread; its answer lands in the list."""
    answers: list = []
    thread = threading.Thread(target=lambda: answers.append(function(*args)), daemon=True)
    thread.start()
    return thread, answers


# ---- isolation


def test_functions_share_no_module_state_or_environment_with_each_other_or_the_server(api):
    setter = call(api, "POST", "/state").json()
    reader = call(api, "GET", "/state").json()

    assert setter["left_by_setter"] == {"environment": "yes", "module": True}
    assert reader["left_by_setter"] == {"environment": None, "module": False}
    assert setter["own_variables"] == {"SETTER_ONLY": "setter", "READER_ONLY": None}
    assert reader["own_variables"] == {"SETTER_ONLY": None, "READER_ONLY": "reader"}
    assert len({setter["pid"], reader["pid"], os.getpid()}) == 3
    assert "LEFT_BY_SETTER" not in os.environ and not hasattr(json, "left_by_setter")
    assert "SETTER_ONLY" not in os.environ and "JOBS_TABLE" not in os.environ


def test_a_warm_worker_keeps_its_module_state_between_events(api):
    first = call(api, "POST", "/state").json()
    second = call(api, "POST", "/state").json()

    assert second["pid"] == first["pid"]  # one request at a time: the same warm worker
    assert second["calls"] == first["calls"] + 1


# ---- concurrency


def test_a_function_at_its_reserved_concurrency_answers_429_after_a_short_wait(api):
    pool = api.runtime.pools["SingleFunction"]
    assert pool.limit == 1  # ReservedConcurrentExecutions in the fixture template
    thread, first = in_background(call, api, "GET", "/single?seconds=2")
    wait_for(lambda: pool.busy == 1, timeout_s=5, interval_s=0.02)

    started = time.monotonic()
    refused = call(api, "GET", "/single?seconds=0")
    waited = time.monotonic() - started
    thread.join(timeout=10)

    error = assert_error(refused, 429, "too_many_requests")
    assert "SingleFunction" in error["message"] and "concurrency" in error["message"]
    assert refused.headers["Retry-After"] == "1"
    assert waited >= QUEUE_WAIT_S - 0.1  # queued for a free worker first, then refused
    assert first[0].status_code == 200
    assert call(api, "GET", "/single?seconds=0").status_code == 200  # the worker is free again


def test_a_queued_request_gets_the_worker_when_it_frees_up_in_time(api):
    pool = api.runtime.pools["SingleFunction"]
    thread, first = in_background(call, api, "GET", "/single?seconds=0.2")
    wait_for(lambda: pool.busy == 1, timeout_s=5, interval_s=0.02)

    second = call(api, "GET", "/single?seconds=0")
    thread.join(timeout=10)

    assert first[0].status_code == 200 and second.status_code == 200
    assert first[0].json()["pid"] == second.json()["pid"]  # one worker, reused


def test_256_concurrent_connections_are_all_answered_without_resets(api):
    host, port = api.host, api.port
    connections = [http.client.HTTPConnection(host, port, timeout=60) for _ in range(256)]
    for connection in connections:
        connection.connect()  # all 256 open at once before any request is sent
    start = threading.Barrier(len(connections))

    def send(index: int) -> tuple[int, dict]:
        connection = connections[index]
        key = KEYS[index % len(KEYS)] if index % 16 else "not-a-key"
        start.wait()
        headers = {"x-api-key": key, "Content-Type": "application/json"}
        connection.request("POST", "/echo", body=b"{}", headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())

    try:
        with ThreadPoolExecutor(len(connections)) as pool:
            answers = list(pool.map(send, range(len(connections))))  # a reset would raise here
    finally:
        for connection in connections:
            connection.close()

    statuses = [status for status, _ in answers]
    assert set(statuses) <= {200, 403, 429}, statuses
    assert statuses.count(403) == 16 and statuses.count(200) > 0
    refused = [body for status, body in answers if status == 429]
    assert all(body["error"]["code"] in ("throttled", "too_many_requests") for body in refused)


# ---- failures


def test_a_worker_that_exits_mid_request_gives_502_and_the_next_request_works(api):
    assert_error(call(api, "GET", "/crash"), 502, "internal_error")

    assert call(api, "POST", "/echo", json={}).status_code == 200


def test_a_killed_worker_gives_502_and_is_replaced(api):
    pool = api.runtime.pools["SingleFunction"]
    thread, answers = in_background(call, api, "GET", "/single?seconds=4")
    wait_for(lambda: pool.busy == 1, timeout_s=5, interval_s=0.02)
    (victim,) = pool.pids()

    os.kill(victim, signal.SIGKILL)
    thread.join(timeout=10)

    assert_error(answers[0], 502, "internal_error")
    after = call(api, "GET", "/single?seconds=0")
    assert after.status_code == 200 and after.json()["pid"] != victim


def test_stop_ends_every_worker_process():
    api = LocalApi(FIXTURES / "template.yaml", port=0, api_key=KEY).start()
    try:
        thread, _ = in_background(call, api, "GET", "/slow?seconds=5")  # one busy worker, too
        wait_for(lambda: api.runtime.pools["EchoFunction"].busy == 1, timeout_s=5, interval_s=0.02)
        pids = [pid for pool in api.runtime.pools.values() for pid in pool.pids()]
        assert len(pids) >= len({route.function_id for route in api.template.routes})  # pre-warmed
    finally:
        api.stop()
    thread.join(timeout=10)

    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
