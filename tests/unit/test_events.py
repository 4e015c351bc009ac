"""``infra/events.py``, the one event builder of the local API and ``make invoke``."""

import base64
import json
from pathlib import Path

from infra import events
from infra.template import Template

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = Template(REPO / "template.yaml")


def shape(event: dict) -> tuple[set, set, set]:
    context = event["requestContext"]
    return set(event), set(context), set(context["identity"])


def test_an_image_file_becomes_the_raw_body_event_api_gateway_sends(tmp_path, dog_jpeg):
    image = tmp_path / "dog.jpg"
    image.write_bytes(dog_jpeg)

    event = events.event_for_request(TEMPLATE, "PredictFunction", file=image)

    assert (event["httpMethod"], event["resource"], event["path"]) == ("POST", "/predict", "/predict")
    assert event["headers"]["Content-Type"] == "image/jpeg"
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == dog_jpeg
    assert event["requestContext"]["stage"] == TEMPLATE.stage_name
    reference = json.loads((REPO / "shared" / "events" / "predict-raw.json").read_text())
    assert shape(event) == shape(reference)


def test_path_parameters_are_filled_from_the_path():
    event = events.event_for_request(TEMPLATE, "PredictionsFunction", path="/predictions/abc")

    assert event["resource"] == "/predictions/{prediction_id}"
    assert event["pathParameters"] == {"prediction_id": "abc"}
    assert event["body"] is None and event["isBase64Encoded"] is False


def test_json_stays_text_and_repeated_query_parameters_keep_every_value():
    route = TEMPLATE.routes[0]

    event = events.api_event(
        route=route,
        path=route.path,
        query=[("tag", "a"), ("tag", "b")],
        headers=[("Content-Type", "application/json")],
        body=b'{"image": "aGk="}',
        binary_media_types=TEMPLATE.binary_media_types,
    )

    assert event["body"] == '{"image": "aGk="}' and event["isBase64Encoded"] is False
    assert event["queryStringParameters"] == {"tag": "b"}
    assert event["multiValueQueryStringParameters"] == {"tag": ["a", "b"]}


def test_binary_media_type_patterns_match_like_api_gateway():
    types = ("image/*", "multipart/form-data", "application/zip")

    assert events.is_binary("image/png", types)
    assert events.is_binary("multipart/form-data; boundary=x", types)
    assert not events.is_binary("application/json", types)
    assert not events.is_binary(None, types)


def test_path_templates_match_whole_segments():
    assert events.match_path("/predictions/{id}", "/predictions/a1") == {"id": "a1"}
    assert events.match_path("/predictions/{id}", "/predictions") is None
    assert events.match_path("/predict", "/predict/batch") is None
    assert events.match_path("/files/{path+}", "/files/a/b.zip") == {"path": "a/b.zip"}
