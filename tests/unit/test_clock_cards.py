"""One timestamp format for every record, and one way to read a model card."""

import json
import re

import pytest

from classifier import clock, storage
from classifier.cards import BASELINE_DIR, baseline_card, parse_card, read_card
from classifier.errors import ModelLoadError
from classifier.mlops import jobs
from tests.unit.conftest import FUNCTION_ENVIRONMENT

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def test_records_jobs_and_uploads_share_one_sortable_format(aws):
    from classifier.aws import table
    from classifier.mlops import training_data

    # given a job and an upload, written by different modules
    job = jobs.create_job(table(FUNCTION_ENVIRONMENT["JOBS_TABLE"]), {})
    upload = training_data.create_upload(aws.s3, aws.bucket)
    key = storage.upload_key(upload["upload_id"], training_data.REQUEST_NAME)
    request = json.loads(aws.s3.get_object(Bucket=aws.bucket, Key=key)["Body"].read())

    # then their timestamps have the predictions' format: UTC, microseconds, sortable as text
    for stamp in (clock.utc_now(), job["created_at"], job["updated_at"], request["created_at"]):
        assert TIMESTAMP.match(stamp), stamp
    assert clock.utc_timestamp(0) == "1970-01-01T00:00:00.000000Z"
    assert sorted([clock.utc_timestamp(10.5), clock.utc_timestamp(2)]) == [
        clock.utc_timestamp(2),
        clock.utc_timestamp(10.5),
    ]


def test_the_baseline_card_is_read_once_and_names_its_model():
    card = baseline_card()
    assert card is baseline_card() and card == read_card(BASELINE_DIR)
    assert card["version"] and len(card["sha256"]) == 64


@pytest.mark.parametrize("content", [b"not json", b"[1, 2]"])
def test_a_broken_card_is_a_model_load_error(content):
    with pytest.raises(ModelLoadError, match="card"):
        parse_card(content)


def test_a_missing_card_is_a_model_load_error(tmp_path):
    with pytest.raises(ModelLoadError, match="cannot be read"):
        read_card(tmp_path)
