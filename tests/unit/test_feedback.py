"""Feedback on predictions, without an API Gateway event: written onto the record conditionally,
idempotent, replaced only on request, owners and operators only; the kept input becomes a training
image of the true label, moved on a replaced label and never deleted while something else produced
it; the agreement metric; filtered listings."""

import base64
import io
import json
from contextlib import redirect_stdout
from dataclasses import replace

import numpy as np
import pytest

from classifier import storage
from classifier.api import bodies, feedback, records
from classifier.api.bodies import FeedbackRequest
from classifier.api.callers import Caller, Role
from classifier.errors import ConflictError, InvalidParameterError, RequestShapeError, ResourceNotFoundError
from classifier.mlops import training_data
from classifier.preprocessing import decode_image, encode_png
from classifier.settings import Settings
from tests.conftest import encode, gradient
from tests.unit.test_records import make_record

ALICE = Caller("alice-key-id", Role.CLIENT)
BOB = Caller("bob-key-id", Role.CLIENT)
OPERATOR = Caller("operator-key-id", Role.OPERATOR)
PIXELS = decode_image(encode(gradient(), "PNG"))
OTHER_PIXELS = decode_image(encode(gradient(40, 40), "PNG"))


def stored(aws, *, pixels=PIXELS, owner=ALICE.key_id, **changes) -> str:
    record = make_record(owner=owner, input_png=None if pixels is None else encode_png(pixels), **changes)
    assert records.store(aws.predictions, record)
    return record.id


def give(aws, prediction_id, caller=ALICE, label=None, correct=None, replace=False):
    return feedback.give_feedback(
        aws.predictions,
        aws.s3,
        aws.bucket,
        prediction_id,
        FeedbackRequest(label, correct, replace),
        caller,
    )


def exists(aws, key) -> bool:
    return "Contents" in aws.s3.list_objects_v2(Bucket=aws.bucket, Prefix=key)


def test_the_kept_input_is_a_lossless_png_of_the_pixels_the_model_saw():
    png = encode_png(PIXELS)

    assert png.startswith(b"\x89PNG") and len(png) < 4096
    assert np.array_equal(decode_image(png), PIXELS) and encode_png(PIXELS) == png  # deterministic


def test_keeping_inputs_is_a_setting_on_by_default():
    assert Settings.from_env({}).keep_model_inputs is True
    assert Settings.from_env({"KEEP_MODEL_INPUTS": "false"}).keep_model_inputs is False
    with pytest.raises(ValueError, match="KEEP_MODEL_INPUTS"):
        Settings.from_env({"KEEP_MODEL_INPUTS": "maybe"})


def test_a_label_is_written_onto_the_record_and_the_input_becomes_a_training_image(aws):
    prediction_id = stored(aws)

    outcome = give(aws, prediction_id, label="cat")

    record = records.get_record(aws.predictions, prediction_id, owner=ALICE.key_id)
    assert record["feedback"] == outcome.answer["feedback"]
    assert record["feedback"]["label"] == "cat" and record["feedback"]["correct"] is False
    assert record["feedback"]["by"] == ALICE.key_id and record["feedback"]["given_at"].endswith("Z")
    assert base64.b64decode(record["input_png"]) == encode_png(PIXELS)
    image = outcome.answer["training_image"]
    assert image == {
        "added": True,
        "label": "cat",
        "key": training_data.feedback_image_key("cat", encode_png(PIXELS)),
    }
    assert outcome.written and not outcome.correct and outcome.model_version == "v1"

    data, manifest = training_data.load_user_data_with_manifest(aws.s3, aws.bucket)
    assert np.array_equal(data.images[0], PIXELS) and data.counts()["cat"] == 1
    assert manifest["feedback_images"] == [
        {"key": image["key"], "label": "cat", "prediction_ids": [prediction_id]}
    ]
    assert (manifest["uploads"], manifest["feedback"]) == (0, 1)
    summary = training_data.summary(aws.s3, aws.bucket, base_counts={})
    assert summary["labels"]["cat"] == {"base": 0, "uploads": 0, "feedback": 1, "user": 1}
    head = aws.s3.head_object(Bucket=aws.bucket, Key=image["key"])
    assert head["Metadata"] == {"source": "feedback", "prediction-id": prediction_id, "owner": ALICE.key_id}


def test_the_same_feedback_twice_is_idempotent(aws):
    prediction_id = stored(aws)
    first = give(aws, prediction_id, label="cat")

    again = give(aws, prediction_id, label="cat")

    assert again.answer == first.answer and not again.written


def test_correct_true_means_the_predicted_label(aws):
    prediction_id = stored(aws)

    outcome = give(aws, prediction_id, correct=True)

    assert outcome.answer["feedback"]["label"] == "dog" and outcome.correct
    assert give(aws, prediction_id, label="dog").answer == outcome.answer  # the same feedback
    with pytest.raises(RequestShapeError, match="contradicts"):
        give(aws, stored(aws), label="dog", correct=False)


def test_another_label_needs_replace_and_then_moves_the_image(aws):
    prediction_id = stored(aws)
    old = give(aws, prediction_id, label="cat").answer["training_image"]["key"]

    with pytest.raises(ConflictError) as refused:
        give(aws, prediction_id, label="bird")
    assert refused.value.http_status == 409 and refused.value.code == "conflict"
    assert records.get_record(aws.predictions, prediction_id)["feedback"]["label"] == "cat"

    moved = give(aws, prediction_id, label="dog", replace=True)

    assert moved.written and moved.correct and moved.answer["feedback"]["label"] == "dog"
    assert not exists(aws, old) and exists(aws, moved.answer["training_image"]["key"])
    assert not exists(aws, storage.provenance_prefix(old))
    assert training_data.summary(aws.s3, aws.bucket, {})["feedback_total"] == 1


def test_a_replace_that_stopped_before_the_old_image_went_is_finished_by_its_repeat(aws, monkeypatch):
    # The record is written first; a sandbox that dies before the old label's image is taken off
    # leaves it behind, and the client's retry of the same request must take it off.
    prediction_id = stored(aws)
    cat = give(aws, prediction_id, label="cat").answer["training_image"]["key"]
    remove = training_data.remove_feedback_image

    def interrupted(*args):
        raise TimeoutError("the sandbox stopped here")

    monkeypatch.setattr(training_data, "remove_feedback_image", interrupted)
    with pytest.raises(TimeoutError):
        give(aws, prediction_id, label="bird", replace=True)
    assert exists(aws, cat)  # the stale image, still counted as training data of "cat"
    monkeypatch.setattr(training_data, "remove_feedback_image", remove)

    again = give(aws, prediction_id, label="bird", replace=True)

    assert not again.written and again.answer["feedback"]["replaced"] == ["cat"]
    assert not exists(aws, cat) and exists(aws, again.answer["training_image"]["key"])
    assert training_data.summary(aws.s3, aws.bucket, {})["feedback_total"] == 1


def test_a_label_replaced_twice_remembers_every_label_it_replaced(aws):
    prediction_id = stored(aws)
    give(aws, prediction_id, label="cat")
    assert give(aws, prediction_id, label="bird", replace=True).answer["feedback"]["replaced"] == ["cat"]
    assert give(aws, prediction_id, label="cat", replace=True).answer["feedback"]["replaced"] == ["bird"]
    final = give(aws, prediction_id, label="frog", replace=True)

    assert final.answer["feedback"]["replaced"] == ["bird", "cat"]
    assert records.get_record(aws.predictions, prediction_id)["feedback"] == final.answer["feedback"]
    _, manifest = training_data.load_user_data_with_manifest(aws.s3, aws.bucket)
    assert [image["label"] for image in manifest["feedback_images"]] == ["frog"]


def test_a_replaced_label_keeps_an_image_another_feedback_also_produced(aws):
    first, second = stored(aws), stored(aws, owner=BOB.key_id)  # the same input twice
    key = give(aws, first, label="cat").answer["training_image"]["key"]
    assert give(aws, second, BOB, label="cat").answer["training_image"]["key"] == key

    give(aws, first, label="bird", replace=True)

    assert exists(aws, key)  # bob's feedback still names it
    _, manifest = training_data.load_user_data_with_manifest(aws.s3, aws.bucket)
    assert {(image["label"], tuple(image["prediction_ids"])) for image in manifest["feedback_images"]} == {
        ("cat", (second,)),
        ("bird", (first,)),
    }
    give(aws, second, BOB, label="bird", replace=True)
    assert not exists(aws, key)  # the last producer moved: the image goes


@pytest.mark.parametrize("upload_first", [True, False], ids=["upload-first", "feedback-first"])
def test_a_replaced_label_never_deletes_an_uploaded_image(aws, upload_first):
    png = encode_png(PIXELS)
    prediction_id = stored(aws)
    if upload_first:
        assert (
            training_data.add_images(aws.s3, aws.bucket, "cat", [("mine.png", png)])[0].status == "accepted"
        )
    key = give(aws, prediction_id, label="cat").answer["training_image"]["key"]
    if not upload_first:
        assert (
            training_data.add_images(aws.s3, aws.bucket, "cat", [("mine.png", png)])[0].status == "duplicate"
        )

    give(aws, prediction_id, label="bird", replace=True)

    assert exists(aws, key)
    assert training_data.summary(aws.s3, aws.bucket, {})["labels"]["cat"]["uploads"] == 1


def test_without_a_kept_input_the_feedback_is_recorded_and_no_image_added(aws):
    prediction_id = stored(aws, pixels=None)

    outcome = give(aws, prediction_id, label="cat")

    assert (
        outcome.answer["training_image"]["added"] is False
        and "KEEP_MODEL_INPUTS" in outcome.answer["training_image"]["reason"]
    )
    assert records.get_record(aws.predictions, prediction_id)["feedback"]["label"] == "cat"
    assert training_data.summary(aws.s3, aws.bucket, {})["user_total"] == 0


def test_only_the_owner_or_an_operator_may_give_feedback(aws):
    prediction_id = stored(aws)

    with pytest.raises(ResourceNotFoundError):
        give(aws, prediction_id, BOB, label="cat")  # like a record that does not exist
    with pytest.raises(ResourceNotFoundError):
        give(aws, "no-such-id", ALICE, label="cat")
    assert "feedback" not in records.get_record(aws.predictions, prediction_id)

    outcome = give(aws, prediction_id, OPERATOR, label="cat")
    assert outcome.answer["feedback"]["by"] == OPERATOR.key_id


def test_feedback_written_by_someone_else_meanwhile_is_decided_again(aws, monkeypatch):
    prediction_id = stored(aws)
    real_read = records.read_item

    def stale_read(*args, **kwargs):
        item = real_read(*args, **kwargs)
        if "feedback" not in item and not calls:  # the other request writes just after this read
            calls.append(1)
            give(aws, prediction_id, OPERATOR, label="bird")
        return item

    calls: list = []
    monkeypatch.setattr(records, "read_item", stale_read)

    with pytest.raises(ConflictError):
        give(aws, prediction_id, label="cat")  # the condition fails, the re-read sees "bird": 409
    assert records.get_record(aws.predictions, prediction_id)["feedback"]["label"] == "bird"


def test_the_agreement_metric_has_the_model_version(aws):
    out = io.StringIO()
    with redirect_stdout(out):
        feedback.emit_agreement(give(aws, stored(aws, model_version="v7"), label="cat"))
        feedback.emit_agreement(give(aws, stored(aws, model_version="v7", pixels=OTHER_PIXELS), correct=True))
        feedback.emit_agreement(give(aws, stored(aws, model_version="v7", pixels=OTHER_PIXELS), correct=True))
    lines = [json.loads(line) for line in out.getvalue().splitlines()]

    assert [(set(line) & {"FeedbackWrong", "FeedbackCorrect"}).pop() for line in lines] == [
        "FeedbackWrong",
        "FeedbackCorrect",
        "FeedbackCorrect",
    ]
    assert all(line["ModelVersion"] == "v7" for line in lines)
    dimensions = lines[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]
    assert "ModelVersion" in dimensions


def test_a_repeat_emits_no_metric(aws):
    prediction_id = stored(aws)
    give(aws, prediction_id, label="cat")
    out = io.StringIO()
    with redirect_stdout(out):
        feedback.emit_agreement(give(aws, prediction_id, label="cat"))
    assert out.getvalue() == ""


@pytest.mark.parametrize(
    "body",
    [
        b"{}",
        b'{"label": "dragon"}',
        b'{"label": ["cat"]}',
        b'{"correct": false}',
        b'{"correct": "yes"}',
        b'{"label": "cat", "replace": 1}',
        b'{"label": "cat", "extra": 1}',
        b"[]",
    ],
)
def test_bad_feedback_bodies_are_400(body):
    with pytest.raises(RequestShapeError):
        bodies.parse_feedback(body, "application/json")


def test_feedback_bodies():
    assert bodies.parse_feedback(b'{"label": "cat"}', "application/json") == FeedbackRequest(
        "cat", None, False
    )
    assert bodies.parse_feedback(b'{"correct": true}', "application/json") == FeedbackRequest(
        None, True, False
    )
    assert bodies.parse_feedback(b'{"label": "cat", "replace": true}', "application/json").replace


@pytest.mark.parametrize(
    "query", [("dragon", None, None), (None, "yes", None), (None, None, "1"), (None, "True", None)]
)
def test_bad_filters_are_invalid_parameters(query):
    with pytest.raises(InvalidParameterError):
        bodies.parse_list_filter(*query)


def page_ids(aws, *, limit, owner=None, **filters) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        page = records.list_records(
            aws.predictions, limit=limit, cursor=cursor, owner=owner, filters=records.ListFilter(**filters)
        )
        pages.append([item["id"] for item in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages


@pytest.mark.parametrize("owner", [None, ALICE.key_id], ids=["everyone", "one-owner"])
def test_filtered_listings_page_through_exactly_the_matching_records(aws, monkeypatch, owner):
    monkeypatch.setattr(records, "FILTERED_QUERY_LIMIT", 3)  # several queries per page
    made = [
        stored(aws, created_at=f"2026-01-01T00:00:{second:02d}.000000Z", label="cat" if second % 4 else "dog")
        for second in range(20)
    ]
    for position in (1, 2, 5, 9, 13, 17):  # wrong: labelled "bird"
        give(aws, made[position], label="bird")
    for position in (3, 8):  # right
        give(aws, made[position], correct=True)
    newest_first = made[::-1]

    wrong = page_ids(aws, limit=2, owner=owner, wrong=True)
    assert sum(wrong, []) == [i for i in newest_first if made.index(i) in (1, 2, 5, 9, 13, 17)]
    assert all(len(page) <= 2 for page in wrong)
    assert sum(page_ids(aws, limit=4, owner=owner, has_feedback=True), []) == [
        i for i in newest_first if made.index(i) in (1, 2, 3, 5, 8, 9, 13, 17)
    ]
    assert sum(page_ids(aws, limit=5, owner=owner, has_feedback=False, label="dog"), []) == [
        i for i in newest_first if made.index(i) % 4 == 0 and made.index(i) not in (8,)
    ]
    assert sum(page_ids(aws, limit=3, owner=owner, wrong=False), []) == [made[8], made[3]]


def test_a_filtered_page_stops_after_its_bounded_queries_and_gives_a_cursor(aws, monkeypatch):
    monkeypatch.setattr(records, "FILTERED_QUERY_LIMIT", 2)
    monkeypatch.setattr(records, "MAX_FILTERED_QUERIES", 2)
    made = [stored(aws, created_at=f"2026-01-01T00:00:{second:02d}.000000Z") for second in range(10)]
    give(aws, made[0], label="cat")  # the oldest: 9 records before it in the listing

    pages = page_ids(aws, limit=1, wrong=True)  # 2 queries of 2 records a page

    assert pages[0] == [] and sum(pages, []) == [made[0]]  # short pages, then the match


def test_listed_records_carry_the_kept_input_as_base64(aws):
    prediction_id = stored(aws)

    (item,) = records.list_records(aws.predictions, limit=10)["items"]

    assert item["id"] == prediction_id and base64.b64decode(item["input_png"]) == encode_png(PIXELS)


def test_a_record_not_stored_is_logged_with_its_input_as_base64(aws):
    record = replace(make_record(), input_png=encode_png(PIXELS))
    logged = records.record_json(record)
    assert base64.b64decode(logged["input_png"]) == record.input_png
    json.dumps(logged)
