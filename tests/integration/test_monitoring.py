"""The monitor through the local API and the real template, as an operator uses it: traffic like
the base test set does not drift, a run of one class does, the scheduled monitor writes its report
to S3, and a client may not read the figures."""

import base64
import zipfile

import boto3
import pytest
import requests

from classifier.labels import LABELS
from tests.conftest import REPO
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
OPERATORS = [f"monitor-operator-{i}" for i in range(12)]  # each key has its own batch bucket (burst 5)
CLIENT = "monitor-client-key"


@pytest.fixture(scope="module")
def api(start_local_api, from_repo):
    api = start_local_api(
        REPO / "template.yaml",
        api_key=CLIENT,
        operator_api_key=OPERATORS[0],
        extra_operator_api_keys=tuple(OPERATORS[1:]),
        schedule_interval_s=5.0,
    )
    # moto's backends are one per process, shared by every module's server: start from no records
    table = boto3.resource("dynamodb").Table(api.template.physical_name("PredictionsTable"))
    with table.batch_writer() as batch:
        for item in table.scan(ProjectionExpression="id")["Items"]:
            batch.delete_item(Key={"id": item["id"]})
    return api


def images(test_zip, classes, first, last) -> list[tuple[str, bytes]]:
    """Test images ``first`` to ``last`` (exclusive) of each class."""
    with zipfile.ZipFile(test_zip) as archive:
        return [
            (f"{c}/{i:04d}.jpg", archive.read(f"{c}/{i:04d}.jpg"))
            for c in classes
            for i in range(first, last)
        ]


def predict_all(api, named: list[tuple[str, bytes]], keys) -> list[dict]:
    """Every image through POST /predict/batch, 64 a request, spreading the requests over ``keys``;
    the answers' entries."""
    entries = []
    for number, start in enumerate(range(0, len(named), 64)):
        chunk = [
            {"name": name, "image": base64.b64encode(data).decode()}
            for name, data in named[start : start + 64]
        ]
        answer = requests.post(
            f"{api.url}/predict/batch",
            json={"images": chunk},
            headers={"x-api-key": keys[number % len(keys)]},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["succeeded"] == len(chunk)
        entries += answer.json()["results"]
    return entries


def monitoring(api, key=OPERATORS[0], **params):
    return requests.get(f"{api.url}/monitoring", params=params, headers={"x-api-key": key}, timeout=30)


def figures(api, **params) -> dict:
    answer = monitoring(api, **params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_test_set_traffic_does_not_drift_and_one_class_does(api, test_zip):
    # given too few predictions for a verdict, the monitor says so instead of guessing
    predict_all(api, images(test_zip, LABELS, 0, 2), OPERATORS[:1])
    early = figures(api, hours=1)
    assert (
        early["predictions"] == 20
        and early["drift"]["enough_data"] is False
        and not early["drift"]["drifting"]
    )

    # when 500 more images of the base test set are classified (50 a class)
    predict_all(api, images(test_zip, LABELS, 2, 52), OPERATORS[1:5])
    calm = figures(api, hours=1)

    # then the window has enough predictions, and its class mix is the reference's: no drift
    assert calm["predictions"] == 520 and calm["drift"]["enough_data"] is True
    assert calm["drift"]["metric"] == "jensen_shannon_distance" and calm["drift"]["threshold"] == 0.1
    assert calm["drift"]["value"] < 0.1 and calm["drift"]["drifting"] is False
    assert (
        calm["mean_confidence"] > 0.8
        and abs(calm["mean_confidence"] - calm["reference_mean_confidence"]) < 0.05
    )
    assert set(calm["reference_distribution"]) == set(LABELS)

    # when a run of dogs alone follows, the same window drifts
    predict_all(api, images(test_zip, ["dog"], 0, 500), OPERATORS[5:])
    drifted = figures(api, hours=1)
    assert drifted["predictions"] == 1020 and drifted["class_distribution"]["dog"] > 0.4
    assert drifted["drift"]["value"] > 0.1 and drifted["drift"]["drifting"] is True


def test_feedback_on_ten_predictions_three_wrong_is_an_accuracy_of_70_percent(api, test_zip):
    # given ten predictions
    made = predict_all(api, images(test_zip, ["cat"], 60, 70), OPERATORS[:1])
    # when seven are confirmed and three corrected to another class
    for number, entry in enumerate(made):
        if number < 7:
            body = {"correct": True}
        else:
            body = {"label": next(label for label in LABELS if label != entry["label"])}
        answer = requests.post(
            f"{api.url}/predictions/{entry['id']}/feedback",
            json=body,
            headers={"x-api-key": OPERATORS[number % 3]},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text

    # then the window's feedback accuracy is 70% over 10
    assert figures(api, hours=1)["feedback"] == {"count": 10, "accuracy": 0.7}


def test_the_scheduled_monitor_writes_its_report_to_s3(api):
    bucket = api.template.physical_name("ArtifactsBucket")
    s3 = boto3.client("s3")

    def reports():
        return s3.list_objects_v2(Bucket=bucket, Prefix="monitoring/").get("Contents", [])

    found = wait_for(reports, timeout_s=30, interval_s=0.5)
    assert found and found[0]["Key"].endswith(".json")


def test_monitoring_is_for_operators_and_checks_its_window(api):
    refused = monitoring(api, key=CLIENT)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    bad = monitoring(api, hours="-2")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_parameter"
