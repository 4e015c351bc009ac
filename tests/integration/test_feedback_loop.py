"""Feedback becomes training data, through the local API and the real template: a client predicts
ten test images (their model inputs kept in the records), gives feedback on them with three wrong
labels (an operator gives some of it), the records carry it, ``GET /predictions?wrong=true`` lists
exactly the three, ``GET /training-data`` counts ten feedback images, and a retraining job started
afterwards lists them in its training-data manifest (the job record and the new version's card)."""

import base64
import io
import zipfile

import pytest
import requests
from PIL import Image

from classifier.labels import LABELS
from tests.conftest import REPO
from tests.integration.conftest import base_datasets, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
OPERATOR, CLIENT = "feedback-operator", "feedback-client"


@pytest.fixture(scope="module")
def api(start_local_api, test_zip, tmp_path_factory, from_repo):
    data = base_datasets(tmp_path_factory.mktemp("base"), test_zip, test_every=40)  # 250 test images
    return start_local_api(
        REPO / "template.yaml",
        operator_api_key=OPERATOR,
        api_key=CLIENT,
        parameters={"ModelRefreshSeconds": "0"},
        bootstrap_data=data,
        s3_poll_interval_s=0.3,
    )


def call(api, method, path, key=OPERATOR, **kwargs):
    return requests.request(
        method,
        f"{api.url}{path}",
        headers={"x-api-key": key, **kwargs.pop("headers", {})},
        timeout=60,
        **kwargs,
    )


def test_feedback_becomes_training_data_and_the_next_job_trains_on_it(api, test_zip):
    # given ten predictions of a client, one batch of ten test images (one per class)
    with zipfile.ZipFile(test_zip) as archive:
        images = {f"{label}.jpg": archive.read(f"{label}/0012.jpg") for label in LABELS}
    batch = call(
        api,
        "POST",
        "/predict/batch",
        key=CLIENT,
        files=[("files", (name, data, "image/jpeg")) for name, data in images.items()],
    )
    assert batch.status_code == 200, batch.text
    made = batch.json()["results"]
    assert len(made) == 10 and all(entry["stored"] and "input_png" not in entry for entry in made)

    # when the client says three are wrong (a label that is not the predicted one) and an operator
    # and the client confirm the other seven
    wrong = {entry["id"]: LABELS[(LABELS.index(entry["label"]) + 1) % 10] for entry in made[:3]}
    for position, entry in enumerate(made):
        body = {"label": wrong[entry["id"]]} if entry["id"] in wrong else {"correct": True}
        key = OPERATOR if position >= 6 else CLIENT
        answer = call(api, "POST", f"/predictions/{entry['id']}/feedback", key=key, json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["training_image"]["added"] is True
    repeated = call(api, "POST", f"/predictions/{made[0]['id']}/feedback", key=CLIENT, json={"label": "ship"})
    assert repeated.status_code == 409 and repeated.json()["error"]["code"] == "conflict"

    # then every record carries its feedback and its kept input
    for position, entry in enumerate(made):
        record = call(api, "GET", f"/predictions/{entry['id']}", key=CLIENT).json()
        expected = wrong.get(entry["id"], entry["label"])
        assert record["feedback"]["label"] == expected
        assert record["feedback"]["correct"] is (entry["id"] not in wrong)
        assert (record["feedback"]["by"] == record["owner"]) is (position < 6)  # the giver's key id
        kept = Image.open(io.BytesIO(base64.b64decode(record["input_png"])))
        assert (kept.format, kept.size) == ("PNG", (32, 32))

    listed = call(api, "GET", "/predictions?wrong=true&limit=100", key=CLIENT)
    assert listed.status_code == 200 and {item["id"] for item in listed.json()["items"]} == set(wrong)
    right = call(api, "GET", "/predictions?wrong=false&limit=2", key=CLIENT).json()
    assert len(right["items"]) == 2 and right["next_cursor"]
    assert call(api, "GET", "/predictions?has_feedback=maybe", key=CLIENT).status_code == 400

    summary = call(api, "GET", "/training-data").json()
    assert (summary["feedback_total"], summary["uploads_total"]) == (10, 0)
    for entry in made:
        assert summary["labels"][wrong.get(entry["id"], entry["label"])]["feedback"] >= 1

    # and a retraining job started afterwards lists the feedback images in its manifest
    started = call(api, "POST", "/retrain", json={"epochs": 1, "max_images": 100})
    assert started.status_code == 202, started.text
    job_id = started.json()["job_id"]
    job = wait_for(
        lambda: (j := call(api, "GET", f"/retrain/{job_id}").json())["status"]
        in ("succeeded", "rejected", "failed")
        and j,
        timeout_s=300,
        interval_s=1,
    )
    assert job["status"] in ("succeeded", "rejected"), job
    assert (job["training_data"]["feedback"], job["training_data"]["uploads"]) == (10, 0)
    ids = {pid for image in job["training_data"]["feedback_images"] for pid in image["prediction_ids"]}
    assert ids == {entry["id"] for entry in made}
    card = call(api, "GET", f"/models/{job['version']}").json()["card"]
    user = card["training_data"]["user"]
    assert user["feedback"] == 10 and card["training_data"]["images"] == 100 + 10
    assert {image["key"] for image in user["feedback_images"]} == {
        image["key"] for image in job["training_data"]["feedback_images"]
    }
