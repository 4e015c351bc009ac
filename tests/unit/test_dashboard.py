"""The dashboard and the alarms name only metrics the code emits, with the code's namespace and
dimensions (classifier.metrics): they cannot drift apart."""

import json
import re

import pytest

from classifier.metrics import LABEL, MODEL_VERSION, PER_PREDICTION, SERVICE, Metric
from functions.monitor import app as monitor_app
from functions.predict import app as predict_app
from tests.unit.conftest import FUNCTION_ENVIRONMENT, REPO, TEMPLATE

NAMESPACE = FUNCTION_ENVIRONMENT["POWERTOOLS_METRICS_NAMESPACE"]
SERVICE_NAME = FUNCTION_ENVIRONMENT["POWERTOOLS_SERVICE_NAME"]
SEARCH = re.compile(r"SEARCH\('\{([^}]*)\} MetricName=\"(\w+)\"'")


def expected_dimensions(name: str) -> set[str]:
    return {SERVICE, *PER_PREDICTION.get(Metric(name), ())}


def dashboard_metrics() -> list[tuple[str, str, dict[str, str] | None]]:
    """(namespace, metric, dimensions) of every metric the dashboard draws; dimensions None for a
    SEARCH (which names the dimension keys, not their values)."""
    body = json.loads(TEMPLATE.resolve(TEMPLATE.resources["Dashboard"]["Properties"]["DashboardBody"]))
    found = []
    for widget in body["widgets"]:
        for row in widget.get("properties", {}).get("metrics", []):
            if isinstance(row[0], dict) and "expression" in row[0]:
                for keys, name in SEARCH.findall(row[0]["expression"]):
                    namespace, *dimensions = keys.split(",")
                    found.append((namespace, name, dict.fromkeys(dimensions)))
                continue
            namespace, name, *rest = [item for item in row if not isinstance(item, dict)]
            found.append((namespace, name, dict(zip(rest[::2], rest[1::2], strict=True))))
    return found


def alarm_metrics() -> list[tuple[str, str, dict[str, str]]]:
    alarms = [r for r in TEMPLATE.resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    return [
        (
            TEMPLATE.resolve(alarm["Properties"]["Namespace"]),
            alarm["Properties"]["MetricName"],
            {d["Name"]: TEMPLATE.resolve(d["Value"]) for d in alarm["Properties"]["Dimensions"]},
        )
        for alarm in alarms
    ]


def ours(metrics):
    return [(name, dimensions) for namespace, name, dimensions in metrics if namespace == NAMESPACE]


def test_every_metric_of_ours_on_the_dashboard_and_in_an_alarm_is_a_named_metric_with_its_dimensions():
    named = {metric.value for metric in Metric}
    drawn = ours(dashboard_metrics()) + ours(alarm_metrics())
    assert len(drawn) >= 15  # the model, monitor and MLOps panels and the four custom alarms
    for name, dimensions in drawn:
        assert name in named, f"{name} is not in classifier.metrics.Metric"
        assert set(dimensions) == expected_dimensions(name), name
        if dimensions.get(SERVICE) is not None:
            assert dimensions[SERVICE] == SERVICE_NAME, name


def test_the_alarms_watch_what_an_operator_needs():
    watched = {name for namespace, name, _ in alarm_metrics()}
    assert {
        "5XXError",
        "Duration",
        "RecordsNotStored",
        "DriftScore",
        "WindowFeedbackAccuracy",
        "RetrainingJobsFailed",
    } <= watched
    topic = {"Ref": "AlarmTopic"}
    alarms = [r for r in TEMPLATE.resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert all(alarm["Properties"]["AlarmActions"] == [topic] for alarm in alarms)


def emitted(output: str) -> set[tuple[str, str, frozenset[str]]]:
    """(namespace, metric, dimension keys) of every EMF document in ``output``."""
    found = set()
    for line in output.splitlines():
        if '"_aws"' not in line:
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for dimensions in directive["Dimensions"]:
                for metric in directive["Metrics"]:
                    found.add((directive["Namespace"], metric["Name"], frozenset(dimensions)))
    return found


def test_a_prediction_emits_the_per_prediction_metrics_the_dashboard_draws(
    aws, load_event, lambda_context, capsys
):
    predict_app.lambda_handler(load_event("predict-raw"), lambda_context)
    out = emitted(capsys.readouterr().out)

    for name in (
        Metric.PREDICTED_CLASS,
        Metric.CONFIDENCE,
        Metric.LOW_CONFIDENCE,
        Metric.DECODE_MS,
        Metric.INFERENCE_MS,
    ):
        assert (NAMESPACE, name.value, frozenset(expected_dimensions(name))) in out, name
    assert (NAMESPACE, Metric.RECORDS_NOT_STORED.value, frozenset({SERVICE})) in out
    assert {MODEL_VERSION, LABEL} == set(PER_PREDICTION[Metric.PREDICTED_CLASS])


def test_the_monitor_publishes_its_window_figures(aws, lambda_context, capsys):
    event = json.loads((REPO / "shared" / "events" / "monitor-schedule.json").read_text())
    answer = monitor_app.lambda_handler(event, lambda_context)
    out = emitted(capsys.readouterr().out)

    assert answer["predictions"] == 0 and answer["drift"]["enough_data"] is False
    assert (NAMESPACE, Metric.WINDOW_PREDICTIONS.value, frozenset({SERVICE})) in out
    report = aws.s3.get_object(Bucket=aws.bucket, Key=answer["report_key"])
    assert json.loads(report["Body"].read())["drift"]["metric"] == "jensen_shannon_distance"


@pytest.mark.parametrize("metric", [m for m in Metric])
def test_every_named_metric_is_emitted_somewhere(metric):
    sources = [
        *(REPO / "functions").rglob("app.py"),
        *(REPO / "layers" / "classifier" / "classifier").rglob("*.py"),
    ]
    uses = sum(f"Metric.{metric.name}" in path.read_text() for path in sources if path.name != "metrics.py")
    assert uses, f"nothing emits {metric.value}"
