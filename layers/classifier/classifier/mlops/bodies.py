"""Request bodies of the MLOps routes: POST /training-data (labelled images as JSON or a form, or a
request for a presigned zip upload). Decoding is :mod:`classifier.payloads`, as for the predict routes."""

from dataclasses import dataclass

from classifier.errors import RequestShapeError, UnsupportedMediaTypeError
from classifier.payloads import decode_base64, is_json, media_type, parse_json_object, parse_multipart

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
        return TrainingDataRequest(
            False, labels[0], tuple((part.filename or f"file-{i}", part.data) for i, part in enumerate(files))
        )
    if is_json(kind):
        document = parse_json_object(body)
        if document.get("upload") is True:
            return TrainingDataRequest(True)
        images = document.get("images")
        if not isinstance(images, list) or not isinstance(document.get("label"), str):
            raise RequestShapeError(
                'The JSON body must be {"label": "<class>", "images": ["<base64>", ...]} or {"upload": true}.'
            )
        items = []
        for position, entry in enumerate(images):
            if isinstance(entry, dict) and isinstance(entry.get("image"), str):
                name, data = str(entry.get("name") or f"image-{position}"), entry["image"]
            elif isinstance(entry, str):
                name, data = f"image-{position}", entry
            else:
                raise RequestShapeError(f'Item {position} must be a base64 string or {{"name", "image"}}.')
            items.append((name, decode_base64(data, f"image {position}")))
        return TrainingDataRequest(False, document["label"], tuple(items))
    raise UnsupportedMediaTypeError(
        f"Content-Type {kind or '(none)'!r} is not accepted; send {_ACCEPTED_TRAINING}."
    )
