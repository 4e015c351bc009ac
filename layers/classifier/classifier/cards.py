"""Model cards (``card.json``): read in one place, whether shipped in the layer or kept in S3.

Every exported model travels with its card (see :func:`classifier.training.export.export_model`):
version, parent, test accuracy overall and per class, confusion matrix, training data manifest,
hyper-parameters, runtime versions and the sha256 of the ``.tflite``.
"""

import json
from functools import cache
from pathlib import Path
from typing import Any

from classifier.errors import ModelLoadError
from classifier.storage import CARD_NAME, TFLITE_NAME

# The baseline model shipped in the layer (model.tflite + card.json), served when the registry names none.
BASELINE_DIR = Path(__file__).resolve().parent / "baseline"


def parse_card(content: bytes | str) -> dict[str, Any]:
    """A card from its JSON text; anything but a JSON object is a :class:`ModelLoadError`."""
    try:
        card = json.loads(content)
    except ValueError as error:
        raise ModelLoadError(f"The model card is not valid JSON: {error}") from error
    if not isinstance(card, dict):
        raise ModelLoadError("The model card is not a JSON object.")
    return card


def read_card(directory: Path) -> dict[str, Any]:
    """The card beside a model in ``directory``."""
    try:
        return parse_card((directory / CARD_NAME).read_bytes())
    except OSError as error:
        raise ModelLoadError(f"The model card in {directory} cannot be read: {error}") from error


def tflite_path(directory: Path) -> Path:
    return directory / TFLITE_NAME


@cache
def baseline_card() -> dict[str, Any]:
    """The shipped baseline's card (read once per process)."""
    return read_card(BASELINE_DIR)
