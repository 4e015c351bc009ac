"""The predict, batch and predictions functions, driven by the event files in shared/events/ with
moto standing in for DynamoDB and S3 (tables created from template.yaml)."""

import base64
import io
import json

import pytest
from PIL import Image

from classifier.api import records
from classifier.labels import LABELS
from classifier.limits import MAX_BATCH_IMAGES, MAX_PAYLOAD_BYTES
from functions.batch import app as batch
from functions.predict import app as predict
from functions.predictions import app as predictions


def call(handler, event, context) -> tuple[int, dict]:
    response = handler.lambda_handler(event, context)
    assert response["multiValueHeaders"]["Content-Type"] == ["application/json"]
    return response["statusCode"], json.loads(response["body"])


def stored_count(aws) -> int:
    return aws.predictions.scan(Select="COUNT")["Count"]


@pytest.mark.parametrize("name", ["predict-raw", "predict-multipart", "predict-json"])
def test_predict_classifies_the_dog_and_stores_the_record(aws, load_event, lambda_context, name):
    status, body = call(predict, load_event(name), lambda_context)

    assert status == 200
    assert body["label"] == "dog" and body["confidence"] > 0.5
    assert list(body["probabilities"]) == list(LABELS)
    assert sum(body["probabilities"].values()) == pytest.approx(1, abs=1e-4)
    assert body["top_k"][0] == {"label": "dog", "probability": body["confidence"]}
    assert body["timings_ms"]["decode"] >= 0 and body["timings_ms"]["inference"] > 0
    assert body["model_version"] and body["source"] == "single" and body["stored"] is True
    stored = records.get_record(aws.predictions, body["id"])
    assert stored["label"] == "dog" and stored["image_sha256"] == body["image_sha256"]
    assert stored["confidence"] == body["confidence"]  # the same figure in the answer and the table


def test_top_k_query_parameter_sets_the_length_of_top_k(aws, load_event, lambda_context):
    event = load_event("predict-json")  # ?top_k=5
    assert len(call(predict, event, lambda_context)[1]["top_k"]) == 5
    event["queryStringParameters"] = {"top_k": "10"}
    top = call(predict, event, lambda_context)[1]["top_k"]
    assert len(top) == 10 and [entry["probability"] for entry in top] == sorted(
        (entry["probability"] for entry in top), reverse=True
    )


def test_batch_answers_each_item_in_order_and_one_bad_image_fails_alone(aws, load_event, lambda_context):
    status, body = call(batch, load_event("batch-json"), lambda_context)

    assert status == 200
    assert (body["count"], body["succeeded"], body["failed"]) == (4, 3, 1)
    assert [entry["index"] for entry in body["results"]] == [0, 1, 2, 3]
    assert [entry.get("label") for entry in body["results"][:3]] == ["dog", "cat", "ship"]
    assert [entry["image_name"] for entry in body["results"][:3]] == ["dog.jpg", "cat.jpg", "ship.jpg"]
    assert body["results"][3]["name"] == "notes.txt"
    assert body["results"][3]["error"]["code"] == "undecodable_image"
    assert {entry["batch_id"] for entry in body["results"][:3]} == {body["batch_id"]}
    assert body["stored"] is True and stored_count(aws) == 3


def test_batch_multipart_takes_repeated_files(aws, load_event, lambda_context):
    status, body = call(batch, load_event("batch-multipart"), lambda_context)
    assert status == 200 and [entry["label"] for entry in body["results"]] == ["dog", "cat", "ship"]


def test_batch_runs_the_model_once(aws, load_event, lambda_context, monkeypatch):
    calls = []
    original = batch.model_provider.current_model

    def counting_model():
        served = original()
        real_predict = served.predictor.predict
        monkeypatch.setattr(
            served.predictor, "predict", lambda images: calls.append(len(images)) or real_predict(images)
        )
        return served

    monkeypatch.setattr(batch.model_provider, "current_model", counting_model)
    call(batch, load_event("batch-json"), lambda_context)
    assert calls == [3]


@pytest.mark.parametrize(
    ("name", "handler", "status", "code"),
    [
        ("predict-bad-request", predict, 400, "invalid_base64"),
        ("batch-bad-request", batch, 400, "invalid_request"),
    ],
)
def test_the_bad_request_events_get_a_4xx_json_error(
    aws, load_event, lambda_context, name, handler, status, code
):
    got_status, body = call(handler, load_event(name), lambda_context)
    assert (got_status, body["error"]["code"]) == (status, code) and body["error"]["message"]
    assert stored_count(aws) == 0


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def with_body(event: dict, body: bytes | str | None, content_type: str | None, *, binary: bool) -> dict:
    headers = {key: value for key, value in (event["headers"] or {}).items() if key.lower() != "content-type"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    event["headers"] = headers
    event["multiValueHeaders"] = {key: [value] for key, value in headers.items()}
    if isinstance(body, bytes):
        body = b64(body) if binary else body.decode("utf-8", "replace")
    event["body"] = body
    event["isBase64Encoded"] = binary
    return event


def many_images(count: int) -> bytes:
    return json.dumps({"images": [{"name": f"{i}", "image": "AAAA"} for i in range(count)]}).encode()


# (body, content type, base64-encoded by API Gateway, expected status, expected code)
BAD_INPUTS = {
    "empty body": (None, "image/jpeg", True, 400, "empty_body"),
    "empty JSON body": ("", "application/json", False, 400, "empty_body"),
    "wrong content type": (b"hello", "text/plain", False, 415, "unsupported_media_type"),
    "no content type": (b"hello", None, False, 415, "unsupported_media_type"),
    "broken base64 body": ("%%%not base64%%%", "image/jpeg", True, 400, "invalid_base64"),
    "undecodable image": (b"GIF89a but not really", "image/gif", True, 400, "undecodable_image"),
    "text as an image": (b"\x00" * 100, "image/png", True, 400, "undecodable_image"),
    "tiny image": (None, "image/png", True, 400, "image_too_small"),
    "oversized body": ("A" * (MAX_PAYLOAD_BYTES + 4), "image/jpeg", True, 413, "payload_too_large"),
    "malformed JSON": (b'{"image": ', "application/json", False, 400, "invalid_json"),
    "wrong JSON shape": (b'[{"image": "AAAA"}]', "application/json", False, 400, "invalid_request"),
    "broken multipart": (b"no boundary here", "multipart/form-data", True, 400, "invalid_request"),
}


@pytest.fixture(scope="module")
def tiny_image() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
@pytest.mark.parametrize("handler", [predict, batch], ids=["predict", "batch"])
def test_bad_input_gets_a_4xx_json_error_never_a_500(
    aws, load_event, lambda_context, handler, case, tiny_image
):
    body, content_type, binary, status, code = BAD_INPUTS[case]
    if case == "tiny image":
        body = tiny_image
    event = load_event("predict-raw" if handler is predict else "batch-json")

    got_status, got = call(handler, with_body(event, body, content_type, binary=binary), lambda_context)

    if handler is batch and code in ("undecodable_image", "image_too_small"):
        # a batch answers a bad image in its entry, not for the whole request
        assert got_status == 200 and got["results"][0]["error"]["code"] == code
    else:
        assert (got_status, got["error"]["code"]) == (status, code)
        assert got["error"]["message"]
    assert stored_count(aws) == 0


def test_too_many_images_is_413_with_the_limit(aws, load_event, lambda_context):
    event = with_body(
        load_event("batch-json"), many_images(MAX_BATCH_IMAGES + 1), "application/json", binary=False
    )
    status, body = call(batch, event, lambda_context)
    assert status == 413 and body["error"]["code"] == "too_many_images"
    assert str(MAX_BATCH_IMAGES) in body["error"]["message"]


def test_bad_top_k_is_400(aws, load_event, lambda_context):
    event = load_event("predict-raw")
    event["queryStringParameters"] = {"top_k": "0"}
    assert call(predict, event, lambda_context)[1]["error"]["code"] == "invalid_parameter"


def test_unknown_route_is_a_json_404(aws, load_event, lambda_context):
    event = load_event("predict-raw")
    event["path"] = "/nope"
    status, body = call(predict, event, lambda_context)
    assert status == 404 and body["error"]["code"] == "not_found"


def function_log(handler, monkeypatch) -> io.StringIO:
    """The JSON lines the function's Powertools logger writes (to stdout, hence CloudWatch, in Lambda)."""
    stream = io.StringIO()
    monkeypatch.setattr(handler.logger.registered_handler, "stream", stream)
    return stream


def test_a_record_write_failure_still_returns_the_prediction(aws, load_event, lambda_context, monkeypatch):
    # given a predictions table that cannot be written (it does not exist)
    monkeypatch.setattr(records, "RETRY_DELAY_S", 0)
    monkeypatch.setenv("PREDICTIONS_TABLE", "no-such-table")
    predict.get_settings.cache_clear()
    log = function_log(predict, monkeypatch)

    status, body = call(predict, load_event("predict-raw"), lambda_context)

    # then the caller still gets the prediction, flagged as not stored, and the log has the full record
    assert status == 200 and body["label"] == "dog" and body["stored"] is False
    logged = [json.loads(line) for line in log.getvalue().splitlines() if '"prediction_record"' in line]
    assert logged[-1]["prediction_record"]["id"] == body["id"]
    assert logged[-1]["prediction_record"]["probabilities"] == body["probabilities"]


def test_a_batch_write_failure_flags_every_item(aws, load_event, lambda_context, monkeypatch):
    monkeypatch.setattr(records, "RETRY_DELAY_S", 0)
    monkeypatch.setenv("PREDICTIONS_TABLE", "no-such-table")
    batch.get_settings.cache_clear()

    status, body = call(batch, load_event("batch-multipart"), lambda_context)
    assert status == 200 and body["stored"] is False
    assert [entry["stored"] for entry in body["results"]] == [False, False, False]
    assert [entry["label"] for entry in body["results"]] == ["dog", "cat", "ship"]


def test_predictions_are_listed_newest_first_and_fetched_by_id(aws, load_event, lambda_context):
    made = [call(predict, load_event("predict-raw"), lambda_context)[1]["id"] for _ in range(3)]

    status, page = call(predictions, load_event("predictions-list"), lambda_context)
    assert status == 200 and [item["id"] for item in page["items"]] == made[::-1]
    assert page["next_cursor"] is None

    event = load_event("predictions-list")
    event["queryStringParameters"] = {"limit": "2"}
    first = call(predictions, event, lambda_context)[1]
    event["queryStringParameters"] = {"limit": "2", "cursor": first["next_cursor"]}
    second = call(predictions, event, lambda_context)[1]
    assert [item["id"] for item in first["items"] + second["items"]] == made[::-1]

    event = load_event("predictions-get")
    event["path"] = f"/predictions/{made[0]}"
    event["pathParameters"] = {"prediction_id": made[0]}
    status, record = call(predictions, event, lambda_context)
    assert status == 200 and record["id"] == made[0] and record["label"] == "dog"


@pytest.mark.parametrize(
    ("query", "code"), [({"limit": "0"}, "invalid_parameter"), ({"cursor": "garbage!"}, "invalid_parameter")]
)
def test_bad_listing_parameters_are_400(aws, load_event, lambda_context, query, code):
    event = load_event("predictions-list")
    event["queryStringParameters"] = query
    status, body = call(predictions, event, lambda_context)
    assert (status, body["error"]["code"]) == (400, code)


def test_an_unknown_prediction_is_404(aws, load_event, lambda_context):
    status, body = call(predictions, load_event("predictions-get"), lambda_context)
    assert status == 404 and body["error"]["code"] == "not_found"


def feedback_event(load_event, prediction_id: str, body: dict) -> dict:
    event = load_event("feedback")
    event["path"] = f"/predictions/{prediction_id}/feedback"
    event["pathParameters"] = {"prediction_id": prediction_id}
    event["body"] = json.dumps(body)
    return event


def test_predict_keeps_the_model_input_in_the_record_not_in_the_answer(aws, load_event, lambda_context):
    status, body = call(predict, load_event("predict-raw"), lambda_context)

    assert status == 200 and "input_png" not in body
    event = load_event("predictions-get")
    event["path"], event["pathParameters"] = f"/predictions/{body['id']}", {"prediction_id": body["id"]}
    record = call(predictions, event, lambda_context)[1]
    kept = Image.open(io.BytesIO(base64.b64decode(record["input_png"])))
    assert (kept.format, kept.size, kept.mode) == ("PNG", (32, 32), "RGB")


def test_feedback_through_the_event_file_then_listed_as_wrong(aws, load_event, lambda_context):
    made = [call(predict, load_event("predict-raw"), lambda_context)[1]["id"] for _ in range(3)]

    status, answer = call(predictions, feedback_event(load_event, made[1], {"label": "cat"}), lambda_context)
    assert status == 200 and answer["feedback"]["label"] == "cat" and answer["feedback"]["correct"] is False
    assert answer["feedback"]["by"] == "local" and answer["training_image"]["added"] is True
    again = call(predictions, feedback_event(load_event, made[1], {"label": "cat"}), lambda_context)
    assert again == (200, answer)
    status, conflict = call(
        predictions, feedback_event(load_event, made[1], {"label": "dog"}), lambda_context
    )
    assert (status, conflict["error"]["code"]) == (409, "conflict")
    status, right = call(predictions, feedback_event(load_event, made[2], {"correct": True}), lambda_context)
    assert status == 200 and right["feedback"] == {**right["feedback"], "label": "dog", "correct": True}

    event = load_event("predictions-list")
    event["queryStringParameters"] = {"wrong": "true"}
    assert [item["id"] for item in call(predictions, event, lambda_context)[1]["items"]] == [made[1]]
    event["queryStringParameters"] = {"has_feedback": "false", "label": "dog"}
    assert [item["id"] for item in call(predictions, event, lambda_context)[1]["items"]] == [made[0]]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"label": "dragon"}, 400, "invalid_request"),
        ({}, 400, "invalid_request"),
        ("{not json", 400, "invalid_json"),
    ],
)
def test_bad_feedback_is_a_4xx(aws, load_event, lambda_context, body, status, code):
    made = call(predict, load_event("predict-raw"), lambda_context)[1]["id"]
    event = feedback_event(load_event, made, {})
    event["body"] = body if isinstance(body, str) else json.dumps(body)
    got_status, got = call(predictions, event, lambda_context)
    assert (got_status, got["error"]["code"]) == (status, code)


def test_feedback_on_an_unknown_prediction_is_404(aws, load_event, lambda_context):
    status, body = call(predictions, load_event("feedback"), lambda_context)
    assert (status, body["error"]["code"]) == (404, "not_found")


@pytest.mark.parametrize("query", [{"wrong": "maybe"}, {"has_feedback": "1"}, {"label": "dragon"}])
def test_bad_filters_are_400(aws, load_event, lambda_context, query):
    event = load_event("predictions-list")
    event["queryStringParameters"] = query
    status, body = call(predictions, event, lambda_context)
    assert (status, body["error"]["code"]) == (400, "invalid_parameter")


def test_with_keeping_off_no_input_is_kept_and_feedback_adds_no_image(
    aws, load_event, lambda_context, monkeypatch
):
    monkeypatch.setenv("KEEP_MODEL_INPUTS", "false")
    predict.get_settings.cache_clear()

    made = call(predict, load_event("predict-raw"), lambda_context)[1]["id"]

    assert "input_png" not in records.get_record(aws.predictions, made)
    status, answer = call(predictions, feedback_event(load_event, made, {"label": "cat"}), lambda_context)
    assert status == 200 and answer["training_image"]["added"] is False
    assert records.get_record(aws.predictions, made)["feedback"]["label"] == "cat"
    assert "Contents" not in aws.s3.list_objects_v2(Bucket=aws.bucket, Prefix="training-data/")
