"""The usage plans' token buckets under concurrency: many threads on one key for a few seconds get
exactly what the key's bucket allows, the burst plus the refill since the first request, and
every other request is a 429 in the error form. Read from the real template, for a client's key
and for an operator's key on the same route at the same time."""

import json
import math
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.integration.test_local_api_template import noise_png

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CLIENT_KEY = "bucket-count-client-key"
OPERATOR_KEY = "bucket-count-operator-key"
ROUTE = "/predict/POST"
THREADS = 8  # per key
SECONDS = 6.0
# The stage's cap (50/s per method, all keys together) would answer some of these requests with the
# same 429 before the key's bucket sees them: lifted, so only the per-key buckets are counted.
LIFTED_STAGE = {"StageThrottleRate": "100000", "StageThrottleBurst": "100000"}


@pytest.fixture(scope="module")
def api(start_local_api):
    return start_local_api(
        REPO / "template.yaml", api_key=CLIENT_KEY, operator_api_key=OPERATOR_KEY, parameters=LIFTED_STAGE
    )


def hammer(url: str, key: str, image: bytes, start: threading.Barrier) -> list[tuple[float, int, bytes]]:
    """POST /predict back to back for SECONDS: (time sent, status, body) of each request."""
    answers = []
    with requests.Session() as session:
        start.wait()
        deadline = time.monotonic() + SECONDS
        while (sent := time.monotonic()) < deadline:
            response = session.post(
                url + "/predict",
                data=image,
                headers={"x-api-key": key, "Content-Type": "image/png"},
                timeout=60,
            )
            answers.append((sent, response.status_code, response.content))
    return answers


def test_threads_on_one_key_get_what_its_bucket_allows_and_429s_for_the_rest(api):
    image = noise_png(7)
    keys = {CLIENT_KEY: api.template.client_plan, OPERATOR_KEY: api.template.operator_plan}
    start = threading.Barrier(THREADS * len(keys))
    with ThreadPoolExecutor(THREADS * len(keys)) as pool:
        futures = {
            key: [pool.submit(hammer, api.url, key, image, start) for _ in range(THREADS)] for key in keys
        }
        answers = {
            key: [a for future in started for a in future.result()] for key, started in futures.items()
        }

    counted = {}
    for key, plan in keys.items():
        throttle = plan.route_throttles[ROUTE]
        statuses = Counter(status for _, status, _ in answers[key])
        assert set(statuses) <= {200, 429}, statuses
        for _, status, body in answers[key]:
            if status == 429:
                assert json.loads(body)["error"]["code"] == "throttled"
        # The key's bucket starts full at its first request and refills from then on.
        sent = [at for at, _, _ in answers[key]]
        elapsed = max(sent) - min(sent)
        allowed = throttle.burst + math.floor(throttle.rate * elapsed)
        counted[key] = (statuses[200], statuses[429], allowed, round(elapsed, 2))
        assert abs(statuses[200] - allowed) <= 1, (plan.name, counted[key])
        assert statuses[429] > statuses[200]  # the threads asked for far more than the bucket holds
    print(f"200s, 429s, allowed, seconds: {counted}")
    assert counted[OPERATOR_KEY][2] > counted[CLIENT_KEY][2]  # the operators' figures, not the clients'
