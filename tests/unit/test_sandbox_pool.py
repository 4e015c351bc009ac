"""The local emulator's sandbox pool, with stand-in sandboxes: how calls at the concurrency
limit meet a replacement sandbox that is still starting."""

import threading
import time
from pathlib import Path

from infra.local_api.sandbox import SandboxPool
from infra.template import Template


def _function():
    """Any function of the template: the pool reads only its name and timeout."""
    return next(iter(Template(Path(__file__).parents[2] / "template.yaml").functions.values()))


class SlowStartingSandbox:
    """A sandbox whose cold start lasts until ``started`` is set."""

    def __init__(self, started: threading.Event, pid: int):
        self.started, self.pid, self.alive, self.ready = started, pid, True, False

    def wait_ready(self, deadline: float) -> None:
        assert self.started.wait(max(0.0, deadline - time.monotonic())), "cold start never finished"
        self.ready = True

    def invoke(self, event, request_id, limit_s, grace_s=0.0):
        return {"result": {"pid": self.pid, "event": event}}

    def stop(self, kill: bool = True) -> None:
        self.alive = False


def test_a_call_at_the_limit_takes_over_a_replacement_still_starting_instead_of_a_429():
    started = threading.Event()
    pool = SandboxPool(
        _function(), limit=1, start_sandbox=lambda: SlowStartingSandbox(started, 7), keep_warm=1
    )
    warming = threading.Thread(target=pool.prewarm, args=(time.monotonic() + 10,))
    warming.start()
    deadline = time.monotonic() + 5
    while pool.busy != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    answers = []
    call = threading.Thread(
        target=lambda: answers.append(
            pool.run({"n": 1}, wait_until=time.monotonic(), deadline=None, limit_s=5)
        )
    )
    call.start()
    time.sleep(0.2)  # the call is waiting now, at the limit, for the sandbox being started
    started.set()
    call.join(timeout=5)
    warming.join(timeout=5)

    assert answers == [{"pid": 7, "event": {"n": 1}}]
    assert pool.cold_starts == 1


class HeldSandbox:
    """A sandbox that starts at once and holds each event until ``go`` is set."""

    def __init__(self, go: threading.Event, pid: int):
        self.go, self.pid, self.alive, self.ready = go, pid, True, True

    def wait_ready(self, deadline: float) -> None:
        pass

    def invoke(self, event, request_id, limit_s, grace_s=0.0):
        assert self.go.wait(5), "the test never let the event finish"
        return {"result": self.pid}

    def send_signal(self, kill: bool) -> None:
        self.alive = False

    def stop(self, kill: bool = True) -> None:
        self.alive = False

    def wait_exit(self) -> None:
        pass


def _pool(limit: int, keep_warm: int, idle_s: float | None):
    go, started = threading.Event(), []

    def start():
        started.append(HeldSandbox(go, len(started) + 1))
        return started[-1]

    return (
        SandboxPool(_function(), limit=limit, start_sandbox=start, keep_warm=keep_warm, idle_s=idle_s),
        go,
        started,
    )


def _call(pool: SandboxPool) -> int:
    return pool.run({}, wait_until=time.monotonic() + 5, deadline=None, limit_s=5)


def _wait_for(condition, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_idle_sandboxes_are_stopped_after_the_idle_time_down_to_the_ones_kept_warm():
    # Three calls at once make three sandboxes; idle, two are reclaimed, as Lambda reclaims idle
    # environments, and the one kept warm serves the next call without a cold start.
    pool, go, started = _pool(limit=3, keep_warm=1, idle_s=0.2)
    calls = [threading.Thread(target=_call, args=(pool,)) for _ in range(3)]
    for call in calls:
        call.start()
    assert _wait_for(lambda: pool.busy == 3)
    go.set()
    for call in calls:
        call.join(5)

    assert _wait_for(lambda: pool.reclaimed == 2)
    assert [sandbox.alive for sandbox in started].count(True) == 1
    assert pool.pids() == [sandbox.pid for sandbox in started if sandbox.alive]
    assert _call(pool) == pool.pids()[0]
    assert pool.cold_starts == 3
    time.sleep(0.4)  # past the idle time again: the kept one stays
    assert pool.reclaimed == 2 and len(pool.pids()) == 1

    pool.close()
    assert _wait_for(lambda: not any(t.name.startswith("reap-") for t in threading.enumerate()))


def test_a_reclaimed_sandbox_frees_its_place_and_a_sandbox_in_use_is_never_reclaimed():
    pool, go, started = _pool(limit=1, keep_warm=0, idle_s=0.2)
    go.set()
    assert _call(pool) == 1
    assert _wait_for(lambda: pool.reclaimed == 1)
    assert not started[0].alive and pool.pids() == []

    go.clear()  # the next call is cold, and holds its sandbox past the idle time
    call = threading.Thread(target=_call, args=(pool,))
    call.start()
    assert _wait_for(lambda: pool.busy == 1)
    time.sleep(0.4)
    assert started[1].alive and pool.reclaimed == 1
    go.set()
    call.join(5)
    assert pool.cold_starts == 2
    pool.close()


def test_without_an_idle_time_sandboxes_live_until_the_pool_closes():
    pool, go, started = _pool(limit=2, keep_warm=0, idle_s=None)
    go.set()
    assert _call(pool) == 1
    time.sleep(0.3)
    assert started[0].alive and pool.reclaimed == 0
    pool.close()
    assert not started[0].alive
