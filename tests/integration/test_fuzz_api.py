"""Schema-driven fuzzing of the whole API: schemathesis generates requests for every operation of
``shared/openapi.yaml`` (valid ones and ones that break the document), sends them to the local API
on the real template with a client key or an operator key, and checks every answer against the
document: never a 5xx, a documented status code and content type, and a body that fits the
status's schema. No hand-written list of cases covers what a generator finds.

``FUZZ_EXAMPLES`` (default 1000: 100 for each operation with inputs) sets how many requests are
generated in all: ``FUZZ_EXAMPLES=5000 pytest tests/integration/test_fuzz_api.py`` fuzzes harder.
A summary (requests by operation and status, how many reached a function) is printed at the end.

The run cannot start training: a queued job holds the retraining lock before the first request,
so every valid ``POST /retrain`` is 409. Its own local API (and moto) keeps whatever it promotes
or uploads away from every other module."""

import base64
import collections
import itertools
import math
import os

import boto3
import hypothesis
import pytest
import requests
import schemathesis
import yaml
from hypothesis import strategies as st
from schemathesis import checks as st_checks
from schemathesis.core.file_samples import FILE_SAMPLES
from schemathesis.transport.serialization import Binary

from classifier.aws.dynamodb import Table
from classifier.mlops.jobs import create_job
from tests.conftest import REPO, encode, gradient

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# The document without its global `security`: the test sends the key itself (or, in a few requests,
# none), so that schemathesis's negative requests break a parameter or a body instead of mostly
# leaving the key out.
DOCUMENT = yaml.safe_load((REPO / "shared" / "openapi.yaml").read_text())
DOCUMENT.pop("security")
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT)
OPERATIONS = sorted(
    (result.ok() for result in SCHEMA.get_all_operations()), key=lambda operation: operation.label
)
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "1000"))


def has_inputs(operation) -> bool:
    """A body or a parameter: something to generate."""
    return bool(operation.body or operation.query or operation.headers or operation.path_parameters)


# An operation without inputs (GET /models) has only its callers to vary (about 11 requests); the
# budget goes to the others.
PER_OPERATION = math.ceil(EXAMPLES / sum(map(has_inputs, OPERATIONS)))
# Images the service reads, or almost: schemathesis's own file samples are 1x1 pixel (too small to
# classify) and its random bytes never decode, so without these no prediction would be made and
# the 200 answers' schemas would go unchecked. Drawn for every `format: binary` (raw bodies, form
# files) and `format: byte` (base64 in JSON) value, beside schemathesis's own values.
IMAGES = [
    encode(gradient(32, 32), "PNG"),
    encode(gradient(40, 24), "JPEG", quality=80),
    encode(gradient(16, 16), "BMP"),
    encode(gradient(64, 48), "WEBP"),
    encode(gradient(20, 18), "GIF"),
    encode(gradient(32, 32), "TIFF"),  # a format the service refuses: 415
    encode(gradient(32, 32), "PNG")[:200],  # truncated
    encode(gradient(15, 40), "PNG"),  # one side under the minimum
]
FILES = IMAGES + list(FILE_SAMPLES.values())
schemathesis.openapi.format("binary", st.one_of(st.sampled_from(FILES), st.binary()).map(Binary))
schemathesis.openapi.format(
    "byte", st.one_of(st.sampled_from(FILES), st.binary()).map(lambda raw: base64.b64encode(raw).decode())
)
# Every key has its own token buckets (client training data: burst 1, predict: burst 5), so a
# request picks one of many keys of its role, and most requests reach a function instead of a 429.
KEYS = {
    "client": [f"fuzz-client-{i}" for i in range(50)],
    "operator": [f"fuzz-operator-{i}" for i in range(50)],
    "none": [""],  # no x-api-key: API Gateway's 403 `invalid_api_key`
}
ROLES = ("client", "operator") * 5 + ("none",)  # one request in 11 without a key
ROTATION = {role: itertools.cycle(keys) for role, keys in KEYS.items()}  # each key in turn
CHECKS = [
    st_checks.not_a_server_error,
    st_checks.status_code_conformance,
    st_checks.content_type_conformance,
    st_checks.response_schema_conformance,
]
# API Gateway's own refusals (no key or a wrong one, an empty bucket, a spent quota) and Lambda's
# (the function's concurrency spent): every other answer came from the function behind the route,
# its 403 `forbidden` included.
GATEWAY_CODES = ("invalid_api_key", "throttled", "quota_exceeded", "too_many_requests")
STATS: collections.Counter = collections.Counter()  # (operation label, role, status, code) -> requests


@pytest.fixture(scope="module")
def api(start_local_api, tmp_path_factory, from_repo):
    # An empty folder: the baseline model in the registry and current, and no base datasets
    # (nothing here trains).
    started = start_local_api(
        REPO / "template.yaml",
        api_key=KEYS["client"][0],
        extra_api_keys=tuple(KEYS["client"][1:]),
        operator_api_key=KEYS["operator"][0],
        extra_operator_api_keys=tuple(KEYS["operator"][1:]),
        bootstrap_data=tmp_path_factory.mktemp("no-datasets"),
    )
    # A client of its own, not classifier.aws's cached one, which would outlive this module's moto.
    jobs = Table(boto3.client("dynamodb"), started.template.physical_name("JobsTable"))
    create_job(jobs, {"mode": "finetune"})  # holds the lock: every valid POST /retrain is 409
    return started


@pytest.fixture(scope="module")
def session():
    with requests.Session() as opened:
        yield opened


def error_code(response) -> str:
    """The error body's code (``forbidden``, ``throttled``), or "" for a success."""
    if response.status_code < 400:
        return ""
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "?"


def cases(operation):
    """Requests for ``operation``: two in three fit the document, one breaks it where it has
    something to break (a body, a query parameter, a header)."""
    positive = operation.as_strategy(generation_mode=schemathesis.GenerationMode.POSITIVE)
    if not (operation.body or operation.query or operation.headers):  # a path parameter: any string
        return positive
    return st.one_of(
        positive, positive, operation.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE)
    )


SETTINGS = hypothesis.settings(
    max_examples=PER_OPERATION,
    deadline=None,
    database=None,  # every run fresh; a failure prints the request to reproduce it
    suppress_health_check=list(hypothesis.HealthCheck),
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate, hypothesis.Phase.shrink],
)


@pytest.mark.parametrize("operation", OPERATIONS, ids=[operation.label for operation in OPERATIONS])
def test_every_answer_conforms_to_the_document(api, session, operation):
    @SETTINGS
    @hypothesis.given(case=cases(operation), role=st.sampled_from(ROLES))
    def fuzz(case, role):
        # The keys of a role in turn, not drawn: Hypothesis favours the first of a list, and a key
        # drawn again and again would spend its bucket.
        key = next(ROTATION[role])
        headers = {"x-api-key": key} if key else {}
        response = case.call(base_url=api.url, session=session, headers=headers, timeout=60)
        STATS[operation.label, role, response.status_code, error_code(response)] += 1
        case.validate_response(response, checks=CHECKS, headers=headers)

    fuzz()


def test_summary(capsys):
    """The figures to quote: requests generated, by status, and how many reached a function."""
    total = sum(STATS.values())
    by_status: collections.Counter = collections.Counter()
    for (_, _, status, code), count in STATS.items():
        by_status[f"{status} {code}".strip()] += count
    reached = total - sum(n for (_, _, _, code), n in STATS.items() if code in GATEWAY_CODES)
    lines = [f"fuzz: {total} requests, {reached} reached a function (not refused before it)"]
    lines.append("  by status: " + ", ".join(f"{s}: {n}" for s, n in sorted(by_status.items())))
    for operation in OPERATIONS:
        for role in KEYS:
            row = collections.Counter()
            for (label, r, status, _), count in STATS.items():
                if label == operation.label and r == role:
                    row[status] += count
            if row:
                statuses = ", ".join(f"{s}: {n}" for s, n in sorted(row.items()))
                lines.append(f"  {operation.label} ({role}): {statuses}")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert not [status for (_, _, status, _) in STATS if status >= 500]
