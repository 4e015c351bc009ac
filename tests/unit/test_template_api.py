"""The API section of ``template.yaml``: keys on every route, one throttle per route from the
figures in docs/architecture.md, gateway responses in the functions' error form."""

import json
from pathlib import Path

import pytest

from infra.template import Template

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = Template(REPO / "template.yaml")

# The limits per key in docs/architecture.md: (requests, window in seconds).
LIMITS = {
    "/predict/POST": (30, 60),
    "/predict/batch/POST": (10, 60),
    "/retrain/POST": (10, 3600),
    "/training-data/POST": (5, 3600),
    "/predict/jobs/POST": (10, 3600),
}


# The web console's page and assets: no key (the page holds no data; its calls carry the key).
KEYLESS = {("GET", "/"), ("GET", "/console/{proxy+}")}


def test_every_route_but_the_consoles_page_and_assets_requires_an_api_key():
    assert TEMPLATE.routes
    assert {(r.method, r.path) for r in TEMPLATE.routes if not r.api_key_required} == KEYLESS


def test_every_keyed_route_has_its_own_usage_plan_throttle():
    keyed = {route.throttle_key for route in TEMPLATE.routes if route.api_key_required}
    assert keyed == set(TEMPLATE.route_throttles)
    for plan in TEMPLATE.usage_plans.values():
        assert keyed == set(plan.route_throttles), plan.name


@pytest.mark.parametrize("key", sorted(LIMITS))
def test_a_limited_route_allows_at_most_its_figure_in_any_window(key):
    assert key in TEMPLATE.route_throttles, f"{key} has no throttle in the usage plan"
    requests, window_s = LIMITS[key]
    throttle = TEMPLATE.route_throttles[key]

    most_in_a_window = throttle.burst + throttle.rate * window_s

    assert requests - 1 < most_in_a_window <= requests


def test_read_routes_are_generous_and_the_plan_has_a_daily_quota():
    for route in TEMPLATE.routes:
        if route.method == "GET" and route.api_key_required:
            assert TEMPLATE.route_throttles[route.throttle_key].rate >= 5
    assert TEMPLATE.quota.period == "DAY" and TEMPLATE.quota.limit > 0
    assert TEMPLATE.stage_throttle.rate >= max(t.rate for t in TEMPLATE.route_throttles.values())


def test_binary_media_types_cover_images_forms_and_zips_but_not_everything():
    assert set(TEMPLATE.binary_media_types) == {"image/*", "multipart/form-data", "application/zip"}


@pytest.mark.parametrize(
    "kind",
    ["INVALID_API_KEY", "THROTTLED", "QUOTA_EXCEEDED", "REQUEST_TOO_LARGE", "DEFAULT_4XX", "DEFAULT_5XX"],
)
def test_gateway_responses_use_the_error_form(kind):
    template = TEMPLATE.gateway_responses[kind].templates["application/json"]

    body = json.loads(template.replace("$context.error.messageString", '"a message"'))

    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}


def test_outputs_name_the_url_and_a_key_of_each_kind_in_its_own_plan():
    outputs = TEMPLATE.doc["Outputs"]
    assert {
        "ApiUrl",
        "ClientApiKeyId",
        "ClientApiKeyValueCommand",
        "OperatorApiKeyId",
        "OperatorApiKeyValueCommand",
    } <= set(outputs)
    plan_of_key = {
        resource["Properties"]["KeyId"]["Ref"]: resource["Properties"]["UsagePlanId"]["Ref"]
        for resource in TEMPLATE.resources.values()
        if resource["Type"] == "AWS::ApiGateway::UsagePlanKey"
    }
    assert plan_of_key == {"ClientApiKey": "ClientUsagePlan", "OperatorApiKey": "OperatorUsagePlan"}
