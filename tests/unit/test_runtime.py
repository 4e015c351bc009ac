"""The LiteRT wrapper: uint8 in, probabilities out; floats refused (the double-normalisation
bug made impossible)."""

import hashlib

import numpy as np
import pytest

from classifier.errors import InputContractError, ModelLoadError
from classifier.litert import TFLiteModel
from tests.conftest import BASELINE_DIR

MODEL_PATH = BASELINE_DIR / "model.tflite"


@pytest.fixture(scope="module")
def model():
    return TFLiteModel.from_path(MODEL_PATH)


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_uint8_batches_give_probabilities(model, batch):
    images = np.random.default_rng(batch).integers(0, 256, (batch, 32, 32, 3), dtype=np.uint8)

    probabilities = model.predict(images)

    assert probabilities.shape == (batch, 10) and probabilities.dtype == np.float32
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)


def test_scaled_floats_are_refused_with_an_explanation(model):
    scaled = np.random.default_rng(0).random((1, 32, 32, 3)).astype(np.float32)

    with pytest.raises(InputContractError, match="uint8") as raised:
        model.predict(scaled)
    assert "normalises them itself" in str(raised.value)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((32, 32, 3), np.uint8),
        np.zeros((1, 28, 28, 3), np.uint8),
        np.zeros((0, 32, 32, 3), np.uint8),
        [[0] * 3],
    ],
)
def test_wrong_shapes_are_refused(model, bad):
    with pytest.raises(InputContractError):
        model.predict(bad)


def test_from_bytes_checks_the_sha256():
    content = MODEL_PATH.read_bytes()

    assert (
        TFLiteModel.from_bytes(content, hashlib.sha256(content).hexdigest()).sha256
        == hashlib.sha256(content).hexdigest()
    )
    with pytest.raises(ModelLoadError, match="checksum"):
        TFLiteModel.from_bytes(content, "0" * 64)


def test_garbage_is_not_a_model():
    with pytest.raises(ModelLoadError):
        TFLiteModel.from_bytes(b"definitely not a flatbuffer" * 10)
