"""Classify request images with the serving model: decode each image, run the model once on the
stacked batch, keep the request's order. No AWS, no HTTP: handlers and benchmarks call these directly.
"""

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from classifier.api.model_provider import Predictor
from classifier.errors import ClassifierError, InvalidImageError
from classifier.labels import LABELS
from classifier.preprocessing import decode_image


@dataclass(frozen=True)
class ImageInput:
    """One encoded image from a request, with the name the caller gave it (file name, JSON ``name``)."""

    data: bytes
    name: str | None = None


@dataclass(frozen=True)
class Rejected:
    """A request item that cannot be classified, and why (a batch answers it with an error entry)."""

    name: str | None
    error: ClassifierError


@dataclass(frozen=True)
class Classification:
    name: str | None
    image_sha256: str
    image_bytes: int
    probabilities: np.ndarray  # float32 [10], label order
    decode_ms: float
    inference_ms: float  # the model call that covered this image (shared by a whole batch)
    batch_size: int
    pixels: np.ndarray  # uint8 (32, 32, 3): the model input, decoded once (kept in the record as a PNG)

    @property
    def label_index(self) -> int:
        return int(np.argmax(self.probabilities))

    @property
    def label(self) -> str:
        return LABELS[self.label_index]

    @property
    def confidence(self) -> np.float32:
        return self.probabilities[self.label_index]

    def top_k(self, k: int) -> list[tuple[str, np.float32]]:
        """The ``k`` most probable labels, most probable first (ties in label order)."""
        order = np.argsort(-self.probabilities, kind="stable")[:k]
        return [(LABELS[i], self.probabilities[i]) for i in order]


def classify(items: Sequence[ImageInput | Rejected], predictor: Predictor) -> list[Classification | Rejected]:
    """One result per item, in order. An image that cannot be decoded becomes :class:`Rejected`;
    the others go through the model in one call."""
    decoded: list[tuple[int, ImageInput, np.ndarray, float]] = []
    results: list[Classification | Rejected | None] = [None] * len(items)
    for position, item in enumerate(items):
        if isinstance(item, Rejected):
            results[position] = item
            continue
        start = time.perf_counter()
        try:
            pixels = decode_image(item.data)
        except InvalidImageError as error:
            results[position] = Rejected(item.name, error)
            continue
        decoded.append((position, item, pixels, (time.perf_counter() - start) * 1000))
    if decoded:
        start = time.perf_counter()
        probabilities = predictor.predict(np.stack([pixels for _, _, pixels, _ in decoded]))
        inference_ms = (time.perf_counter() - start) * 1000
        for row, (position, item, pixels, decode_ms) in enumerate(decoded):
            results[position] = Classification(
                name=item.name,
                image_sha256=hashlib.sha256(item.data).hexdigest(),
                image_bytes=len(item.data),
                probabilities=probabilities[row],
                decode_ms=decode_ms,
                inference_ms=inference_ms,
                batch_size=len(decoded),
                pixels=pixels,
            )
    return [result for result in results if result is not None]
