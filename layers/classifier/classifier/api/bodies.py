"""Request bodies and parameters of the predict routes, turned into :class:`ImageInput` items.

Accepted bodies (the Content-Type header decides, nothing is sniffed):

- ``image/*``: the raw image (API Gateway base64-encodes it: ``image/*`` is a binary media type);
- ``multipart/form-data``: field ``file`` (POST /predict) or repeated ``files`` (POST /predict/batch,
  which also takes ``file``), what a browser form or ``curl -F`` sends;
- ``application/json``: ``{"image": "<base64>"}``, or ``{"images": [{"name": ..., "image": ...}]}`` for
  a batch. A ``data:image/...;base64,`` prefix is accepted.

Decoding (base64, JSON, multipart) is :mod:`classifier.payloads`, shared with the MLOps routes. Every
rejection is a typed :class:`~classifier.errors.RequestError`.
"""

from dataclasses import dataclass
from typing import Any

from classifier.api.callers import Caller
from classifier.api.inference import ImageInput, Rejected
from classifier.api.records import ListFilter
from classifier.errors import (
    InvalidBase64Error,
    InvalidParameterError,
    RequestShapeError,
    TooManyImagesError,
    UnsupportedMediaTypeError,
)
from classifier.labels import LABEL_INDEX, LABELS, NUM_CLASSES
from classifier.limits import DEFAULT_LIST_LIMIT, DEFAULT_TOP_K, MAX_BATCH_IMAGES, MAX_LIST_LIMIT
from classifier.payloads import (
    bounded_int,
    decode_base64,
    is_json,
    media_type,
    parse_json,
    parse_json_object,
    parse_multipart,
)

_ACCEPTED_SINGLE = 'image/*, multipart/form-data (field \'file\') or application/json ({"image": "<base64>"})'
_ACCEPTED_BATCH = (
    "multipart/form-data (repeated field 'files'), application/json "
    '({"images": [{"name": ..., "image": "<base64>"}]}) or a single image/*'
)


def parse_image(body: bytes, content_type: str | None) -> ImageInput:
    """The one image of a POST /predict body."""
    kind = media_type(content_type)
    if kind.startswith("image/"):
        return ImageInput(body)
    if kind == "multipart/form-data":
        files = [part for part in parse_multipart(body, content_type or "") if part.field == "file"]
        if len(files) != 1:
            raise RequestShapeError(
                f"Send exactly one form field named 'file' (found {len(files)}); "
                "for several images use POST /predict/batch with fields named 'files'."
            )
        return ImageInput(files[0].data, files[0].filename)
    if is_json(kind):
        document = parse_json(body)
        if not isinstance(document, dict) or not isinstance(document.get("image"), str):
            raise RequestShapeError('The JSON body must be an object {"image": "<base64>"}.')
        name = document.get("name")
        return ImageInput(decode_base64(document["image"], "image"), name if isinstance(name, str) else None)
    raise UnsupportedMediaTypeError(
        f"Content-Type {kind or '(none)'!r} is not accepted; send {_ACCEPTED_SINGLE}."
    )


def parse_images(body: bytes, content_type: str | None) -> list[ImageInput | Rejected]:
    """The images of a POST /predict/batch body, in order. An item that is not an image at all
    (a JSON entry without ``image``, broken base64) is :class:`Rejected`; it does not fail the rest."""
    kind = media_type(content_type)
    if kind.startswith("image/"):
        return [ImageInput(body)]
    if kind == "multipart/form-data":
        files = [
            part for part in parse_multipart(body, content_type or "") if part.field in ("files", "file")
        ]
        _check_count(len(files))
        return [ImageInput(part.data, part.filename) for part in files]
    if is_json(kind):
        document = parse_json(body)
        if not isinstance(document, dict) or not isinstance(document.get("images"), list):
            raise RequestShapeError(
                'The JSON body must be an object {"images": [{"name": ..., "image": "<base64>"}]}.'
            )
        _check_count(len(document["images"]))
        return [_json_item(entry, position) for position, entry in enumerate(document["images"])]
    raise UnsupportedMediaTypeError(
        f"Content-Type {kind or '(none)'!r} is not accepted; send {_ACCEPTED_BATCH}."
    )


def parse_top_k(value: str | None) -> int:
    return bounded_int("top_k", value, DEFAULT_TOP_K, NUM_CLASSES)


def parse_owner(caller: Caller, value: str | None) -> str | None:
    """Whose records GET /predictions lists: a client's own; an operator's choice (``owner=<key id>``),
    or everyone's (None) without one. A client naming another owner is refused (403)."""
    if caller.is_operator:
        return value or None
    if value and value != caller.key_id:
        caller.require_operator("list another owner's predictions")
    return caller.key_id


def parse_limit(value: str | None) -> int:
    return bounded_int("limit", value, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)


def parse_list_filter(label: str | None, has_feedback: str | None, wrong: str | None) -> ListFilter:
    """GET /predictions's filters: ``label`` (the predicted class), ``has_feedback`` and ``wrong``
    (``true`` or ``false``); anything else is 400 ``invalid_parameter``."""
    if label is not None and label not in LABEL_INDEX:
        raise InvalidParameterError(f"label must be one of {', '.join(LABELS)}, not {label!r}.")
    return ListFilter(label, _flag("has_feedback", has_feedback), _flag("wrong", wrong))


def _flag(name: str, value: str | None) -> bool | None:
    if value is None:
        return None
    if value not in ("true", "false"):
        raise InvalidParameterError(f"{name} must be true or false, not {value!r}.")
    return value == "true"


@dataclass(frozen=True)
class FeedbackRequest:
    label: str | None  # the true class, or None with correct=True (the predicted one)
    correct: bool | None
    replace: bool = False


def parse_feedback(body: bytes, content_type: str | None) -> FeedbackRequest:
    """A POST /predictions/{id}/feedback body: ``{"label": "cat"}`` (the true class) or
    ``{"correct": true}``, with ``"replace": true`` to replace earlier feedback with another label."""
    kind = media_type(content_type)
    if not is_json(kind):
        raise UnsupportedMediaTypeError(
            f'Content-Type {kind or "(none)"!r} is not accepted; send application/json ({{"label": "cat"}}).'
        )
    document = parse_json_object(body)
    unknown = set(document) - {"label", "correct", "replace"}
    if unknown:
        raise RequestShapeError(f"Unknown fields {sorted(unknown)}; allowed: label, correct, replace.")
    label, correct, replace = document.get("label"), document.get("correct"), document.get("replace", False)
    if label is not None and (not isinstance(label, str) or label not in LABEL_INDEX):
        raise RequestShapeError(f"Unknown label {label!r}; use one of {', '.join(LABELS)}.")
    if correct is not None and not isinstance(correct, bool):
        raise RequestShapeError(f'"correct" must be true or false, not {correct!r}.')
    if not isinstance(replace, bool):
        raise RequestShapeError(f'"replace" must be true or false, not {replace!r}.')
    if label is None and correct is not True:
        raise RequestShapeError(
            'Send the true class, {"label": "cat"}, or {"correct": true} if the prediction was right.'
        )
    return FeedbackRequest(label, correct, replace)


def _check_count(count: int) -> None:
    if count == 0:
        raise RequestShapeError("The request holds no images.")
    if count > MAX_BATCH_IMAGES:
        raise TooManyImagesError(
            f"The request holds {count} images; the limit is {MAX_BATCH_IMAGES} per request."
        )


def _json_item(entry: Any, position: int) -> ImageInput | Rejected:
    name = entry.get("name") if isinstance(entry, dict) else None
    name = name if isinstance(name, str) else None
    if not isinstance(entry, dict) or not isinstance(entry.get("image"), str):
        return Rejected(
            name,
            RequestShapeError(f'Item {position} must be an object {{"name": ..., "image": "<base64>"}}.'),
        )
    try:
        return ImageInput(decode_base64(entry["image"], f"image of item {position}"), name)
    except InvalidBase64Error as error:
        return Rejected(name, error)
