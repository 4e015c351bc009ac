"""The load of ``make loadtest``, for locust (``bench.loadtest`` starts the local API and runs it).

Each simulated user posts a fresh image to ``POST /predict`` (32x32 PNG noise: no two requests send
the same bytes) and now and then reads one of its own predictions back with
``GET /predictions/{id}``. Every answer is checked against the request it answers: the
prediction's ``image_sha256`` must be the sha256 of the bytes this request sent, and the stored
record must have the id asked for and the image of the prediction that made it. An answer that
fails is a mismatch: the server gave one caller another's result.

A user spends a client key on at most ``LOADTEST_KEY_USES`` predictions (the predict bucket's
burst) and then takes the next one, so the usage plan's per-key buckets never throttle it; the
runner registers enough keys for ``LOADTEST_REQUESTS``. A record is read with the key that made
it, its owner.

Settings come from the environment (the runner sets them): ``LOADTEST_KEYS`` (a JSON file with the
list of client keys), ``LOADTEST_KEY_USES``, ``LOADTEST_REQUESTS`` (the run stops after that many
requests, whatever the time left) and ``LOADTEST_SUMMARY`` (where the figures are written as
JSON at the end). The process exits 1 on any mismatch, 5xx or connection error.
"""

import hashlib
import io
import json
import os
import random
from collections import Counter, defaultdict
from pathlib import Path

import gevent
from locust import FastHttpUser, constant, events, task
from locust.exception import StopUser
from PIL import Image

PREDICT = "POST /predict"
FETCH = "GET /predictions/{id}"
PERCENTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}
MISMATCH_SAMPLES = 10  # the first few are kept in the summary, to see what went wrong

KEYS = iter(json.loads(Path(os.environ["LOADTEST_KEYS"]).read_text()))
KEY_USES = int(os.environ.get("LOADTEST_KEY_USES", "5"))
REQUEST_LIMIT = int(os.environ.get("LOADTEST_REQUESTS", "1000000"))
SUMMARY = os.environ.get("LOADTEST_SUMMARY")

# Shared by every user. Users are greenlets of one process and none yields between reading and
# updating these, so no lock is needed.
issued = 0
statuses: dict[str, Counter] = defaultdict(Counter)
mismatches: list[str] = []


def noise_png() -> bytes:
    """32x32 random pixels as PNG: a different image, and sha256, for every request."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (32, 32), os.urandom(32 * 32 * 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def _body(response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class Client(FastHttpUser):
    wait_time = constant(0)  # closed loop: each user sends its next request as soon as it has an answer

    def on_start(self) -> None:
        self.key: str | None = None
        self.key_uses = 0
        self.made: list[tuple[str, str, str]] = []  # (prediction id, image sha256, key that made it)

    def _admit(self) -> None:
        """Count one request against the run's limit; the limit reached ends the run."""
        global issued
        if issued >= REQUEST_LIMIT:
            gevent.spawn(self.environment.runner.quit)
            raise StopUser()
        issued += 1

    def _predict_key(self) -> str:
        if self.key is None or self.key_uses >= KEY_USES:
            try:
                self.key = next(KEYS)
            except StopIteration:  # the runner's keys are spent before the limit: end here
                gevent.spawn(self.environment.runner.quit)
                raise StopUser() from None
            self.key_uses = 0
        self.key_uses += 1
        return self.key

    @task(4)
    def predict(self) -> None:
        self._admit()
        image = noise_png()
        sha = hashlib.sha256(image).hexdigest()
        key = self._predict_key()
        headers = {"x-api-key": key, "Content-Type": "image/png"}
        with self.client.post(
            "/predict", data=image, headers=headers, name=PREDICT, catch_response=True
        ) as response:
            statuses[PREDICT][response.status_code] += 1
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
                return
            answer = _body(response)
            if answer.get("image_sha256") != sha or not answer.get("id"):
                _mismatch(response, f"{PREDICT}: sent {sha}, answered {answer.get('image_sha256')}")
                return
            self.made.append((answer["id"], sha, key))

    @task(1)
    def fetch_own(self) -> None:
        if not self.made:
            return self.predict()
        self._admit()
        prediction_id, sha, key = random.choice(self.made)
        with self.client.get(
            f"/predictions/{prediction_id}", headers={"x-api-key": key}, name=FETCH, catch_response=True
        ) as response:
            statuses[FETCH][response.status_code] += 1
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
                return
            record = _body(response)
            if record.get("id") != prediction_id or record.get("image_sha256") != sha:
                _mismatch(
                    response,
                    f"{FETCH}: asked {prediction_id} ({sha}), got {record.get('id')} "
                    f"({record.get('image_sha256')})",
                )


def _mismatch(response, what: str) -> None:
    mismatches.append(what)
    response.failure(f"mismatch: {what}")


def summary(environment) -> dict:
    """The run's figures: per route and in total, requests, requests/s and latency percentiles
    (ms, locust's), every status counted (0: no HTTP answer), and the mismatches."""
    stats = environment.stats
    entries = {entry.name: entry for entry in stats.entries.values()}
    entries["total"] = stats.total
    routes = {}
    for name, entry in entries.items():
        routes[name] = {
            "requests": entry.num_requests,
            "requests_per_s": round(entry.total_rps, 1),
            **{label: entry.get_response_time_percentile(p) for label, p in PERCENTILES.items()},
            "statuses": {str(code): n for code, n in sorted(statuses.get(name, Counter()).items())},
        }
    routes["total"]["statuses"] = {
        str(code): n for code, n in sorted(sum(statuses.values(), Counter()).items())
    }
    duration = (stats.last_request_timestamp or 0) - (stats.start_time or 0)
    return {
        "users": environment.parsed_options.num_users if environment.parsed_options else None,
        "duration_s": round(max(duration, 0.0), 1),
        "routes": routes,
        "mismatches": len(mismatches),
        "mismatch_samples": mismatches[:MISMATCH_SAMPLES],
    }


def failed(figures: dict) -> bool:
    """A mismatch, a 5xx or a request without an HTTP answer fails the run; 4xx (429 when the
    functions' workers are all busy) are counted, not failures."""
    codes = figures["routes"]["total"]["statuses"]
    return figures["mismatches"] > 0 or any(code == "0" or code.startswith("5") for code in codes)


@events.quitting.add_listener
def _write_summary(environment, **_kwargs) -> None:
    figures = summary(environment)
    if SUMMARY:
        Path(SUMMARY).write_text(json.dumps(figures, indent=2))
    environment.process_exit_code = 1 if failed(figures) else 0
