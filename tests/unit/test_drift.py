"""The monitor's figures: the drift score, its minimum window, confidence and feedback accuracy."""

import pytest

from classifier import clock, drift
from classifier.api import monitoring, records
from classifier.cards import baseline_card
from classifier.labels import LABELS
from classifier.settings import Settings
from tests.unit.test_records import make_record

REFERENCE = drift.reference_of(baseline_card())


def test_the_distance_is_zero_for_the_same_mix_and_one_for_no_class_in_common():
    assert drift.js_distance([1, 2, 3], [2, 4, 6]) == pytest.approx(0, abs=1e-9)
    assert drift.js_distance([1, 0], [0, 1]) == pytest.approx(1)


def test_traffic_like_the_test_set_does_not_drift_and_one_class_does():
    mix = [
        label for label, share in REFERENCE["class_distribution"].items() for _ in range(round(share * 1000))
    ]
    calm = drift.window_figures(mix, [0.9] * len(mix), [], REFERENCE)
    assert calm["drift"]["enough_data"] and not calm["drift"]["drifting"] and calm["drift"]["value"] < 0.01

    dogs = drift.window_figures(["dog"] * 600, [0.9] * 600, [], REFERENCE)
    assert dogs["drift"]["drifting"] and dogs["drift"]["value"] > 0.8


def test_a_small_window_says_not_enough_data_instead_of_guessing():
    figures = drift.window_figures(["dog"] * 50, [0.9] * 50, [], REFERENCE, min_window=500)
    assert figures["drift"]["drifting"] is False and figures["drift"]["enough_data"] is False
    assert "not enough data" in figures["drift"]["note"]


def test_confidence_and_feedback_figures():
    figures = drift.window_figures(["cat"] * 4, [0.2, 0.4, 0.6, 0.8], [True] * 7 + [False] * 3, REFERENCE)
    assert figures["mean_confidence"] == pytest.approx(0.5)
    assert figures["low_confidence_share"] == pytest.approx(0.5)
    assert figures["feedback"] == {"count": 10, "accuracy": pytest.approx(0.7)}
    assert 0 < figures["reference_low_confidence_share"] < 0.05  # the baseline is rarely unsure on CIFAR-10


def test_the_reference_of_an_old_card_comes_from_its_confusion_matrix():
    old = {key: value for key, value in baseline_card().items() if key != "reference"}
    derived = drift.reference_of(old)
    assert list(derived["class_distribution"]) == list(LABELS)
    assert derived["class_distribution"] == pytest.approx(REFERENCE["class_distribution"], abs=1e-3)


def test_a_window_is_the_records_of_its_hours_only(aws):
    # given records made an hour and a half ago, and now
    now = 2_000_000_000.0
    old = make_record(created_at=clock.utc_timestamp(now - 5400), label="cat")
    recent = [make_record(created_at=clock.utc_timestamp(now - 60 * i), label="dog") for i in range(1, 4)]
    for record in (old, *recent):
        records.store(aws.predictions, record)
    settings = Settings.from_env(
        {**aws.template.functions["PredictFunction"].environment, "MIN_WINDOW_PREDICTIONS": "3"}
    )

    # when the monitor judges the last hour
    figures = monitoring.report(aws.predictions, aws.models, aws.s3, settings, hours=1, now=now)

    # then it sees the three recent dogs, against the baseline's reference, and calls it drift
    assert figures["predictions"] == 3 and figures["class_distribution"]["dog"] == 1.0
    assert figures["model_version"] == baseline_card()["version"]
    assert figures["drift"]["drifting"] is True
    assert (
        monitoring.report(aws.predictions, aws.models, aws.s3, settings, hours=2, now=now)["predictions"] == 4
    )


@pytest.mark.parametrize("value", ["0", "-1", "abc", str(monitoring.MAX_WINDOW_HOURS + 1)])
def test_bad_hours_are_refused(value):
    from classifier.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError):
        monitoring.parse_hours(value, 1.0)
