"""POST /predictions/{prediction_id}/feedback: the caller says what the image really shows.

The feedback (``label``, ``correct`` = label == predicted, ``given_at``, ``by`` = the giver's key id)
is written onto the prediction record conditionally (:func:`classifier.api.records.write_feedback`):

- the same label again is idempotent: 200 with the same answer, nothing written (and the training
  image made sure of, so a first attempt that stopped after the record write is completed);
- a different label replaces the earlier one only with ``replace``, else 409 ``conflict``; the
  feedback then lists the labels it replaced (``replaced``), so that a repeat of the request also
  finishes moving the image if the first attempt stopped before the old one was taken off;
- a concurrent write between the read and the write fails the condition, and the request is decided
  again on what that write left.

Only the record's owner or an operator may give it; a client gets 404 for another owner's record,
as for a record that does not exist.

The record is the truth and is written first; the training data follows from it. With a kept model
input (``input_png``), the feedback's label makes that input a training image of the label
(:func:`classifier.mlops.training_data.add_feedback_image`), and a replaced label moves it. Without
one (``KEEP_MODEL_INPUTS`` off when the prediction was made) the feedback is still recorded and the
answer says no image was added.
"""

from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from classifier import clock
from classifier.api import records
from classifier.api.bodies import FeedbackRequest
from classifier.api.callers import Caller
from classifier.errors import ConflictError, RequestShapeError
from classifier.metrics import MODEL_VERSION, Metric
from classifier.mlops import training_data

WRITE_ATTEMPTS = 3  # reads and conditional writes before a request racing other writers gives up


@dataclass(frozen=True)
class FeedbackOutcome:
    answer: dict[str, Any]  # the JSON answer
    written: bool  # False: the same feedback was already there (nothing changed)
    correct: bool
    model_version: str


def give_feedback(
    table: Any, s3: Any, bucket: str, prediction_id: str, request: FeedbackRequest, caller: Caller
) -> FeedbackOutcome:
    owner = None if caller.is_operator else caller.key_id
    for _ in range(WRITE_ATTEMPTS):
        item = records.read_item(table, prediction_id, owner=owner, consistent=True)
        label = true_label(request, item["label"])
        existing = item.get(records.FEEDBACK_ATTRIBUTE)
        if existing is not None and existing["label"] == label:
            image = _keep_image(s3, bucket, item)
            _release_replaced(s3, bucket, item)
            return _outcome(item, image, written=False)
        if existing is not None and not request.replace:
            raise ConflictError(
                f"This prediction already has feedback with label {existing['label']!r}; "
                'send {"replace": true} with the new label to replace it.'
            )
        feedback = {
            "label": label,
            "correct": label == item["label"],
            "given_at": clock.utc_now(),
            "by": caller.key_id,
        }
        if existing is not None:
            earlier = [*existing.get("replaced", []), existing["label"]]
            feedback["replaced"] = [old for old in dict.fromkeys(earlier) if old != label]
        try:
            updated = records.write_feedback(
                table,
                prediction_id,
                feedback,
                previous_label=existing["label"] if existing is not None else None,
            )
        except records.FeedbackChangedError:
            continue  # another request wrote feedback since the read: decide again on what it wrote
        image = _keep_image(s3, bucket, updated)
        _release_replaced(s3, bucket, updated)
        return _outcome(updated, image, written=True)
    raise ConflictError("The prediction's feedback kept changing while this request was written; retry.")


def true_label(request: FeedbackRequest, predicted: str) -> str:
    """The label the feedback gives: ``label``, or the predicted one for ``correct: true``; a
    ``correct`` that contradicts ``label`` is refused."""
    label = request.label if request.label is not None else predicted
    if request.correct is not None and request.correct != (label == predicted):
        raise RequestShapeError(
            f'"correct": {str(request.correct).lower()} contradicts "label": {label!r} '
            f"(the prediction is {predicted!r})."
        )
    return label


def _keep_image(s3: Any, bucket: str, item: dict) -> dict[str, Any]:
    """Make the record's kept input a training image of its feedback's label; what the answer says."""
    png = item.get(records.INPUT_ATTRIBUTE)
    if png is None:
        return {"added": False, "reason": "the prediction kept no model input (KEEP_MODEL_INPUTS was off)"}
    feedback = item[records.FEEDBACK_ATTRIBUTE]
    key = training_data.add_feedback_image(
        s3,
        bucket,
        feedback["label"],
        bytes(png),
        {
            "prediction_id": item["id"],
            "owner": item.get("owner"),
            "label": feedback["label"],
            "predicted_label": item["label"],
            "model_version": item["model_version"],
            "given_at": feedback["given_at"],
            "by": feedback["by"],
        },
    )
    return {"added": True, "label": feedback["label"], "key": key}


def _release_replaced(s3: Any, bucket: str, item: dict) -> None:
    """Take this prediction's claim off the training image of every label its feedback replaced
    (idempotent: a claim already taken off is a no-op), after the current label's image is kept."""
    png = item.get(records.INPUT_ATTRIBUTE)
    if png is None:
        return
    png = bytes(png)
    for old in item[records.FEEDBACK_ATTRIBUTE].get("replaced", []):
        key = training_data.feedback_image_key(old, png)
        training_data.remove_feedback_image(s3, bucket, key, item["id"], png)


def _outcome(item: dict, image: dict, *, written: bool) -> FeedbackOutcome:
    record = records.from_item(item)
    feedback = record[records.FEEDBACK_ATTRIBUTE]
    answer = {
        "id": record["id"],
        "predicted_label": record["label"],
        "model_version": record["model_version"],
        "feedback": feedback,
        "training_image": image,
    }
    return FeedbackOutcome(answer, written, bool(feedback["correct"]), record["model_version"])


def emit_agreement(outcome: FeedbackOutcome) -> None:
    """``FeedbackCorrect`` or ``FeedbackWrong`` (one count, dimension ``ModelVersion`` = the version
    that made the prediction) for feedback just written; a repeat emits nothing. A replaced label
    emits again, for its new verdict."""
    if not outcome.written:
        return
    name = Metric.FEEDBACK_CORRECT if outcome.correct else Metric.FEEDBACK_WRONG
    with single_metric(name=str(name), unit=MetricUnit.Count, value=1) as metric:
        metric.add_dimension(name=MODEL_VERSION, value=outcome.model_version)
