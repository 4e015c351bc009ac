"""The MLOps loop through the local API and the real template, as a user runs it: upload labelled
images (direct and as a zip through a presigned upload), retrain (two concurrent requests: one
202, one 409; an Idempotency-Key repeat returns the same job), watch progress, get a new version
with a card, see predictions switch to it, roll back, see them switch back."""

import base64
import concurrent.futures
import zipfile

import pytest
import requests

from tests.conftest import REPO, sample_zip
from tests.integration.conftest import base_datasets, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
KEYS = [f"operator-{i}" for i in range(20)]  # each key has its own token buckets (training data: burst 1)
CLIENTS = [f"client-{i}" for i in range(12)]


@pytest.fixture(scope="module")
def api(start_local_api, test_zip, tmp_path_factory, from_repo):
    data = base_datasets(tmp_path_factory.mktemp("base"), test_zip)  # 500 test images
    return start_local_api(
        REPO / "template.yaml",
        operator_api_key=KEYS[0],
        extra_operator_api_keys=tuple(KEYS[1:]),
        api_key=CLIENTS[0],
        extra_api_keys=tuple(CLIENTS[1:]),
        parameters={"ModelRefreshSeconds": "0"},
        bootstrap_data=data,
        s3_poll_interval_s=0.3,
    )


def call(api, method, path, key=KEYS[0], **kwargs):
    return requests.request(
        method,
        f"{api.url}{path}",
        headers={"x-api-key": key, **kwargs.pop("headers", {})},
        timeout=60,
        **kwargs,
    )


def predict_version(api, image: bytes) -> str:
    answer = call(api, "POST", "/predict", data=image, headers={"content-type": "image/jpeg"})
    assert answer.status_code == 200, answer.text
    return answer.json()["model_version"]


def test_the_loop(api, test_zip, dog_jpeg):
    baseline = call(api, "GET", "/models").json()["current_version"]
    assert predict_version(api, dog_jpeg) == baseline

    # 1. direct upload: JSON with base64 images
    with zipfile.ZipFile(test_zip) as archive:
        dogs = [archive.read(f"dog/{i:04d}.jpg") for i in range(1, 4)]
    direct = call(
        api,
        "POST",
        "/training-data",
        json={
            "label": "dog",
            "images": [base64.b64encode(image).decode() for image in dogs] + ["bm90IGFuIGltYWdl"],
        },
    )
    assert direct.status_code == 200, direct.text
    assert direct.json()["counts"] == {"accepted": 3, "duplicate": 0, "rejected": 1}

    # 2. a zip through a presigned upload, ingested by the S3-triggered function
    upload = call(api, "POST", "/training-data", key=KEYS[1], json={"upload": True}).json()
    archive = sample_zip(test_zip, every=250, offset=11)  # 20 images, two per class
    posted = requests.post(
        upload["url"], data=upload["fields"], files={"file": ("set.zip", archive)}, timeout=60
    )
    assert posted.status_code in (200, 204), posted.text
    report = wait_for(
        lambda: (r := call(api, "GET", f"/training-data/uploads/{upload['upload_id']}").json())["status"]
        in ("completed", "refused")
        and r,
        timeout_s=120,
    )
    assert report["status"] == "completed" and report["counts"]["accepted"] == 20
    summary = call(api, "GET", "/training-data").json()
    assert summary["labels"]["dog"]["user"] == 5 and summary["labels"]["dog"]["base"] == 5000

    # 3. two concurrent POST /retrain: one 202, one 409
    body = {"mode": "finetune", "epochs": 2}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(
            pool.map(
                lambda key: call(
                    api, "POST", "/retrain", key=key, json=body, headers={"Idempotency-Key": f"idem-{key}"}
                ),
                KEYS[2:4],
            )
        )
    assert sorted(a.status_code for a in answers) == [202, 409], [a.text for a in answers]
    started = next(a for a in answers if a.status_code == 202)
    job_id = started.json()["job_id"]
    repeat_key = KEYS[2] if answers[0].status_code == 202 else KEYS[3]
    repeated = call(
        api, "POST", "/retrain", key=repeat_key, json=body, headers={"Idempotency-Key": f"idem-{repeat_key}"}
    )
    assert repeated.status_code == 202 and repeated.json()["job_id"] == job_id

    # 4. progress, then a verdict
    seen = []
    job = wait_for(
        lambda: (j := call(api, "GET", f"/retrain/{job_id}").json(), seen.append(j))[0]["status"]
        in ("succeeded", "rejected", "failed")
        and j,
        timeout_s=600,
        interval_s=1,
    )
    assert job["status"] in ("succeeded", "rejected"), job
    assert any(j["status"] == "running" for j in seen) and job["epoch"] == job["epochs"] == 2
    version = job["version"]
    model = call(api, "GET", f"/models/{version}").json()
    assert (
        model["card"]["parent_version"] == baseline and model["card"]["training_data"]["images"] == 100 + 23
    )

    # 5. predictions switch to it (promoted by the gate, or deliberately past it)
    if job["status"] == "rejected":
        assert call(api, "POST", f"/models/{version}/promote").status_code == 409
        assert call(api, "POST", f"/models/{version}/promote", json={"force": True}).status_code == 200
    assert predict_version(api, dog_jpeg) == version
    listed = call(api, "GET", "/models").json()
    assert listed["current_version"] == version and {v["version"] for v in listed["versions"]} >= {
        version,
        baseline,
    }

    # 6. roll back, and predictions switch back; every record names the version that made it
    rolled = call(api, "POST", f"/models/{baseline}/promote")
    assert rolled.status_code == 200 and rolled.json() == {
        "current_version": baseline,
        "previous_version": version,
    }
    answer = call(api, "POST", "/predict", data=dog_jpeg, headers={"content-type": "image/jpeg"}).json()
    assert answer["model_version"] == baseline
    assert call(api, "GET", f"/predictions/{answer['id']}").json()["model_version"] == baseline


BAD_REQUESTS = [
    ("POST", "/training-data", {"json": {"label": "dragon", "images": ["aGVsbG8="]}}, 400, "invalid_request"),
    (
        "POST",
        "/training-data",
        {"data": b"label=cat", "headers": {"content-type": "text/plain"}},
        415,
        "unsupported_media_type",
    ),
    (
        "POST",
        "/training-data",
        {"json": {"label": "cat", "images": ["%%%not base64"]}},
        400,
        "invalid_base64",
    ),
    ("POST", "/retrain", {"json": {"mode": "yolo"}}, 400, "invalid_request"),
    (
        "POST",
        "/retrain",
        {"data": b"{not json", "headers": {"content-type": "application/json"}},
        400,
        "invalid_json",
    ),
    ("GET", "/retrain/no-such-job", {}, 404, "not_found"),
    ("GET", "/models/v00000000-000000", {}, 404, "not_found"),
    ("POST", "/models/v00000000-000000/promote", {}, 404, "not_found"),
    ("GET", "/training-data/uploads/never-issued", {}, 404, "not_found"),
]


@pytest.mark.parametrize("case", range(len(BAD_REQUESTS)))
def test_bad_mlops_requests_get_a_clear_4xx(api, case):
    method, path, kwargs, status, code = BAD_REQUESTS[case]

    answer = call(api, method, path, key=KEYS[6 + case], **kwargs)  # own key: own token buckets

    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code


OPERATOR_ROUTES = [
    ("POST", "/training-data", {"json": {"label": "cat", "images": ["aGVsbG8="]}}),
    ("POST", "/training-data", {"json": {"upload": True}}),
    ("GET", "/training-data", {}),
    ("GET", "/training-data/uploads/anything", {}),
    ("POST", "/retrain", {"json": {"epochs": 1}}),
    ("GET", "/retrain/anything", {}),
    ("POST", "/models/anything/promote", {}),
]


@pytest.mark.parametrize("case", range(len(OPERATOR_ROUTES)))
def test_a_client_key_on_an_operator_route_is_forbidden_and_nothing_happens(api, case):
    method, path, kwargs = OPERATOR_ROUTES[case]

    def state():
        return (
            call(api, "GET", "/models", key=KEYS[19]).json(),
            call(api, "GET", "/training-data", key=KEYS[19]).json(),
        )

    before = state()

    answer = call(api, method, path, key=CLIENTS[3 + case], **kwargs)  # own key: own token buckets

    assert answer.status_code == 403, answer.text
    assert answer.json()["error"]["code"] == "forbidden"
    assert state() == before  # no training data, no new version, no promotion


def test_records_belong_to_their_caller(api, dog_jpeg):
    # given a prediction by each of two clients and one by an operator
    made = {
        key: call(
            api, "POST", "/predict", key=key, data=dog_jpeg, headers={"content-type": "image/jpeg"}
        ).json()
        for key in (CLIENTS[1], CLIENTS[2], KEYS[17])
    }
    mine, theirs = made[CLIENTS[1]], made[CLIENTS[2]]
    assert mine["owner"] and mine["owner"] != theirs["owner"] and CLIENTS[1] not in mine["owner"]

    # then a client lists only its own records, and another owner's record is "not found"
    listed = call(api, "GET", "/predictions?limit=100", key=CLIENTS[1]).json()["items"]
    assert {item["owner"] for item in listed} == {mine["owner"]}
    assert mine["id"] in {item["id"] for item in listed}
    missing = call(api, "GET", f"/predictions/{theirs['id']}", key=CLIENTS[1])
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    other = call(api, "GET", f"/predictions?owner={theirs['owner']}", key=CLIENTS[1])
    assert other.status_code == 403 and other.json()["error"]["code"] == "forbidden"

    # and an operator reads anyone's, lists everyone's, or one owner's
    assert call(api, "GET", f"/predictions/{theirs['id']}", key=KEYS[17]).json()["owner"] == theirs["owner"]
    everyone = call(api, "GET", "/predictions?limit=100", key=KEYS[17]).json()["items"]
    assert {mine["owner"], theirs["owner"], made[KEYS[17]]["owner"]} <= {item["owner"] for item in everyone}
    one = call(api, "GET", f"/predictions?owner={theirs['owner']}", key=KEYS[17]).json()["items"]
    assert [item["id"] for item in one] == [theirs["id"]]
