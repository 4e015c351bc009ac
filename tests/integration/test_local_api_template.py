"""The local API serving the real ``template.yaml``: the shipped model answers over HTTP, the
usage plan's buckets and the API key are enforced, and the events it builds have the shape of the
``shared/events`` files the handlers are tested with."""

import base64
import hashlib
import io
import json
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

import pytest
import requests
from PIL import Image

from classifier import aws as aws_clients
from classifier.api import model_provider
from classifier.labels import LABELS
from classifier.settings import get_settings
from infra.local_api import LocalApi
from tests.integration.conftest import curl_multipart

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
KEY = "template-key"
THROTTLE_KEY = "template-throttle-key"
CONCURRENT_KEYS = tuple(f"template-concurrent-key-{i}" for i in range(64))  # a predict bucket each


def reset_process_state() -> None:
    """Clients and the model cached by an earlier test would point at another moto."""
    get_settings.cache_clear()
    aws_clients.reset_clients()
    model_provider.set_provider(None)


@pytest.fixture(scope="module")
def api(start_local_api):
    reset_process_state()
    api = start_local_api(
        REPO / "template.yaml", api_key=KEY, extra_api_keys=(THROTTLE_KEY, *CONCURRENT_KEYS)
    )
    seen: list[dict] = []
    invoke = api.runtime.invoke

    def recording_invoke(function_id, event, timeout_s):
        seen.append(event)
        return invoke(function_id, event, timeout_s)

    api.runtime.invoke = recording_invoke
    api.seen_events = seen
    yield api
    reset_process_state()


def post(api: LocalApi, path: str, key: str = KEY, **kwargs) -> requests.Response:
    headers = {"x-api-key": key, **kwargs.pop("headers", {})}
    return requests.post(api.url + path, headers=headers, timeout=60, **kwargs)


def get(api: LocalApi, path: str, key: str = KEY) -> requests.Response:
    return requests.get(api.url + path, headers={"x-api-key": key}, timeout=60)


def assert_prediction(response: requests.Response) -> dict:
    assert response.status_code == 200, response.text
    prediction = response.json()
    assert prediction["label"] in LABELS
    assert sum(prediction["probabilities"].values()) == pytest.approx(1, abs=1e-3)
    return prediction


def test_a_form_upload_like_curl_is_classified(api, dog_jpeg):
    body, content_type = curl_multipart("file", "dog.jpg", dog_jpeg, "image/jpeg")

    prediction = assert_prediction(
        post(api, "/predict?top_k=2", data=body, headers={"Content-Type": content_type})
    )

    assert prediction["label"] == "dog"  # the shipped model gets this one right
    assert len(prediction["top_k"]) == 2


def test_a_raw_image_and_a_json_image_get_the_same_answer(api, dog_jpeg):
    raw = assert_prediction(post(api, "/predict", data=dog_jpeg, headers={"Content-Type": "image/jpeg"}))
    as_json = assert_prediction(post(api, "/predict", json={"image": base64.b64encode(dog_jpeg).decode()}))

    assert raw["probabilities"] == as_json["probabilities"]


def test_a_batch_answers_per_image_in_order(api, dog_jpeg):
    files = [
        ("files", ("dog.jpg", dog_jpeg, "image/jpeg")),
        ("files", ("notes.txt", b"not an image", "text/plain")),
    ]

    response = post(api, "/predict/batch", files=files)

    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert results[0]["label"] == "dog"
    assert results[1]["error"]["code"]


def test_stored_predictions_are_listed_and_fetched(api, dog_jpeg):
    made = assert_prediction(post(api, "/predict", data=dog_jpeg, headers={"Content-Type": "image/jpeg"}))

    listed = get(api, "/predictions?limit=1").json()
    fetched = get(api, f"/predictions/{made['id']}").json()

    assert listed["items"][0]["id"] == made["id"]
    assert fetched["id"] == made["id"] and fetched["label"] == made["label"]


def noise_png(seed: int) -> bytes:
    """A 32x32 PNG of random pixels: every seed a different image."""
    pixels = np.random.default_rng(seed).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def test_64_concurrent_predictions_each_answer_and_store_their_own_image(api):
    images = [noise_png(seed) for seed in range(64)]
    assert len({hashlib.sha256(image).hexdigest() for image in images}) == len(images)
    start = threading.Barrier(64)

    def predict(index: int) -> requests.Response:
        start.wait()  # all at once
        headers = {"Content-Type": "image/png"}
        return post(api, "/predict", key=CONCURRENT_KEYS[index], data=images[index], headers=headers)

    with ThreadPoolExecutor(64) as pool:
        answers = [assert_prediction(response) for response in pool.map(predict, range(64))]
        ids = [answer["id"] for answer in answers]
        stored = list(pool.map(lambda i: get(api, f"/predictions/{ids[i]}", CONCURRENT_KEYS[i]), range(64)))

    for image, answer, record in zip(images, answers, stored, strict=True):
        assert answer["image_sha256"] == hashlib.sha256(image).hexdigest()
        assert record.status_code == 200, record.text
        assert {key: record.json()[key] for key in ("id", "image_sha256", "label")} == {
            key: answer[key] for key in ("id", "image_sha256", "label")
        }
    assert len(set(ids)) == 64


def test_without_the_key_the_api_answers_403_in_the_error_form(api):
    response = requests.get(api.url + "/predictions", timeout=10)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_predict_is_throttled_by_its_bucket_while_reads_still_answer(api):
    burst = api.template.route_throttles["/predict/POST"].burst

    statuses = [post(api, "/predict", key=THROTTLE_KEY, json={}).status_code for _ in range(burst + 1)]

    assert statuses[:burst] == [400] * burst  # admitted (and refused by the function: no image)
    assert statuses[burst] == 429
    assert get(api, "/predictions", key=THROTTLE_KEY).status_code == 200


def _shape(event: dict) -> dict[str, set[str]]:
    return {
        "event": set(event),
        "requestContext": set(event["requestContext"]),
        "identity": set(event["requestContext"]["identity"]),
    }


def test_the_events_it_builds_have_the_shape_of_the_shared_event_files(api):
    files = sorted((REPO / "shared" / "events").glob("*.json"))
    api_files = [path for path in files if "requestContext" in json.loads(path.read_text())]
    assert api_files, "no API Gateway event files in shared/events"
    built = {(event["httpMethod"], event["resource"]): event for event in api.seen_events}

    for path in api_files:
        reference = json.loads(path.read_text())
        route = (reference["httpMethod"], reference["resource"])
        if route not in built:  # a route this module did not call: build its event through the API
            requests.request(route[0], api.url + reference["path"], headers={"x-api-key": KEY}, timeout=60)
            built = {(event["httpMethod"], event["resource"]): event for event in api.seen_events}
        assert _shape(built[route]) == _shape(reference), path.name


def test_a_predict_worker_killed_during_its_record_write_leaves_no_partial_record(api, dog_jpeg, monkeypatch):
    # given the predict function's worker held inside its record write (moto serves in this process)
    from moto.dynamodb.models import DynamoDBBackend

    held, release = threading.Event(), threading.Event()
    real_put_item = DynamoDBBackend.put_item

    def held_put_item(self, table_name, *args, **kwargs):
        if not release.is_set() and "Predictions" in table_name:
            held.set()
            release.wait(timeout=20)
        return real_put_item(self, table_name, *args, **kwargs)

    monkeypatch.setattr(DynamoDBBackend, "put_item", held_put_item)
    pool = api.runtime.pools["PredictFunction"]
    before = {item["id"] for item in get(api, "/predictions?limit=100").json()["items"]}
    answers: list = []
    headers = {"Content-Type": "image/jpeg"}
    thread = threading.Thread(
        target=lambda: answers.append(post(api, "/predict", data=dog_jpeg, headers=headers))
    )
    thread.start()
    assert held.wait(timeout=30)
    # the held worker: the pool's only busy one (the pool has no public list of its idle ones)
    (victim,) = set(pool.pids()) - {sandbox.pid for sandbox in pool._idle}

    # when that worker is killed mid-request, then the caller gets a JSON 502
    os.kill(victim, signal.SIGKILL)
    thread.join(timeout=30)
    release.set()
    assert answers[0].status_code == 502 and answers[0].json()["error"]["code"] == "internal_error"

    # and the next prediction is answered and stored by a new worker
    after = assert_prediction(post(api, "/predict", data=dog_jpeg, headers=headers))
    assert after["stored"] is True and victim not in pool.pids()

    # and every record stored is whole: the killed request's write either landed in full or not at all
    new = [item for item in get(api, "/predictions?limit=100").json()["items"] if item["id"] not in before]
    assert after["id"] in {item["id"] for item in new} and len(new) <= 2
    expected_fields = (set(after) - {"top_k", "stored"}) | {"input_png"}  # the record keeps the model input
    assert all(set(item) == expected_fields for item in new), [sorted(item) for item in new]
