"""Request payloads as API Gateway delivers them, decoded the same way for every route.

The body of a proxy event (base64 for binary media types), its media type, ``multipart/form-data``
parts, JSON documents, base64 text and bounded integer parameters. Every rejection is a typed
:class:`~classifier.errors.RequestError`, which the resolver answers with its 4xx status.

Multipart bodies are parsed with the standard library's ``email`` parser (RFC 2046 MIME, the format
``multipart/form-data`` is defined in): no third-party dependency in the layer, no ``cgi`` (removed in
Python 3.13). JSON nested deeper than :data:`~classifier.limits.MAX_JSON_DEPTH` is refused: no route
needs it, and a few thousand levels would exhaust the parser's recursion.
"""

import base64
import binascii
import json
import re
from dataclasses import dataclass
from email import policy
from email.parser import BytesParser
from collections.abc import Collection, Mapping
from typing import Any

from classifier.errors import (
    EmptyBodyError,
    InvalidBase64Error,
    InvalidJsonError,
    InvalidParameterError,
    PayloadTooLargeError,
    RequestShapeError,
)
from classifier.limits import MAX_JSON_DEPTH, MAX_PAYLOAD_BYTES

_MALFORMED_HEADER_ERRORS = (IndexError, KeyError, ValueError, TypeError, AttributeError)
_DATA_URL = re.compile(r"^data:[^,;]*(;[^,;=]+=[^,;]*)*;base64,", re.IGNORECASE)
# An unquoted boundary parameter: its value runs to the next ";" (RFC 2046 boundaries may hold
# "'", "(", ")", ",", "/", ":", "=", "?" and inner spaces, and clients such as urllib3 send them
# unquoted).
_UNQUOTED_BOUNDARY = re.compile(r'(;\s*boundary\s*=\s*)([^";\s][^;]*)', re.IGNORECASE)


@dataclass(frozen=True)
class FormPart:
    field: str | None
    filename: str | None
    data: bytes


def request_body(body: str | None, is_base64_encoded: bool) -> bytes:
    """The body of an API Gateway proxy event as bytes, within the Lambda payload limit."""
    if not body:
        raise EmptyBodyError("The request has no body; send an image.")
    if len(body) > MAX_PAYLOAD_BYTES:
        raise PayloadTooLargeError(
            f"The request body is {len(body):,} bytes; the limit is {MAX_PAYLOAD_BYTES:,} bytes "
            "(Lambda's 6 MB payload, base64 included). Send fewer or smaller images."
        )
    data = decode_base64(body, "request body") if is_base64_encoded else body.encode("utf-8", "replace")
    if not data:
        raise EmptyBodyError("The request has no body; send an image.")
    return data


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json(kind: str) -> bool:
    """Whether a media type (from :func:`media_type`) is JSON."""
    return kind == "application/json" or kind.endswith("+json")


def _quote_boundary(content_type: str) -> str:
    """``content_type`` with an unquoted boundary quoted. The standard library's header parser
    reads such a value as a token, so it would cut ``a(b`` at the "(" and take ``a'b`` for an
    RFC 2231 charset'language'value."""

    def quoted(match: re.Match) -> str:
        value = match[2].rstrip().replace("\\", "\\\\").replace('"', '\\"')
        return f'{match[1]}"{value}"'

    return _UNQUOTED_BOUNDARY.sub(quoted, content_type, count=1)


def parse_multipart(body: bytes, content_type: str) -> list[FormPart]:
    """The form-data parts of a ``multipart/form-data`` body, in order."""
    head = f"Content-Type: {_quote_boundary(content_type)}\r\nMIME-Version: 1.0\r\n\r\n".encode(
        "latin-1", "replace"
    )
    try:
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
    except _MALFORMED_HEADER_ERRORS as error:
        # the standard library's header parser fails this way on some malformed parameter lists
        # (CPython's email._header_value_parser raises IndexError on a few); still the caller's input
        raise RequestShapeError(f"The multipart/form-data headers cannot be parsed: {error}") from error
    if not parts:
        raise RequestShapeError(
            "The multipart/form-data body has no form-data parts (does the boundary match?)."
        )
    return parts


def parse_json(body: bytes) -> Any:
    """A JSON document, nested at most :data:`MAX_JSON_DEPTH` deep."""
    try:
        document = json.loads(body)
    except RecursionError as error:
        raise InvalidJsonError(f"The JSON body is nested deeper than {MAX_JSON_DEPTH} levels.") from error
    except (UnicodeDecodeError, ValueError) as error:
        raise InvalidJsonError(f"The body is not valid JSON: {error}") from error
    if _depth(document) > MAX_JSON_DEPTH:
        raise InvalidJsonError(f"The JSON body is nested deeper than {MAX_JSON_DEPTH} levels.")
    return document


def parse_json_object(body: bytes | None) -> dict:
    """An optional JSON object body (empty means {})."""
    if not body:
        return {}
    document = parse_json(body)
    if not isinstance(document, dict):
        raise RequestShapeError("The body must be a JSON object.")
    return document


def decode_base64(text: str, what: str) -> bytes:
    """Standard or URL-safe base64, padding optional, whitespace and a ``data:...;base64,`` prefix
    allowed; ``what`` names the field in the error."""
    compact = "".join(_DATA_URL.sub("", text.strip(), count=1).split())
    if "-" in compact or "_" in compact:
        compact = compact.translate(str.maketrans("-_", "+/"))
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError) as error:
        raise InvalidBase64Error(f"The {what} is not valid base64.") from error


def bounded_int(name: str, value: str | None, default: int, maximum: int) -> int:
    """A query parameter from 1 to ``maximum``; ``default`` when absent or empty."""
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


def _depth(document: Any) -> int:
    """How deep arrays and objects nest in ``document`` (a scalar is 0), without recursion."""
    deepest, stack = 0, [(document, 1)]
    while stack:
        value, level = stack.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        if level > MAX_JSON_DEPTH:
            return level
        stack.extend((child, level + 1) for child in children)
    return deepest


def encode_cursor(key: Mapping[str, Any]) -> str:
    """A DynamoDB page's ``LastEvaluatedKey`` (string attributes) as an opaque URL-safe cursor."""
    raw = json.dumps({name: key[name] for name in sorted(key)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, key_sets: Collection[frozenset[str]]) -> dict[str, str]:
    """A cursor from :func:`encode_cursor` back into the key, whose attribute names must be one of
    ``key_sets`` (the table's key with one index's); anything else is 400 ``invalid_parameter``."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, RecursionError) as error:
        raise InvalidParameterError("The cursor is not one this API returned.") from error
    if (
        not isinstance(key, dict)
        or set(key) not in key_sets
        or not all(isinstance(v, str) for v in key.values())
    ):
        raise InvalidParameterError("The cursor is not one this API returned.")
    return key
