"""The LiteRT runtime used by serving: a ``.tflite`` model that maps a ``uint8`` batch
[N, 32, 32, 3] to probabilities [N, 10].

The input contract is enforced, not guessed: a float array (for instance pixels already divided
by 255) is refused with :class:`classifier.errors.InputContractError`. Scaling happens inside
the model's graph, so there is exactly one place where pixels are normalised.

Imports only numpy and ``ai_edge_litert``: never TensorFlow.
"""

import hashlib
import os
import threading
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from classifier.errors import InputContractError, ModelLoadError
from classifier.labels import NUM_CLASSES
from classifier.limits import CHANNELS, IMAGE_SIZE

INPUT_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, CHANNELS)


class TFLiteModel:
    """A loaded ``.tflite`` classifier. Thread-safe: one interpreter, calls serialised."""

    def __init__(self, content: bytes, num_threads: int = 1):
        self.sha256 = hashlib.sha256(content).hexdigest()
        self.size_bytes = len(content)
        try:
            self._interpreter = Interpreter(model_content=content, num_threads=num_threads)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise ModelLoadError(f"Not a loadable .tflite model: {error}") from error
        (self._input,) = self._interpreter.get_input_details()
        (self._output,) = self._interpreter.get_output_details()
        if self._input["dtype"] != np.uint8 or tuple(self._input["shape"][1:]) != INPUT_SHAPE:
            raise ModelLoadError(
                f"The model takes {self._input['dtype'].__name__} {tuple(self._input['shape'])}; "
                f"serving needs uint8 (N, {', '.join(map(str, INPUT_SHAPE))})."
            )
        if self._output["shape"][-1] != NUM_CLASSES:
            raise ModelLoadError(f"The model has {self._output['shape'][-1]} outputs, not {NUM_CLASSES}.")
        self._batch = int(self._input["shape"][0])
        self._lock = threading.Lock()

    @classmethod
    def from_path(cls, path: str | os.PathLike, num_threads: int = 1) -> "TFLiteModel":
        return cls(Path(path).read_bytes(), num_threads)

    @classmethod
    def from_bytes(
        cls, content: bytes, expected_sha256: str | None = None, num_threads: int = 1
    ) -> "TFLiteModel":
        """Load ``content``, refusing it unless its sha256 equals ``expected_sha256`` (when given)."""
        if expected_sha256 is not None:
            actual = hashlib.sha256(content).hexdigest()
            if actual != expected_sha256:
                raise ModelLoadError(f"Model checksum mismatch: expected {expected_sha256}, got {actual}.")
        return cls(content, num_threads)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Probabilities (float32, [N, 10], rows sum to 1) for a uint8 batch [N, 32, 32, 3]."""
        images = check_input(images)
        with self._lock:
            if len(images) != self._batch:
                self._interpreter.resize_tensor_input(self._input["index"], (len(images), *INPUT_SHAPE))
                self._interpreter.allocate_tensors()
                self._batch = len(images)
            self._interpreter.set_tensor(self._input["index"], images)
            self._interpreter.invoke()
            return self._interpreter.get_tensor(self._output["index"]).copy()


def check_input(images: np.ndarray) -> np.ndarray:
    """Return ``images`` as a C-contiguous uint8 batch, or raise InputContractError."""
    if not isinstance(images, np.ndarray):
        raise InputContractError(f"Expected a numpy uint8 array, got {type(images).__name__}.")
    if images.dtype != np.uint8:
        raise InputContractError(
            f"The model takes raw uint8 pixels (0-255) and normalises them itself; got {images.dtype}. "
            "Do not scale or normalise images before prediction: pass the output of "
            "classifier.preprocessing.decode_image unchanged."
        )
    if images.ndim != 4 or images.shape[1:] != INPUT_SHAPE or len(images) == 0:
        raise InputContractError(
            f"Expected a batch of shape (N, {', '.join(map(str, INPUT_SHAPE))}) with N >= 1, got {images.shape}."
        )
    return np.ascontiguousarray(images)
