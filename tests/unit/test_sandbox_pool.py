"""The local emulator's sandbox pool, with stand-in sandboxes: how calls at the concurrency
limit meet a replacement sandbox that is still starting."""

import threading
import time
from pathlib import Path

from infra.local_api.sandbox import SandboxPool
from infra.template import Template


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
    function = next(iter(Template(Path(__file__).parents[2] / "template.yaml").functions.values()))
    started = threading.Event()
    pool = SandboxPool(function, limit=1, start_sandbox=lambda: SlowStartingSandbox(started, 7), keep_warm=1)
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
