"""The shipped baseline model against ../shared/data/cifar10-test.zip: accuracy as its card says,
the double-normalisation regression, Keras/LiteRT agreement, size, and card consistency."""

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from classifier.cards import baseline_card
from classifier.errors import InputContractError
from classifier.evaluation import evaluate, predict_batched
from classifier.labels import LABEL_INDEX, LABELS
from classifier.litert import TFLiteModel
from tests.conftest import BASELINE_DIR, REPO

pytestmark = pytest.mark.model
CARD = baseline_card()
MAX_TFLITE_BYTES = 4 * 1024 * 1024


@pytest.fixture(scope="module")
def model():
    return TFLiteModel.from_path(BASELINE_DIR / "model.tflite", num_threads=2)


def test_card_describes_the_shipped_file():
    content = (BASELINE_DIR / "model.tflite").read_bytes()

    assert CARD["sha256"] == hashlib.sha256(content).hexdigest()
    assert CARD["tflite_bytes"] == len(content) <= MAX_TFLITE_BYTES
    assert CARD["labels"] == list(LABELS)
    for key in (
        "version",
        "parent_version",
        "per_class",
        "confusion_matrix",
        "training_data",
        "hyper_parameters",
        "training",
        "runtime_versions",
        "ece",
    ):
        assert key in CARD
    assert CARD["training_data"]["images"] == 50_000
    calibration = CARD["calibration"]
    assert calibration["ece_held_out_after"] < calibration["ece_held_out_before"] / 2


@pytest.mark.slow
def test_accuracy_on_the_test_set_is_at_least_the_card_figure(model, test_set):
    report = evaluate(model.predict, test_set.images, test_set.labels)

    assert report["accuracy"] >= CARD["accuracy"] - 0.005
    assert report["accuracy"] >= 0.90


def test_dog_images_get_a_high_dog_probability(model, test_set):
    """The Flask app's bug: images divided by 255 twice, every class near 10%."""
    dogs = test_set.images[test_set.labels == LABEL_INDEX["dog"]]

    probabilities = model.predict(dogs)

    assert probabilities[:, LABEL_INDEX["dog"]].mean() > 0.5


def test_pixels_divided_by_255_are_refused(model, test_set):
    with pytest.raises(InputContractError):
        model.predict(test_set.images[:4] / 255.0)
    with pytest.raises(InputContractError):
        model.predict((test_set.images[:4] / 255.0).astype(np.float32))


@pytest.mark.slow
def test_tflite_and_keras_agree_on_top1(model, test_set):
    import keras

    keras_model = keras.models.load_model(BASELINE_DIR / "model.keras")

    lite = predict_batched(model.predict, test_set.images).argmax(axis=1)
    reference = keras_model.predict(test_set.images, batch_size=500, verbose=0).argmax(axis=1)

    assert (lite == reference).mean() >= 0.995


def test_serving_modules_never_import_tensorflow():
    code = (
        "import sys, classifier.litert, classifier.preprocessing, classifier.evaluation, "
        "classifier.datasets; bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; "
        "sys.exit(f'imported {bad}' if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO / "layers" / "classifier",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr + result.stdout


def test_the_cards_note_on_the_data_format_is_what_the_files_are(test_zip):
    # libjpeg's standard luminance table scaled to quality 75 (scale 50%), and 4:2:0 sampling
    import io
    import zipfile

    from PIL import Image, JpegImagePlugin

    quality_75 = [8, 6, 5, 8, 12, 20, 26, 31]
    assert "quality 75" in CARD["data_notes"]["format"] and "4:2:0" in CARD["data_notes"]["format"]
    with zipfile.ZipFile(test_zip) as archive:
        names = [name for name in archive.namelist() if name.endswith(".jpg")][::500]
        for name in names:
            image = Image.open(io.BytesIO(archive.read(name)))
            assert list(image.quantization[0])[:8] == quality_75, name
            assert JpegImagePlugin.get_sampling(image) == 2, name  # 2 is 4:2:0
