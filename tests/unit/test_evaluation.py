import numpy as np
import pytest

from classifier.evaluation import (
    apply_temperature,
    evaluate,
    expected_calibration_error,
    fit_temperature,
    metrics,
)


def test_confusion_matrix_and_per_class_accuracy():
    labels = np.array([0, 0, 1, 1, 2])
    probabilities = np.eye(10)[[0, 1, 1, 1, 0]]

    report = metrics(probabilities, labels)

    assert report["accuracy"] == 3 / 5
    assert report["confusion_matrix"][0][:2] == [1, 1] and report["confusion_matrix"][2][0] == 1
    assert report["per_class"]["airplane"] == 0.5 and report["per_class"]["automobile"] == 1.0
    assert report["per_class"]["dog"] == 0.0  # no dog images: 0, not a division error


def test_ece_is_zero_when_confidence_matches_accuracy_and_large_when_not():
    labels = np.zeros(10, dtype=int)
    calibrated = np.full((10, 10), 0.0)
    calibrated[:, 0] = 0.8
    calibrated[:8, 1] = 0.2
    calibrated[8:, 0], calibrated[8:, 1] = 0.2, 0.8  # 8 of 10 right at 0.8 confidence
    overconfident = np.eye(10)[[0] * 5 + [1] * 5]

    assert expected_calibration_error(calibrated, labels) < 1e-9
    assert abs(expected_calibration_error(overconfident, labels) - 0.5) < 1e-9


def test_flip_tta_averages_the_mirror_image():
    images = np.zeros((2, 32, 32, 3), dtype=np.uint8)
    images[:, :, :16] = 255  # bright left half; the mirror is bright on the right

    def predict(batch):
        left_bright = batch[:, :, :16].mean(axis=(1, 2, 3)) > 128
        return np.eye(10)[np.where(left_bright, 0, 1)]

    assert evaluate(predict, images, np.zeros(2, int))["accuracy"] == 1.0
    assert evaluate(predict, images, np.zeros(2, int), tta=True)["mean_confidence"] == 0.5


def test_temperature_scaling_fixes_under_confidence_without_changing_predictions():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 10))
    calibrated = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(10, p=row) for row in calibrated])  # right exactly as often as claimed
    timid = apply_temperature(calibrated, 3.0)  # the same model, reported with a flattened softmax

    temperature = fit_temperature(timid, labels)

    fixed = apply_temperature(timid, temperature)
    assert temperature == pytest.approx(1 / 3, rel=0.1)
    assert (fixed.argmax(1) == timid.argmax(1)).all()
    assert expected_calibration_error(fixed, labels) < expected_calibration_error(timid, labels) / 3
