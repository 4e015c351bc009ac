"""What the models routes answer, on top of the registry: GET /models, GET /models/{version} and
POST /models/{version}/promote, as plain functions of the registry table (and S3 for cards).

The rules:

- the baseline shipped in the layer is always a version, listed even when the registry holds no item
  for it, and it serves while the registry has no pointer;
- exactly one version is ``current``: the pointer's, or the baseline's without one;
- a version the gate rejected is promoted only with ``force``: overriding the gate is deliberate,
  never an accident.
"""

from typing import Any

from classifier import storage
from classifier.cards import baseline_card, parse_card
from classifier.errors import ConflictError
from classifier.mlops import registry

SHIPPED = "(shipped in the layer)"  # where the baseline's artifacts are, instead of an S3 key


def baseline_entry(card: dict | None = None) -> dict:
    """The registry entry of the shipped baseline, from its card."""
    card = card or baseline_card()
    entry = registry.version_item(card, registry.ModelStatus.BASELINE)
    return {**entry, "tflite_key": SHIPPED, "card_key": SHIPPED}


def current_version(models: Any) -> str:
    """The version serving now: the pointer's, or the baseline's when there is none."""
    pointer = registry.read_pointer(models)
    return pointer.version if pointer else baseline_card()["version"]


def list_models(models: Any) -> dict:
    """Every version, newest first, the baseline among them, each flagged ``current`` or not."""
    versions = registry.list_versions(models)
    baseline = baseline_card()
    if not any(v["version"] == baseline["version"] for v in versions):
        versions.append(baseline_entry(baseline))
    current = current_version(models)
    for version in versions:
        version["current"] = version["version"] == current
    return {"current_version": current, "versions": versions}


def get_model(models: Any, s3: Any, bucket: str, version: str) -> dict:
    """One version's entry with its whole card (the baseline's from the layer, others' from S3)."""
    baseline = baseline_card()
    if version == baseline["version"]:
        entry, card = baseline_entry(baseline), baseline
    else:
        entry = registry.get_version(models, version)
        key = storage.model_key(version, storage.CARD_NAME)
        card = parse_card(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    return {**entry, "current": version == current_version(models), "card": card}


def promote(models: Any, version: str, *, force: bool = False) -> dict:
    """Point serving at ``version`` (a promotion or a rollback); ConflictError (409) for a rejected
    version without ``force``, or when the pointer moved meanwhile."""
    target = registry.get_version(models, version)
    if target["status"] == registry.ModelStatus.REJECTED and not force:
        raise ConflictError(
            f"{version} was rejected by the gate ({target.get('reason', 'no reason recorded')}); "
            'send {"force": true} to promote it anyway.'
        )
    pointer = registry.read_pointer(models)
    previous = pointer.version if pointer else baseline_card()["version"]
    registry.promote(models, version, expected_current=pointer.version if pointer else None)
    return {"current_version": version, "previous_version": previous}
