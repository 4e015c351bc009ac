"""Property-based tests of everything that parses untrusted input: image bytes, request bodies
(multipart, base64, JSON), training-data zips, pagination cursors, query parameters, and the
number codec of the stored records.

The property every parser keeps: whatever the caller sends, the answer is a result or a typed
:class:`~classifier.errors.ClassifierError` with a 4xx status (the API's answer to a bad request),
never another exception (a 500 and a stack trace in the logs). Where a format has an inverse
(base64, multipart, cursors, the DynamoDB codec), what goes in comes back out.

Hypothesis draws the inputs and shrinks any failure to its smallest form. ``database=None``: the
examples it finds are not written to a ``.hypothesis/`` folder in the working tree.
"""

import base64
import hashlib
import io
import json
import string
import uuid
import warnings
import zipfile
from collections import Counter
from dataclasses import asdict

from decimal import Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from PIL import Image
from urllib3 import encode_multipart_formdata

from classifier import payloads, storage
from classifier.api import bodies
from classifier.api.inference import ImageInput, Rejected
from classifier.api.records import PredictionRecord, decode_cursor, encode_cursor, from_item, to_item
from classifier.aws.codec import from_dynamo, to_dynamo, to_json
from classifier.errors import (
    ClassifierError,
    ImageTooSmallError,
    InvalidBase64Error,
    InvalidJsonError,
    InvalidParameterError,
    InvalidRecordError,
    RequestShapeError,
    TooManyImagesError,
    UploadRefusedError,
)
from classifier.labels import LABELS, NUM_CLASSES
from classifier.limits import (
    DEFAULT_LIST_LIMIT,
    DEFAULT_TOP_K,
    IMAGE_SIZE,
    MAX_BATCH_IMAGES,
    MAX_JSON_DEPTH,
    MAX_LIST_LIMIT,
    MIN_IMAGE_SIDE,
)
from classifier.mlops import training_data
from classifier.mlops.bodies import parse_training_data
from classifier.preprocessing import decode_image


def examples(count: int, *, fixture: bool = False) -> settings:
    """Settings of one property: ``count`` examples, no per-example deadline (the CI machine has two
    cores), no example database in the tree. ``fixture``: the test takes a function-scoped fixture
    (moto) and is written so examples do not depend on each other."""
    checks = [HealthCheck.too_slow, HealthCheck.data_too_large]
    if fixture:
        checks.append(HealthCheck.function_scoped_fixture)
    return settings(max_examples=count, deadline=None, database=None, suppress_health_check=checks)


def outcome(parse, *args):
    """``parse(*args)``: its result, or the typed error it raised, checked to be a 4xx. Any other
    exception propagates and fails the test with the input that caused it."""
    try:
        return parse(*args)
    except ClassifierError as error:
        assert 400 <= error.http_status < 500, f"{type(error).__name__} answers {error.http_status}"
        return error


# Pillow warns (corrupt EXIF, oversized tags) on the damaged files these tests make on purpose.
pillow_warnings = pytest.mark.filterwarnings("ignore::UserWarning:PIL.*")


def assert_model_input(array) -> None:
    assert isinstance(array, np.ndarray)
    assert array.dtype == np.uint8 and array.shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
    assert array.flags["C_CONTIGUOUS"]


# --- strategies -------------------------------------------------------------------------------

MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I")
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
# Prefixes that route random bytes into each image plugin's parser, not just "unidentified".
MAGIC = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"GIF89a",
    b"GIF87a",
    b"BM",
    b"RIFF\x00\x00\x00\x00WEBP",
    b"II*\x00",
    b"\x00\x00\x01\x00",
    b"P6\n",
)


def make_image(mode: str, width: int, height: int, seed: int) -> Image.Image:
    """Noise of ``mode`` and size: every channel (alpha included) varies."""
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    rgb = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    image = rgb.convert(mode)
    if mode in ("RGBA", "LA"):
        image.putalpha(Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8)))
    return image


def save(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def _savable(format: str, mode: str) -> bool:
    try:
        Image.open(io.BytesIO(save(make_image(mode, MIN_IMAGE_SIDE, MIN_IMAGE_SIDE, 0), format))).load()
    except (OSError, ValueError, KeyError):
        return False
    return True


# Every (format, mode) pair this Pillow writes and reads back: the encodings a user's tool can produce.
SAVABLE = tuple((format, mode) for format in FORMATS for mode in MODES if _savable(format, mode))


@st.composite
def encoded_images(draw, min_side: int = 1, max_side: int = 80) -> tuple[bytes, int, int]:
    """(bytes, width, height) of a valid image: any savable format and mode, any size, an EXIF
    orientation where the format carries EXIF, palette transparency for P."""
    format, mode = draw(st.sampled_from(SAVABLE))
    width, height = draw(st.integers(min_side, max_side)), draw(st.integers(min_side, max_side))
    image = make_image(mode, width, height, draw(st.integers(0, 2**32 - 1)))
    options = {}
    if format in ("JPEG", "PNG", "WEBP") and draw(st.booleans()):
        exif = Image.Exif()
        exif[0x0112] = draw(st.integers(1, 8))
        options["exif"] = exif
    if mode == "P" and format in ("PNG", "GIF") and draw(st.booleans()):
        options["transparency"] = draw(st.integers(0, 255))
    if format == "JPEG":
        options["quality"] = draw(st.integers(1, 95))
    return save(image, format, **options), width, height


PNG = save(make_image("RGB", MIN_IMAGE_SIDE, MIN_IMAGE_SIDE, 0), "PNG")
small_pngs = st.builds(lambda seed: save(make_image("RGB", 16, 16, seed), "PNG"), st.integers(0, 7))

arbitrary_bytes = st.one_of(
    st.binary(max_size=512),
    st.builds(lambda magic, tail: magic + tail, st.sampled_from(MAGIC), st.binary(max_size=512)),
)

# Boundaries as browsers, curl and urllib3 write them: RFC 2046 characters that need no quoting, but
# the apostrophe, which the standard library's parser reads as RFC 2231 charset'language'value
# syntax when the boundary is not quoted (no common client puts one in a boundary).
# RFC 2046's boundary characters; a space may not end one, and urllib3 sends it unquoted
boundaries = st.text(string.ascii_letters + string.digits + "'()+_,-./:=? ", min_size=1, max_size=70).filter(
    lambda boundary: boundary.strip() == boundary
)
field_names = st.sampled_from(["file", "files", "label", "comment", "File", ""])
file_names = st.one_of(
    st.none(), st.text(string.ascii_letters + string.digits + "._- ", min_size=1, max_size=20)
)
form_fields = st.lists(st.tuples(field_names, file_names, st.binary(max_size=200)), max_size=6)
content_types = st.one_of(
    st.builds("multipart/form-data; boundary={}".format, boundaries),
    st.builds("multipart/form-data; boundary={}".format, st.text(max_size=40)),
    st.just("multipart/form-data"),
    st.text(max_size=60).map(lambda text: "multipart/form-data;" + text),
)


def multipart_body(fields, boundary: str) -> tuple[bytes, str]:
    """A body urllib3 (what ``requests`` uses) encodes: file fields with a name, plain ones without."""
    encoded = [
        (name, (filename, data, "application/octet-stream") if filename is not None else data)
        for name, filename, data in fields
    ]
    return encode_multipart_formdata(encoded, boundary=boundary)


def sent_name(filename: str | None) -> str | None:
    """A part's file name as the parser reads it: without surrounding blanks."""
    return None if filename is None else filename.strip()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
)
json_documents = st.recursive(
    json_leaves,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=12,
)


@st.composite
def nested_documents(draw):
    """A JSON document inside a chain of 0 to MAX_JSON_DEPTH + 8 arrays and objects."""
    document = draw(json_documents)
    for wrapper in draw(st.lists(st.sampled_from(["list", "dict"]), max_size=MAX_JSON_DEPTH + 8)):
        document = [document] if wrapper == "list" else {draw(st.text(max_size=3)): document}
    return document


def depth(document) -> int:
    """The oracle: how deep arrays and objects nest (a scalar is 0, ``[]`` is 1)."""
    if isinstance(document, list):
        return 1 + max((depth(item) for item in document), default=0)
    if isinstance(document, dict):
        return 1 + max((depth(item) for item in document.values()), default=0)
    return 0


# Numbers as the model, numpy and Python produce them, finite and within what DynamoDB stores
# (magnitudes under 1E+126; those under 1E-130, subnormals included, are stored as 0.0).
finite_numbers = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.integers(-(2**63), 2**63 - 1).map(np.int64),
    st.floats(-1e125, 1e125),
    st.floats(-1e125, 1e125).map(np.float64),
    st.floats(width=32, allow_nan=False, allow_infinity=False).map(np.float32),
)
# Any number at all: some beyond what DynamoDB stores.
any_numbers = st.one_of(
    finite_numbers,
    st.integers(),
    st.floats(),
    st.floats().map(np.float64),
    st.decimals(allow_nan=True, allow_infinity=True),
)
record_values = st.recursive(
    st.one_of(finite_numbers, st.booleans(), st.none(), st.text(max_size=10)),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children),
        st.dictionaries(st.text(max_size=5), children, max_size=4),
    ),
    max_leaves=15,
)
non_finite = st.sampled_from(
    [float("nan"), float("inf"), -float("inf"), np.float32("nan"), np.float64("inf"), np.float32("-inf")]
)


@st.composite
def with_non_finite(draw):
    """A record value with NaN or infinity hidden somewhere inside."""
    value = draw(non_finite)
    for _ in range(draw(st.integers(0, 4))):
        value = draw(
            st.sampled_from(
                [
                    lambda v: [v],
                    lambda v: (1, v),
                    lambda v: {"k": v, "other": 0.5},
                    lambda v: [{"p": [v]}],
                ]
            )
        )(value)
    return value


probabilities = st.one_of(st.floats(0, 1), st.floats(0, 1, width=32).map(np.float32))
prediction_records = st.builds(
    PredictionRecord,
    id=st.uuids().map(str),
    created_at=st.datetimes().map(lambda moment: moment.isoformat(timespec="microseconds") + "Z"),
    label=st.sampled_from(LABELS),
    label_index=st.integers(0, NUM_CLASSES - 1) | st.integers(0, NUM_CLASSES - 1).map(np.int64),
    confidence=probabilities,
    probabilities=st.lists(probabilities, min_size=NUM_CLASSES, max_size=NUM_CLASSES).map(
        lambda values: dict(zip(LABELS, values, strict=True))
    ),
    model_version=st.text(min_size=1, max_size=12),
    model_sha256=st.text("0123456789abcdef", min_size=64, max_size=64),
    image_sha256=st.text("0123456789abcdef", min_size=64, max_size=64),
    image_bytes=st.integers(1, 8 * 2**20) | st.integers(1, 8 * 2**20).map(np.int64),
    image_name=st.none() | st.text(max_size=30),
    source=st.sampled_from(["single", "batch"]),
    batch_id=st.none() | st.uuids().map(str),
    latency_ms=st.floats(0, 1e6) | st.floats(0, 1e6).map(np.float64),
    timings_ms=st.fixed_dictionaries(
        {"decode": st.floats(0, 1e5), "inference": st.floats(0, 1e5, width=32).map(np.float32)}
    ),
)

# Zip entries: names a zip tool or an attacker writes, contents from noise to valid images.
entry_names = st.one_of(
    st.builds(
        "{}/{}".format,
        st.sampled_from(LABELS),
        st.text(min_size=1, max_size=12).filter(lambda n: "/" not in n),
    ),
    st.sampled_from(
        [
            "../cat/x.png",
            "/cat/x.png",
            "cat\\x.png",
            "C:/cat/x.png",
            "cat/../dog/x.png",
            "cat/sub/x.png",
            "dragon/x.png",
            "x.png",
            "",
            "cat/",
            "cat/x.zip",
            "cat/x.tar.gz",
            "./cat/x.png",
            "cat//x.png",
        ]
    ),
    st.lists(
        st.sampled_from(["cat", "dog", "..", ".", "", "sub", "C:", "a\\b", "x.png", "\u00e9t\u00e9.png"]),
        min_size=1,
        max_size=4,
    ).map("/".join),
    st.text(max_size=20),
)
entry_data = st.one_of(
    st.binary(max_size=64),
    small_pngs,
    st.builds(
        lambda magic, tail: magic + tail,
        st.sampled_from([b"PK\x03\x04", b"\x1f\x8b", b"Rar!"]),
        st.binary(max_size=16),
    ),
    st.builds(lambda unit, count: unit * count, st.binary(min_size=1, max_size=2), st.integers(1, 30_000)),
)
zip_entries = st.lists(
    st.tuples(entry_names, entry_data, st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])),
    max_size=6,
)


def zip_of(entries) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as archive:
        warnings.simplefilter("ignore")  # duplicate names are part of what is tested
        for name, data, compression in entries:
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return buffer.getvalue()


def file_entries(archive: bytes) -> list[str]:
    """The oracle's list of files in a zip, as a reader sees the names: everything but folders."""
    with zipfile.ZipFile(io.BytesIO(archive)) as handle:
        return [info.filename for info in handle.infolist() if not info.filename.endswith("/")]


def stored_objects(s3, bucket: str) -> dict[str, bytes]:
    listing = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {item["Key"]: s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read() for item in listing}


def fresh_bucket(aws) -> str:
    """A new empty bucket in the moto account, so each example starts from nothing."""
    bucket = f"props-{uuid.uuid4().hex}"
    aws.s3.create_bucket(Bucket=bucket)
    return bucket


# --- image decoding ---------------------------------------------------------------------------


@pillow_warnings
@examples(500)
@given(data=arbitrary_bytes)
def test_any_bytes_decode_or_are_refused_as_a_bad_image(data):
    # Given whatever bytes a client posts as an image, when the service decodes them,
    # then it gets a model input or a typed 4xx refusal: never a 500.
    result = outcome(decode_image, data)
    if not isinstance(result, ClassifierError):
        assert_model_input(result)


@examples(300)
@given(image=encoded_images())
def test_every_valid_image_becomes_a_model_input_unless_too_small(image):
    # Given a valid PNG, JPEG, GIF, BMP or WebP in any mode Pillow writes, any size, any EXIF
    # orientation, when it is decoded, then it is a C-contiguous uint8 (32, 32, 3) array, or,
    # when a side is under MIN_IMAGE_SIDE, ImageTooSmallError.
    data, width, height = image
    if min(width, height) < MIN_IMAGE_SIDE:
        with pytest.raises(ImageTooSmallError):
            decode_image(data)
    else:
        assert_model_input(decode_image(data))


@pillow_warnings
@examples(300)
@given(
    image=encoded_images(min_side=MIN_IMAGE_SIDE, max_side=48),
    cut=st.floats(0, 1, exclude_max=True),
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), max_size=3),
)
def test_truncated_or_damaged_images_are_refused_with_a_typed_error(image, cut, flips):
    # Given a valid image cut short (an interrupted upload) and with some bytes changed (a bad disk),
    # when it is decoded, then it still decodes to a model input or is refused with a 4xx.
    data = bytearray(image[0][: int(len(image[0]) * cut)])
    for where, mask in flips:
        if data:
            data[int(len(data) * where)] ^= mask
    result = outcome(decode_image, bytes(data))
    if not isinstance(result, ClassifierError):
        assert_model_input(result)


# --- multipart bodies -------------------------------------------------------------------------


@examples(300)
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.builds(lambda fields, b: multipart_body(fields, b)[0], form_fields, boundaries),
    ),
    content_type=content_types,
)
def test_any_multipart_body_parses_or_is_refused(body, content_type):
    # Given any body under any multipart Content-Type (wrong boundary, no boundary, noise), when the
    # predict and training-data routes read it, then they get parts or a typed 4xx.
    for parse in (payloads.parse_multipart, bodies.parse_image, bodies.parse_images, parse_training_data):
        outcome(parse, body, content_type)


@examples(200)
@given(fields=form_fields, boundary=boundaries)
def test_multipart_bodies_round_trip_every_part_exactly(fields, boundary):
    # Given a form as urllib3 (requests) encodes it, when it is parsed, then every part comes back in
    # order with its field name, file name and exact bytes (CR, LF, NUL, boundary-like lines included).
    assume(not any(f"--{boundary}".encode() in data for _, _, data in fields))
    body, content_type = multipart_body(fields, boundary)
    if not fields:
        with pytest.raises(RequestShapeError):
            payloads.parse_multipart(body, content_type)
        return

    parts = payloads.parse_multipart(body, content_type)

    assert [(part.field, part.filename, part.data) for part in parts] == [
        (name, sent_name(filename), data) for name, filename, data in fields
    ]


@examples(150)
@given(fields=form_fields, boundary=boundaries)
def test_multipart_predict_bodies_take_the_file_fields(fields, boundary):
    # Given a form with some 'file' / 'files' fields among others, when POST /predict and
    # POST /predict/batch read it, then /predict takes exactly one 'file' (else RequestShapeError)
    # and the batch takes every 'file' and 'files' part in order (none: RequestShapeError).
    assume(fields and not any(f"--{boundary}".encode() in data for _, _, data in fields))
    body, content_type = multipart_body(fields, boundary)
    single = [ImageInput(data, sent_name(filename)) for name, filename, data in fields if name == "file"]
    batch = [
        ImageInput(data, sent_name(filename)) for name, filename, data in fields if name in ("file", "files")
    ]

    if len(single) == 1:
        assert bodies.parse_image(body, content_type) == single[0]
    else:
        with pytest.raises(RequestShapeError):
            bodies.parse_image(body, content_type)
    if batch:
        assert bodies.parse_images(body, content_type) == batch
    else:
        with pytest.raises(RequestShapeError):
            bodies.parse_images(body, content_type)


@examples(20)
@given(count=st.integers(MAX_BATCH_IMAGES - 2, MAX_BATCH_IMAGES + 3), boundary=boundaries)
def test_multipart_batches_over_the_limit_are_refused(count, boundary):
    # Given a batch form with around MAX_BATCH_IMAGES files, when it is read, then up to the limit
    # every file is taken and over it TooManyImagesError (413) answers.
    body, content_type = multipart_body([("files", f"{i}.png", b"x") for i in range(count)], boundary)
    if count <= MAX_BATCH_IMAGES:
        assert len(bodies.parse_images(body, content_type)) == count
    else:
        with pytest.raises(TooManyImagesError):
            bodies.parse_images(body, content_type)


@examples(100)
@given(
    label=st.text(max_size=12),
    files=st.lists(st.tuples(file_names, st.binary(max_size=100)), max_size=4),
    boundary=boundaries,
)
def test_multipart_training_data_round_trips_label_and_files(label, files, boundary):
    # Given a training-data form (one 'label' field, 'files' parts), when POST /training-data reads it,
    # then the label (stripped) and each file's name and bytes come back; unnamed files get file-<i>.
    fields = [("label", None, label.encode())] + [("files", name, data) for name, data in files]
    assume(not any(f"--{boundary}".encode() in data for _, _, data in fields))
    body, content_type = multipart_body(fields, boundary)

    request = parse_training_data(body, content_type)

    assert not request.upload and request.label == label.strip()
    assert request.items == tuple(
        (sent_name(name) or f"file-{i}", data) for i, (name, data) in enumerate(files)
    )


# --- base64 and JSON bodies -------------------------------------------------------------------


def base64_variants(data: bytes) -> list[str]:
    standard = base64.b64encode(data).decode()
    url_safe = base64.urlsafe_b64encode(data).decode()
    return [
        standard,
        standard.rstrip("="),
        url_safe,
        url_safe.rstrip("="),
        f"data:image/png;base64,{standard}",
        f"DATA:image/png;name=x.png;base64,{url_safe.rstrip('=')}",
        base64.encodebytes(data).decode(),
        f"  {standard}\n",
    ]


@examples(300)
@given(data=st.binary(max_size=300))
def test_base64_of_any_bytes_decodes_back_to_them(data):
    # Given bytes base64-encoded the way clients do (standard or URL-safe, padded or not, a data URL,
    # MIME line breaks), when the service decodes the text, then it has the same bytes.
    for text in base64_variants(data):
        assert payloads.decode_base64(text, "image") == data, text
    if data:
        assert payloads.request_body(base64.b64encode(data).decode(), True) == data


@examples(300)
@given(
    text=st.one_of(
        st.text(max_size=100), st.text(string.ascii_letters + string.digits + "+/-_= \n", max_size=40)
    )
)
def test_any_text_decodes_as_base64_or_is_refused(text):
    # Given any text as a base64 field, when it is decoded, then it gives bytes or InvalidBase64Error.
    result = outcome(payloads.decode_base64, text, "image")
    assert isinstance(result, bytes | InvalidBase64Error)


@examples(300)
@given(body=st.none() | st.text(max_size=100), is_base64=st.booleans())
def test_any_event_body_becomes_bytes_or_is_refused(body, is_base64):
    # Given any API Gateway body (text or base64 flagged), when it is read, then it is non-empty bytes
    # (the UTF-8 text itself when not base64) or a typed 4xx.
    result = outcome(payloads.request_body, body, is_base64)
    if not isinstance(result, ClassifierError):
        assert isinstance(result, bytes) and result
        if not is_base64:
            assert result == body.encode("utf-8", "replace")


@examples(300)
@given(document=nested_documents())
@example(document=[[[]]])
def test_json_is_refused_only_when_nested_deeper_than_the_limit(document):
    # Given any JSON document nested 0 to MAX_JSON_DEPTH + 8 deep, when a route parses it, then it is
    # read back as sent up to MAX_JSON_DEPTH and refused with InvalidJsonError beyond.
    body = json.dumps(document).encode()
    if depth(document) > MAX_JSON_DEPTH:
        with pytest.raises(InvalidJsonError):
            payloads.parse_json(body)
    else:
        assert payloads.parse_json(body) == document


@examples(30)
@given(levels=st.integers(MAX_JSON_DEPTH + 1, 200_000), bracket=st.sampled_from(["[]", "{}"]))
def test_absurdly_deep_json_is_refused_not_a_recursion_error(levels, bracket):
    # Given a body of thousands of nested brackets (it exhausts a recursive parser), when it is parsed,
    # then InvalidJsonError answers, not a RecursionError.
    opening = '{"a":' if bracket == "{}" else "["
    body = (opening * levels + "1" + bracket[1] * levels).encode()
    with pytest.raises(InvalidJsonError):
        payloads.parse_json(body)


@examples(300)
@given(
    body=st.one_of(
        st.binary(max_size=200),
        st.text(max_size=100).map(str.encode),
        json_documents.map(lambda document: json.dumps(document).encode()),
    )
)
def test_any_bytes_parse_as_json_or_are_refused(body):
    # Given any body sent as JSON, when it is parsed (as a document and as an object), then it is a
    # document (an object for parse_json_object; empty means {}) or a typed 4xx.
    outcome(payloads.parse_json, body)
    result = outcome(payloads.parse_json_object, body)
    assert isinstance(result, dict | ClassifierError)
    if not body:
        assert result == {}


json_bodies = st.one_of(
    st.binary(max_size=100),
    json_documents,
    st.fixed_dictionaries(
        {},
        optional={
            "image": json_leaves | st.binary(max_size=30).map(lambda d: base64.b64encode(d).decode()),
            "name": json_leaves,
        },
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "images": st.lists(json_documents | st.text(max_size=10)),
            "label": json_leaves,
            "upload": json_leaves,
        },
    ),
).map(lambda document: document if isinstance(document, bytes) else json.dumps(document).encode())


@examples(300)
@given(
    body=json_bodies,
    content_type=st.sampled_from(["application/json", "application/vnd.api+json; charset=utf-8"]),
)
def test_any_json_predict_or_training_body_parses_or_is_refused(body, content_type):
    # Given any JSON-ish body, when POST /predict, /predict/batch and /training-data read it, then they
    # get their input or a typed 4xx; a batch item that is not an image is Rejected, not an exception.
    outcome(bodies.parse_image, body, content_type)
    batch = outcome(bodies.parse_images, body, content_type)
    if isinstance(batch, list):
        assert all(isinstance(item, ImageInput | Rejected) for item in batch)
        assert all(400 <= item.error.http_status < 500 for item in batch if isinstance(item, Rejected))
    outcome(parse_training_data, body, content_type)


@examples(150)
@given(
    images=st.lists(
        st.tuples(st.none() | st.text(max_size=10), st.binary(max_size=60)),
        min_size=1,
        max_size=MAX_BATCH_IMAGES,
    ),
    label=st.sampled_from(LABELS),
)
def test_json_bodies_round_trip_names_and_bytes(images, label):
    # Given images sent as base64 JSON, when the routes read them, then each image's bytes and name
    # come back in order.
    items = [
        {"image": base64.b64encode(data).decode(), **({"name": name} if name is not None else {})}
        for name, data in images
    ]
    first = items[0]
    expected = [ImageInput(data, name) for name, data in images]

    assert bodies.parse_image(json.dumps(first).encode(), "application/json") == expected[0]
    assert bodies.parse_images(json.dumps({"images": items}).encode(), "application/json") == expected
    request = parse_training_data(json.dumps({"label": label, "images": items}).encode(), "application/json")
    assert request.label == label
    assert request.items == tuple((name or f"image-{i}", data) for i, (name, data) in enumerate(images))


# --- training-data zips -----------------------------------------------------------------------


@examples(200, fixture=True)
@given(entries=zip_entries)
@example(
    entries=[
        ("", b"x", zipfile.ZIP_STORED),
        ("cat/a\nb.png", PNG, zipfile.ZIP_STORED),
        ("cat/a\nb.png", PNG, zipfile.ZIP_DEFLATED),
    ]
)
def test_any_zip_is_reported_entry_by_entry_and_stored_once(aws, entries):
    # Given a zip of class folders with hostile names (.., absolute, backslashes, drive letters,
    # unknown classes), noise, nested archives, bombs and valid PNGs, when it is ingested twice,
    # then every file entry is reported once (accepted, duplicate or rejected with a reason), unsafe
    # paths are rejected, only content-addressed images are stored, and the second ingest stores nothing.
    bucket = fresh_bucket(aws)
    archive = zip_of(entries)
    names = file_entries(archive)

    report = training_data.ingest_zip(aws.s3, bucket, io.BytesIO(archive), len(archive))

    counts = report["counts"]
    assert report["status"] == "completed" and sum(counts.values()) == len(names)
    assert len(report["rejected"]) == counts["rejected"]
    assert all(item["reason"] for item in report["rejected"])
    assert not Counter(item["name"] for item in report["rejected"]) - Counter(names)
    unsafe = Counter(name for name in names if name.startswith("/") or ".." in name.split("/"))
    assert not unsafe - Counter(item["name"] for item in report["rejected"])
    stored = stored_objects(aws.s3, bucket)
    assert len(stored) == counts["accepted"] == sum(report["accepted_per_label"].values())
    for key, data in stored.items():
        label, name = key.removeprefix(storage.TRAINING_DATA_PREFIX).split("/")
        assert label in LABELS and name.split(".")[0] == hashlib.sha256(data).hexdigest()

    again = training_data.ingest_zip(aws.s3, bucket, io.BytesIO(archive), len(archive))

    assert again["counts"] == {
        "accepted": 0,
        "duplicate": counts["accepted"] + counts["duplicate"],
        "rejected": counts["rejected"],
    }
    assert stored_objects(aws.s3, bucket) == stored


@examples(300, fixture=True)
@given(
    entries=zip_entries,
    cut=st.floats(0, 1),
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), max_size=4),
)
def test_damaged_or_random_uploads_are_refused_or_reported(aws, entries, cut, flips):
    # Given an upload that is a zip cut short or with bytes changed, or not a zip at all, when it is
    # ingested, then it is refused as a whole (UploadRefusedError) or reported entry by entry; nothing
    # else is raised, and what is stored is still content addressed.
    bucket = fresh_bucket(aws)
    archive = bytearray(zip_of(entries))
    archive = archive[: max(1, int(len(archive) * cut))]
    for where, mask in flips:
        archive[int(len(archive) * where)] ^= mask

    result = outcome(training_data.ingest_zip, aws.s3, bucket, io.BytesIO(bytes(archive)), len(archive))

    if isinstance(result, ClassifierError):
        assert isinstance(result, UploadRefusedError)
    else:
        assert result["status"] == "completed"
    for key, data in stored_objects(aws.s3, bucket).items():
        assert key.split("/")[-1].split(".")[0] == hashlib.sha256(data).hexdigest()


@examples(100, fixture=True)
@given(names=st.lists(st.text(max_size=300), min_size=1, max_size=4), label=st.sampled_from(LABELS))
@example(names=["a\r\nx-amz-acl: public-read", "\x00\t\u00e9\U0001f600"], label="cat")
def test_direct_uploads_store_under_any_name_the_caller_gives(aws, names, label):
    # Given images posted to /training-data with any names (control characters, non-ASCII, very
    # long), when they are stored, then the first is accepted, the rest are duplicates of it, and the
    # one object holds the image's bytes: the name never breaks the write.
    bucket = fresh_bucket(aws)

    results = training_data.add_images(aws.s3, bucket, label, [(name, PNG) for name in names])

    assert [result.status for result in results] == ["accepted"] + ["duplicate"] * (len(names) - 1)
    assert [result.name for result in results] == names
    assert stored_objects(aws.s3, bucket) == {results[0].key: PNG}


# --- pagination cursor ------------------------------------------------------------------------

cursor_keys = st.fixed_dictionaries({"id": st.text(), "kind": st.text(), "created_at": st.text()})


@examples(200)
@given(key=cursor_keys)
def test_cursors_round_trip_their_key(key):
    # Given the last key of a page, when it is handed out as next_cursor and sent back, then the
    # same key resumes the listing.
    assert decode_cursor(encode_cursor(key)) == key


@examples(300)
@given(
    cursor=st.one_of(
        st.text(max_size=60),
        st.text(string.ascii_letters + string.digits + "-_=", max_size=60),
        json_documents.map(lambda document: b64url(json.dumps(document).encode())),
        st.fixed_dictionaries(
            {"id": json_leaves, "kind": json_leaves, "created_at": json_leaves},
            optional={"extra": json_leaves},
        ).map(lambda key: b64url(json.dumps(key).encode())),
        st.integers(2, 3000).map(lambda levels: b64url(b"[" * levels)),
    )
)
@example(cursor=b64url(b"[" * 5000))
def test_any_cursor_is_a_key_or_an_invalid_parameter(cursor):
    # Given any ?cursor= text (tampered, truncated, made up), when the listing decodes it, then it is
    # a key with exactly id, kind and created_at as strings, or InvalidParameterError (400).
    try:
        key = decode_cursor(cursor)
    except InvalidParameterError:
        return
    assert set(key) == {"id", "kind", "created_at"} and all(isinstance(value, str) for value in key.values())


# --- stored records ---------------------------------------------------------------------------


@examples(300)
@given(value=record_values)
def test_finite_values_read_back_as_the_json_an_answer_gives(value):
    # Given a record value (numpy and Python numbers, nested), when it is stored and read back, then
    # it is the same JSON as the API answered at write time (to_json).
    assert from_dynamo(to_dynamo(value)) == to_json(value)


def _dynamodb_accepts(item) -> bool:
    """The oracle: DynamoDB's documented number limits, and boto3's serializer (its own checks)."""
    from boto3.dynamodb.types import TypeSerializer

    TypeSerializer().serialize(item)  # raises on what boto3 would not send
    return all(
        number == 0
        or (Decimal("1E-130") <= abs(number) < Decimal("1E+126") and len(number.as_tuple().digits) <= 38)
        for number in _decimals(item)
    )


def _decimals(item):
    if isinstance(item, Decimal):
        yield item
    elif isinstance(item, dict):
        for nested in item.values():
            yield from _decimals(nested)
    elif isinstance(item, list):
        for nested in item:
            yield from _decimals(nested)


@examples(300)
@given(value=st.lists(any_numbers, min_size=1, max_size=4))
def test_every_number_is_stored_as_dynamodb_takes_it_or_refused_before_the_write(value):
    # Given any numbers in a record, when they are turned into an item, then either the item is
    # one DynamoDB accepts (so the write cannot fail on it) or InvalidRecordError says why first.
    try:
        item = to_dynamo({"values": value})
    except InvalidRecordError:
        return
    assert _dynamodb_accepts(item)


@examples(100)
@given(value=with_non_finite())
def test_nan_or_infinity_anywhere_is_refused(value):
    # Given a value with NaN or infinity nested anywhere, when it is turned into an item, then
    # InvalidRecordError is raised rather than a corrupt or unwritable item.
    with pytest.raises(InvalidRecordError):
        to_dynamo(value)


@examples(200)
@given(record=prediction_records)
def test_prediction_records_read_back_as_answered(record):
    # Given a prediction record as the predict route builds it, when it is stored and read back,
    # then GET /predictions/{id} returns its fields as JSON numbers, without None fields or 'kind'.
    item = to_item(record)

    assert item["kind"] == "prediction"
    assert from_item(item) == {
        key: value for key, value in to_json(asdict(record)).items() if value is not None
    }


# --- query parameters -------------------------------------------------------------------------


@examples(300)
@given(
    value=st.one_of(
        st.none(),
        st.text(max_size=20),
        st.integers(-1000, 1000).map(str),
        st.text(string.digits, min_size=4000, max_size=5000),
    )
)
def test_any_top_k_or_limit_is_in_range_or_refused(value):
    # Given any ?top_k= or ?limit= text, when it is read, then it is a number in its range (the
    # default when absent or empty) or InvalidParameterError (400).
    for parse, default, maximum in (
        (bodies.parse_top_k, DEFAULT_TOP_K, NUM_CLASSES),
        (bodies.parse_limit, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT),
    ):
        try:
            number = parse(value)
        except InvalidParameterError:
            assert value not in (None, "")
            continue
        assert 1 <= number <= maximum
        if value in (None, ""):
            assert number == default
        else:
            assert number == int(value)
