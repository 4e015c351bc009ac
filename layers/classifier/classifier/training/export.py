"""Export: a trained ``.keras`` model to ``model.tflite`` (uint8 input) and its model card.

Keras 3 path: ``model.export()`` writes a SavedModel, ``TFLiteConverter.from_saved_model`` turns
it into ``.tflite``. Needs TensorFlow (training environment only).

Calibration: a softmax temperature fitted at export (``classifier.evaluation.calibrate``) undoes
the under-confidence that label smoothing leaves; it is baked into the exported graph.

Quantisation (measured on the shipped baseline, 5,000 test images, see its card):
- ``dynamic`` (default): int8 weights, float activations. Half the size of float16 and the
  fastest on one CPU thread; top-1 agrees with Keras on 99.7% of test images, accuracy +0.1
  points (noise).
- ``float16``: float16 weights, float32 compute; identical predictions, 2x the size, slower.
- ``int8``: weights and activations, ranges calibrated on training images. For the GELU
  baseline it was rejected: 98.8% agreement, and slower on the earlier machine it was measured on.
  With AVX-512 VNNI, ``bench.frontier --candidates`` finds it no faster than ``dynamic`` for
  GELU or ReLU (``--activation relu``) networks: LiteRT's dynamic-range kernels multiply in int8
  already.
"""

import datetime
import hashlib
import json
import platform
import tempfile
from pathlib import Path

import numpy as np

from classifier.clock import utc_now
from classifier.datasets import load_dataset
from classifier.drift import reference_figures
from classifier.evaluation import apply_temperature, calibrate, metrics, predict_batched
from classifier.labels import LABELS
from classifier.litert import TFLiteModel
from classifier.storage import CARD_NAME

QUANTIZATIONS = ("dynamic", "float16", "float32", "int8")
CARD_SCHEMA = 1
INT8_CALIBRATION_IMAGES = 500


def new_version(now: datetime.datetime | None = None) -> str:
    """A sortable version name: v + UTC timestamp."""
    now = now or datetime.datetime.now(datetime.UTC)
    return now.strftime("v%Y%m%d-%H%M%S")


def to_tflite(model, quantization: str = "dynamic", representative: np.ndarray | None = None) -> bytes:
    """The ``.tflite`` bytes of a Keras model. ``int8`` (full integer: weights and activations)
    needs ``representative`` uint8 images to fix the activation ranges (a few hundred training
    images; never the test set)."""
    import tensorflow as tf

    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}")
    if quantization == "int8" and (representative is None or not len(representative)):
        raise ValueError("int8 quantisation needs representative images")
    with tempfile.TemporaryDirectory() as tmp:
        model.export(tmp, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        if quantization != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantization == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if quantization == "int8":
            converter.representative_dataset = lambda: ([image[None]] for image in representative)
        return converter.convert()


def runtime_versions() -> dict:
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for name in ("keras", "tensorflow", "ai_edge_litert", "PIL"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        versions[name] = getattr(module, "__version__", "unknown")
    return versions


def export_model(
    model_path: str | Path,
    out_dir: str | Path,
    test_data: str | Path,
    quantization: str = "dynamic",
    version: str | None = None,
    parent: str | None = None,
    calibration_data: str | Path | None = None,
) -> dict:
    """Write ``model.tflite``, ``model.keras`` (float32, calibrated) and ``card.json`` to
    ``out_dir``; return the card. The softmax temperature is fitted on half of the test set
    (top-1 never changes); the training record (``training.json`` beside ``model_path``) goes
    into the card when present. ``int8`` calibrates its activation ranges on
    ``INT8_CALIBRATION_IMAGES`` images of ``calibration_data`` (a training set)."""
    if quantization == "int8" and calibration_data is None:
        raise ValueError("int8 export needs calibration_data: a training set, not the test set")
    import keras

    from classifier.training.trainer import float32_copy

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    trained = float32_copy(keras.models.load_model(model_path))
    test = load_dataset(test_data, "test")  # nosec B615  # classifier.datasets, not Hugging Face
    keras_raw = trained.predict(test.images, batch_size=500, verbose=0)
    calibration = calibrate(keras_raw, test.labels)
    model = float32_copy(trained, calibration["temperature"])
    representative = None
    if quantization == "int8":
        calibration_set = load_dataset(calibration_data)  # nosec B615  # classifier.datasets, not Hugging Face
        representative = calibration_set.sample(INT8_CALIBRATION_IMAGES).images
    content = to_tflite(model, quantization, representative)
    (out_dir / "model.tflite").write_bytes(content)
    model.save(out_dir / "model.keras")

    lite = TFLiteModel(content, num_threads=2)
    lite_probabilities = predict_batched(lite.predict, test.images)
    keras_probabilities = apply_temperature(keras_raw, calibration["temperature"])
    flip_probabilities = predict_batched(lite.predict, test.images, tta=True)
    training_path = Path(model_path).with_name("training.json")
    training = json.loads(training_path.read_text()) if training_path.exists() else {}
    card = {
        "schema": CARD_SCHEMA,
        "version": version or new_version(),
        "parent_version": parent,
        "created_at": utc_now(),
        "labels": list(LABELS),
        "input": {"dtype": "uint8", "shape": [None, 32, 32, 3], "normalisation": "inside the model"},
        **metrics(lite_probabilities, test.labels),
        # what it predicts on the base test set: the monitor's reference (classifier.drift)
        "reference": reference_figures(lite_probabilities),
        "accuracy_flip_tta": metrics(flip_probabilities, test.labels)["accuracy"],
        "keras_accuracy": float((keras_probabilities.argmax(1) == test.labels).mean()),
        "keras_top1_agreement": float((keras_probabilities.argmax(1) == lite_probabilities.argmax(1)).mean()),
        "calibration": calibration,
        "test_data": {"source": Path(str(test_data)).name, **test.manifest()},
        "training_data": training.get("data"),
        "hyper_parameters": training.get("hyper_parameters"),
        "training": {
            key: training.get(key)
            for key in (
                "training_seconds",
                "device",
                "backend",
                "keras",
                "command",
                "parent",
                "teacher",
                "teacher_files",
            )
        }
        | {
            "epochs": len(training.get("history", [])),
            "final_train_accuracy": (training.get("history") or [{}])[-1].get("accuracy"),
        },
        "parameters": int(model.count_params()),
        "quantization": quantization,
        "tflite_bytes": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "runtime_versions": runtime_versions(),
    }
    (out_dir / CARD_NAME).write_text(json.dumps(card, indent=1) + "\n")
    return card
