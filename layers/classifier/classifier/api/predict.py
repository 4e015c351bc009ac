"""The predict and batch use cases: classify, record, answer. Handlers pass in the serving model and
the predictions table (from their cached getters); tests pass their own.

A response is the stored record (JSON numbers) plus ``top_k`` and ``stored``, without the kept model
input (``input_png``: the record has it, ``GET /predictions/{id}`` returns it; the caller sent the image). ``stored: false``
means the record could not be written after retries: the prediction is still answered and the full
record is in the function's log (``prediction_record``) for recovery.
"""

from collections.abc import Sequence
from typing import Any

from classifier import clock
from classifier.api import records
from classifier.api.inference import Classification, ImageInput, Rejected, classify
from classifier.api.model_provider import ServedModel
from classifier.api.records import PredictionRecord
from classifier.aws.codec import to_json
from classifier.errors import error_body
from classifier.preprocessing import encode_png
from classifier.settings import get_settings

ANSWER_LEAVES_OUT = frozenset({"input_png"})  # record fields the predict answers do not repeat


def predict_one(
    image: ImageInput,
    *,
    top_k: int,
    model: ServedModel,
    table: Any,
    owner: str | None = None,
    keep_input: bool | None = None,
) -> dict[str, Any]:
    """POST /predict: one image. An image that cannot be decoded raises its InvalidImageError.
    ``keep_input`` (default: the ``KEEP_MODEL_INPUTS`` setting) keeps the model input in the record."""
    (result,) = classify([image], model.predictor)
    if isinstance(result, Rejected):
        raise result.error
    keep = get_settings().keep_model_inputs if keep_input is None else keep_input
    record = make_record(result, model, source="single", batch_id=None, owner=owner, keep_input=keep)
    stored = records.store(table, record)
    return answer(record, result, top_k=top_k, stored=stored)


def predict_batch(
    items: Sequence[ImageInput | Rejected],
    *,
    top_k: int,
    model: ServedModel,
    table: Any,
    owner: str | None = None,
    keep_input: bool | None = None,
) -> dict[str, Any]:
    """POST /predict/batch: one model call for every decodable image; an entry per item, in order."""
    results = classify(items, model.predictor)
    batch_id = records.new_id()
    keep = get_settings().keep_model_inputs if keep_input is None else keep_input
    made = {
        position: make_record(result, model, source="batch", batch_id=batch_id, owner=owner, keep_input=keep)
        for position, result in enumerate(results)
        if isinstance(result, Classification)
    }
    stored = dict(zip(made, records.store_many(table, list(made.values())), strict=True))
    entries = [
        {"index": position, **answer(made[position], result, top_k=top_k, stored=stored[position])}
        if isinstance(result, Classification)
        else {"index": position, "name": result.name, **error_body(result.error)}
        for position, result in enumerate(results)
    ]
    classified = [result for result in results if isinstance(result, Classification)]
    return {
        "batch_id": batch_id,
        "model_version": model.version,
        "count": len(results),
        "succeeded": len(classified),
        "failed": len(results) - len(classified),
        "stored": all(stored.values()),
        "timings_ms": {
            "decode": round(sum(result.decode_ms for result in classified), 3),
            "inference": round(classified[0].inference_ms, 3) if classified else 0.0,
        },
        "results": entries,
    }


def make_record(
    result: Classification,
    model: ServedModel,
    *,
    source: str,
    batch_id: str | None,
    owner: str | None = None,
    keep_input: bool = True,
) -> PredictionRecord:
    """The record of one classification; with ``keep_input``, its model input as a PNG (``input_png``),
    from the pixels the model saw (no second decode)."""
    return PredictionRecord(
        id=records.new_id(),
        created_at=clock.utc_now(),
        label=result.label,
        label_index=result.label_index,
        confidence=result.confidence,
        probabilities=records.probabilities_by_label(result.probabilities),
        model_version=model.version,
        model_sha256=model.sha256,
        image_sha256=result.image_sha256,
        image_bytes=result.image_bytes,
        image_name=result.name,
        source=source,
        batch_id=batch_id,
        latency_ms=round(result.decode_ms + result.inference_ms, 3),
        timings_ms={"decode": round(result.decode_ms, 3), "inference": round(result.inference_ms, 3)},
        owner=owner,
        input_png=encode_png(result.pixels) if keep_input else None,
    )


def answer(record: PredictionRecord, result: Classification, *, top_k: int, stored: bool) -> dict[str, Any]:
    body = to_json(
        {
            key: value
            for key, value in vars(record).items()
            if value is not None and key not in ANSWER_LEAVES_OUT
        }
    )
    body["top_k"] = [{"label": label, "probability": to_json(p)} for label, p in result.top_k(top_k)]
    body["stored"] = stored
    return body
