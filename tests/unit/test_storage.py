"""The S3 layout, built in one place."""

import pytest

from classifier import storage


def test_keys_follow_the_documented_layout():
    assert storage.model_key("v3") == "models/v3/model.tflite"
    assert storage.model_key("v3", storage.CARD_NAME) == "models/v3/card.json"
    assert storage.dataset_key("test.zip") == "datasets/base/test.zip"
    assert storage.training_data_key("dog", "ab" * 32, ".jpg") == f"training-data/dog/{'ab' * 32}.jpg"
    assert storage.upload_key("u1", "report.json") == "uploads/u1/report.json"
    assert storage.checkpoint_key("job-1", "epoch-3.keras") == "checkpoints/job-1/epoch-3.keras"


@pytest.mark.parametrize("version", ["", "a/b", "..", "."])
def test_a_segment_cannot_escape_its_folder(version):
    with pytest.raises(ValueError):
        storage.model_key(version)


def test_training_data_labels_are_the_ten_classes():
    with pytest.raises(ValueError):
        storage.training_data_key("dragon", "00", "jpg")
