"""HTTP request bodies and parameters of the predict routes, turned into :class:`ImageInput` items.

Accepted bodies (the Content-Type header decides, nothing is sniffed):

- ``image/*``: the raw image (API Gateway base64-encodes it: ``image/*`` is a binary media type);
- ``multipart/form-data``: field ``file`` (POST /predict) or repeated ``files`` (POST /predict/batch,
  which also takes ``file``), what a browser form or ``curl -F`` sends;
- ``application/json``: ``{"image": "<base64>"}``, or ``{"images": [{"name": ..., "image": ...}]}`` for
  a batch. A ``data:image/...;base64,`` prefix is accepted.

Multipart bodies are parsed with the standard library's ``email`` parser (RFC 2046 MIME, the format
``multipart/form-data`` is defined in): no third-party dependency in the layer, no ``cgi`` (removed in
Python 3.13). Every rejection is a typed :class:`~classifier.errors.RequestError`.
"""

import base64
import binascii
import json
import re
from dataclasses import dataclass
from email import policy
from email.parser import BytesParser
from typing import Any

from classifier.errors import (
    ClassifierError,
    EmptyBodyError,
    InvalidBase64Error,
    InvalidJsonError,
    InvalidParameterError,
    PayloadTooLargeError,
    RequestShapeError,
    TooManyImagesError,
    UnsupportedMediaTypeError,
)
from classifier.inference import ImageInput, Rejected
from classifier.labels import NUM_CLASSES
from classifier.limits import (
    DEFAULT_LIST_LIMIT,
    DEFAULT_TOP_K,
    MAX_BATCH_IMAGES,
    MAX_LIST_LIMIT,
    MAX_PAYLOAD_BYTES,
)

_DATA_URL = re.compile(r"^data:[^,;]*(;[^,;=]+=[^,;]*)*;base64,", re.IGNORECASE)
_ACCEPTED_SINGLE = 'image/*, multipart/form-data (field \'file\') or application/json ({"image": "<base64>"})'
_ACCEPTED_BATCH = (
    "multipart/form-data (repeated field 'files'), application/json "
    '({"images": [{"name": ..., "image": "<base64>"}]}) or a single image/*'
)


@dataclass(frozen=True)
class FormPart:
    field: str | None
    filename: str | None
    data: bytes


def error_body(error: ClassifierError) -> dict[str, Any]:
    """The API's error document: ``{"error": {"code": ..., "message": ...}}``."""
    return {"error": {"code": error.code, "message": str(error)}}


def request_body(body: str | None, is_base64_encoded: bool) -> bytes:
    """The body of an API Gateway proxy event as bytes, within the Lambda payload limit."""
    if not body:
        raise EmptyBodyError("The request has no body; send an image.")
    if len(body) > MAX_PAYLOAD_BYTES:
        raise PayloadTooLargeError(
            f"The request body is {len(body):,} bytes; the limit is {MAX_PAYLOAD_BYTES:,} bytes "
            "(Lambda's 6 MB payload, base64 included). Send fewer or smaller images."
        )
    data = _b64decode(body, "request body") if is_base64_encoded else body.encode("utf-8", "replace")
    if not data:
        raise EmptyBodyError("The request has no body; send an image.")
    return data


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


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
    if _is_json(kind):
        document = _json(body)
        if not isinstance(document, dict) or not isinstance(document.get("image"), str):
            raise RequestShapeError('The JSON body must be an object {"image": "<base64>"}.')
        name = document.get("name")
        return ImageInput(_b64decode(document["image"], "image"), name if isinstance(name, str) else None)
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
    if _is_json(kind):
        document = _json(body)
        if not isinstance(document, dict) or not isinstance(document.get("images"), list):
            raise RequestShapeError(
                'The JSON body must be an object {"images": [{"name": ..., "image": "<base64>"}]}.'
            )
        _check_count(len(document["images"]))
        return [_json_item(entry, position) for position, entry in enumerate(document["images"])]
    raise UnsupportedMediaTypeError(
        f"Content-Type {kind or '(none)'!r} is not accepted; send {_ACCEPTED_BATCH}."
    )


def parse_multipart(body: bytes, content_type: str) -> list[FormPart]:
    """The form-data parts of a ``multipart/form-data`` body, in order."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", "replace")
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise RequestShapeError(
            "The multipart/form-data body has no parts (is the boundary parameter missing?)."
        )
    parts = [
        FormPart(
            field=part.get_param("name", header="content-disposition"),
            filename=part.get_filename(),
            data=part.get_payload(decode=True) or b"",
        )
        for part in message.iter_parts()
        if part.get_content_disposition() == "form-data"
    ]
    if not parts:
        raise RequestShapeError(
            "The multipart/form-data body has no form-data parts (does the boundary match?)."
        )
    return parts


def parse_top_k(value: str | None) -> int:
    return _bounded_int("top_k", value, DEFAULT_TOP_K, NUM_CLASSES)


def parse_limit(value: str | None) -> int:
    return _bounded_int("limit", value, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)


def _bounded_int(name: str, value: str | None, default: int, maximum: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError as error:
        raise InvalidParameterError(
            f"{name} must be a whole number from 1 to {maximum}, not {value!r}."
        ) from error
    if not 1 <= number <= maximum:
        raise InvalidParameterError(f"{name} must be a whole number from 1 to {maximum}, not {number}.")
    return number


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
        return ImageInput(_b64decode(entry["image"], f"image of item {position}"), name)
    except InvalidBase64Error as error:
        return Rejected(name, error)


def _is_json(kind: str) -> bool:
    return kind == "application/json" or kind.endswith("+json")


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise InvalidJsonError(f"The body is not valid JSON: {error}") from error


def _b64decode(text: str, what: str) -> bytes:
    compact = "".join(_DATA_URL.sub("", text.strip(), count=1).split())
    if "-" in compact or "_" in compact:
        compact = compact.translate(str.maketrans("-_", "+/"))
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError) as error:
        raise InvalidBase64Error(f"The {what} is not valid base64.") from error


# --- POST /training-data and the JSON bodies of the MLOps routes -------------------------------

_ACCEPTED_TRAINING = (
    'application/json ({"label": "cat", "images": ["<base64>", ...]} or {"upload": true}) or '
    "multipart/form-data (a 'label' field and repeated 'files')"
)


@dataclass(frozen=True)
class TrainingDataRequest:
    upload: bool  # True: the caller asks for a presigned zip upload
    label: str | None = None
    items: tuple[tuple[str, bytes], ...] = ()


def parse_training_data(body: bytes, content_type: str | None) -> TrainingDataRequest:
    kind = media_type(content_type)
    if kind == "multipart/form-data":
        parts = parse_multipart(body, content_type or "")
        labels = [part.data.decode("utf-8", "replace").strip() for part in parts if part.field == "label"]
        files = [part for part in parts if part.field in ("files", "file")]
        if len(labels) != 1:
            raise RequestShapeError("Send exactly one form field named 'label' with the images' class.")
        return TrainingDataRequest(False, labels[0], tuple(
            (part.filename or f"file-{i}", part.data) for i, part in enumerate(files)))
    if _is_json(kind):
        document = parse_json_object(body)
        if document.get("upload") is True:
            return TrainingDataRequest(True)
        images = document.get("images")
        if not isinstance(images, list) or not isinstance(document.get("label"), str):
            raise RequestShapeError('The JSON body must be {"label": "<class>", "images": ["<base64>", ...]} '
                                    'or {"upload": true}.')
        items = []
        for position, entry in enumerate(images):
            if isinstance(entry, dict) and isinstance(entry.get("image"), str):
                name, data = str(entry.get("name") or f"image-{position}"), entry["image"]
            elif isinstance(entry, str):
                name, data = f"image-{position}", entry
            else:
                raise RequestShapeError(f"Item {position} must be a base64 string or {{\"name\", \"image\"}}.")
            items.append((name, _b64decode(data, f"image {position}")))
        return TrainingDataRequest(False, document["label"], tuple(items))
    raise UnsupportedMediaTypeError(f"Content-Type {kind or '(none)'!r} is not accepted; send {_ACCEPTED_TRAINING}.")


def parse_json_object(body: bytes | None) -> dict:
    """An optional JSON object body (empty means {})."""
    if not body:
        return {}
    document = _json(body)
    if not isinstance(document, dict):
        raise RequestShapeError("The body must be a JSON object.")
    return document
