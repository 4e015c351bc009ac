"""Request bodies of the predict routes: what is accepted, and the typed error for what is not."""

import base64
import json

import pytest
from urllib3 import encode_multipart_formdata

from classifier import payloads
from classifier.api import bodies
from classifier.api.inference import ImageInput, Rejected
from classifier.errors import (
    EmptyBodyError,
    InvalidBase64Error,
    InvalidJsonError,
    InvalidParameterError,
    PayloadTooLargeError,
    RequestShapeError,
    TooManyImagesError,
    UnsupportedMediaTypeError,
)
from classifier.limits import MAX_BATCH_IMAGES, MAX_JSON_DEPTH, MAX_PAYLOAD_BYTES
from classifier.mlops import bodies as mlops_bodies

# Bytes that trip naive multipart parsers: CR, LF, CRLF, a boundary-like line, trailing CR.
AWKWARD = b"\xff\xd8\r\n--not-the-boundary\r\n\x00\r\rend\n\r"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_raw_image_bodies_pass_through(dog_jpeg):
    assert bodies.parse_image(dog_jpeg, "image/jpeg") == ImageInput(dog_jpeg)
    assert bodies.parse_images(dog_jpeg, "IMAGE/PNG; charset=binary") == [ImageInput(dog_jpeg)]


def test_multipart_keeps_binary_bytes_exactly(dog_jpeg):
    body, content_type = encode_multipart_formdata(
        [("comment", "hello"), ("file", ("odd.bin", AWKWARD, "application/octet-stream"))]
    )
    assert bodies.parse_image(body, content_type) == ImageInput(AWKWARD, "odd.bin")


def test_multipart_batch_takes_repeated_files_in_order(dog_jpeg):
    files = [("files", (f"{i}.jpg", dog_jpeg + bytes([i]), "image/jpeg")) for i in range(3)]
    body, content_type = encode_multipart_formdata(files)

    items = bodies.parse_images(body, content_type)
    assert [item.name for item in items] == ["0.jpg", "1.jpg", "2.jpg"]
    assert [item.data[-1] for item in items] == [0, 1, 2]


def test_json_single_accepts_plain_wrapped_and_data_url_base64(dog_jpeg):
    wrapped = "\n".join(b64(dog_jpeg)[i : i + 76] for i in range(0, len(b64(dog_jpeg)), 76))
    for text in (
        b64(dog_jpeg),
        wrapped,
        "data:image/jpeg;base64," + b64(dog_jpeg),
        b64(dog_jpeg).rstrip("="),
    ):
        body = json.dumps({"image": text, "name": "dog.jpg"}).encode()
        assert bodies.parse_image(body, "application/json") == ImageInput(dog_jpeg, "dog.jpg")


def test_json_batch_rejects_bad_items_but_keeps_the_rest(dog_jpeg):
    body = json.dumps(
        {"images": [{"name": "a", "image": b64(dog_jpeg)}, {"name": "b", "image": "%%%"}, "c", {"name": "d"}]}
    ).encode()

    items = bodies.parse_images(body, "application/json")
    assert items[0] == ImageInput(dog_jpeg, "a")
    assert (
        isinstance(items[1], Rejected)
        and isinstance(items[1].error, InvalidBase64Error)
        and items[1].name == "b"
    )
    assert isinstance(items[2], Rejected) and isinstance(items[2].error, RequestShapeError)
    assert isinstance(items[3], Rejected) and items[3].name == "d"


@pytest.mark.parametrize(
    ("body", "content_type", "error"),
    [
        (b"{}", "text/plain", UnsupportedMediaTypeError),
        (b"{}", None, UnsupportedMediaTypeError),
        (b"{not json", "application/json", InvalidJsonError),
        (b"\xff\xfe", "application/json", InvalidJsonError),
        (b'["image"]', "application/json", RequestShapeError),
        (b'{"image": 5}', "application/json", RequestShapeError),
        (b'{"image": "abc$"}', "application/json", InvalidBase64Error),
        (b'{"image": "\xc3\xa9t\xc3\xa9"}', "application/json", InvalidBase64Error),
        (b"--x\r\n\r\n--x--", "multipart/form-data", RequestShapeError),
        (b"garbage", "multipart/form-data; boundary=zzz", RequestShapeError),
    ],
)
def test_bad_single_bodies_raise_typed_errors(body, content_type, error):
    with pytest.raises(error):
        bodies.parse_image(body, content_type)


def test_multipart_without_a_file_field_says_which_field(dog_jpeg):
    body, content_type = encode_multipart_formdata([("image", ("dog.jpg", dog_jpeg, "image/jpeg"))])
    with pytest.raises(RequestShapeError, match="'file'"):
        bodies.parse_image(body, content_type)


@pytest.mark.parametrize(
    ("document", "error"),
    [
        ({"images": []}, RequestShapeError),
        ({"images": "dog.jpg"}, RequestShapeError),
        ({"image": "abc"}, RequestShapeError),
        ({"images": [{"image": "AAAA"}] * (MAX_BATCH_IMAGES + 1)}, TooManyImagesError),
    ],
)
def test_bad_batch_bodies_raise_typed_errors(document, error):
    with pytest.raises(error):
        bodies.parse_images(json.dumps(document).encode(), "application/json")


def test_too_many_images_is_413_and_names_the_limit():
    files = [("files", (f"{i}.jpg", b"x", "image/jpeg")) for i in range(MAX_BATCH_IMAGES + 1)]
    body, content_type = encode_multipart_formdata(files)
    with pytest.raises(TooManyImagesError, match=f"limit is {MAX_BATCH_IMAGES}") as caught:
        bodies.parse_images(body, content_type)
    assert caught.value.http_status == 413


def test_request_body_decodes_base64_and_enforces_the_payload_limit():
    assert payloads.request_body(b64(b"abc"), True) == b"abc"
    assert payloads.request_body('{"a": 1}', False) == b'{"a": 1}'
    with pytest.raises(EmptyBodyError):
        payloads.request_body(None, False)
    with pytest.raises(EmptyBodyError):
        payloads.request_body("", True)
    with pytest.raises(InvalidBase64Error):
        payloads.request_body("@@@@", True)
    with pytest.raises(PayloadTooLargeError, match=f"{MAX_PAYLOAD_BYTES:,}") as caught:
        payloads.request_body("A" * (MAX_PAYLOAD_BYTES + 4), True)
    assert caught.value.http_status == 413


@pytest.mark.parametrize(("value", "expected"), [(None, 3), ("", 3), ("1", 1), ("10", 10)])
def test_top_k_defaults_and_bounds(value, expected):
    assert bodies.parse_top_k(value) == expected


@pytest.mark.parametrize("value", ["0", "11", "-1", "two", "1.5"])
def test_top_k_out_of_range_is_refused(value):
    with pytest.raises(InvalidParameterError):
        bodies.parse_top_k(value)


def test_limit_is_bounded():
    assert bodies.parse_limit(None) == 20 and bodies.parse_limit("100") == 100
    with pytest.raises(InvalidParameterError):
        bodies.parse_limit("101")


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 5_000, 200_000])
@pytest.mark.parametrize("opening, closing", [("[", "]"), ('{"a":', "}")])
def test_deeply_nested_json_is_invalid_json_not_a_crash(depth, opening, closing):
    # given a JSON body nested far deeper than any route's document, well under the payload limit
    body = (opening * depth + "1" + closing * depth).encode()
    # then every JSON route refuses it as invalid JSON (400), whatever the depth
    for parse in (
        lambda: bodies.parse_image(body, "application/json"),
        lambda: bodies.parse_images(body, "application/json"),
        lambda: payloads.parse_json_object(body),
        lambda: mlops_bodies.parse_training_data(body, "application/json"),
    ):
        with pytest.raises(InvalidJsonError, match="nested deeper"):
            parse()


def test_json_at_the_depth_limit_is_accepted():
    body = ("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH).encode()
    assert payloads.parse_json(body) is not None


@pytest.mark.parametrize("boundary", ["it's", "a(b)c", "x,y/z:w=v?", "two words", "'a'b'"])
@pytest.mark.parametrize("quoted", [False, True])
def test_every_boundary_rfc_2046_allows_is_read_quoted_or_not(boundary, quoted):
    # urllib3 (requests) writes the boundary unquoted whatever it holds; the standard library alone
    # would read "'" as an RFC 2231 delimiter and stop at "(" or ","
    body, content_type = encode_multipart_formdata([("file", ("a.bin", AWKWARD, "image/png"))], boundary)
    if quoted:
        content_type = f'multipart/form-data; boundary="{boundary}"'

    assert payloads.parse_multipart(body, content_type) == [payloads.FormPart("file", "a.bin", AWKWARD)]


def test_a_quoted_boundary_with_escapes_is_read():
    body = b'--a"b\\c\r\nContent-Disposition: form-data; name="file"\r\n\r\nDATA\r\n--a"b\\c--\r\n'
    parts = payloads.parse_multipart(body, 'multipart/form-data; boundary="a\\"b\\\\c"')
    assert [part.data for part in parts] == [b"DATA"]


@pytest.mark.parametrize("content_type", ["multipart/form-data;0*", "multipart/form-data; boundary=x;0*"])
def test_a_multipart_header_the_standard_library_cannot_parse_is_a_bad_request(content_type):
    # CPython's email header parser raises IndexError on a parameter named "0*"; the caller sent it
    with pytest.raises(RequestShapeError, match="cannot be parsed"):
        payloads.parse_multipart(b"--x\r\n\r\n--x--\r\n", content_type)
