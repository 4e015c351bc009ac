"""A key's role is its usage plan: operators' plan -> operator, anything else -> client (fail closed)."""

import json

import botocore.session
import pytest

from classifier.api import callers
from classifier.api.callers import Role, RoleLookup
from classifier.errors import ForbiddenError
from functions.models import app as models_app
from functions.predictions import app as predictions_app
from tests.unit.conftest import FUNCTION_ENVIRONMENT, REGION


def test_a_key_in_the_operators_plan_is_an_operator_and_the_answer_is_cached():
    asked = []
    lookup = RoleLookup(
        lambda key_id: asked.append(key_id) or (["ops"] if key_id == "k-op" else ["clients"]),
        "ops",
        ttl_seconds=60,
        clock=lambda: 0.0,
    )

    assert lookup.role("k-op") is Role.OPERATOR and lookup.role("k-op") is Role.OPERATOR
    assert lookup.role("k-client") is Role.CLIENT
    assert asked == ["k-op", "k-client"]  # one question per key while the answer is fresh


@pytest.mark.parametrize("key_id, plan", [("", "ops"), ("k-op", "")])
def test_no_key_id_or_no_configured_plan_means_client(key_id, plan):
    lookup = RoleLookup(lambda _: ["ops"], plan)
    assert lookup.role(key_id) is Role.CLIENT


def test_a_client_is_refused_before_anything_happens():
    with pytest.raises(ForbiddenError) as refused:
        callers.Caller("k", Role.CLIENT).require_operator("promote models")
    assert refused.value.http_status == 403 and refused.value.code == "forbidden"
    callers.Caller("k", Role.OPERATOR).require_operator("promote models")  # no error


def operator_key(aws) -> str:
    """A key in the template's operators' plan, in moto's API Gateway (what the functions ask)."""
    apigateway = botocore.session.get_session().create_client("apigateway", region_name=REGION)
    plan = apigateway.create_usage_plan(name=FUNCTION_ENVIRONMENT["OPERATOR_USAGE_PLAN"])
    key = apigateway.create_api_key(name="operator", enabled=True)
    apigateway.create_usage_plan_key(usagePlanId=plan["id"], keyId=key["id"], keyType="API_KEY")
    return key["id"]


def with_key_id(event: dict, key_id: str) -> dict:
    event["requestContext"]["identity"]["apiKeyId"] = key_id
    return event


def test_the_promote_route_refuses_a_client_and_serves_an_operator(aws, load_event, lambda_context):
    event = load_event("predictions-list")
    event.update(
        httpMethod="POST",
        path="/models/nope/promote",
        resource="/models/{version}/promote",
        multiValueQueryStringParameters=None,
        pathParameters={"version": "nope"},
        queryStringParameters=None,
        body=None,
    )
    event["requestContext"].update(httpMethod="POST", resourcePath="/models/{version}/promote")

    refused = models_app.lambda_handler(with_key_id(event, "a-client"), lambda_context)
    assert refused["statusCode"] == 403 and json.loads(refused["body"])["error"]["code"] == "forbidden"

    served = models_app.lambda_handler(with_key_id(event, operator_key(aws)), lambda_context)
    assert served["statusCode"] == 404  # an operator gets past the role check to "no such version"


def test_a_client_lists_its_own_records_only(aws, load_event, lambda_context):
    from classifier.api import records
    from tests.unit.test_records import make_record

    for owner in ("alice", "bob", "alice"):
        records.store(aws.predictions, make_record(owner=owner))
    answer = predictions_app.lambda_handler(
        with_key_id(load_event("predictions-list"), "alice"), lambda_context
    )

    items = json.loads(answer["body"])["items"]
    assert answer["statusCode"] == 200 and [item["owner"] for item in items] == ["alice", "alice"]


@pytest.mark.parametrize("version", ['a"b', "ü`x", "#1 (copy)"])
def test_a_path_parameter_is_any_one_segment_so_the_role_check_still_answers(
    aws, load_event, lambda_context, version
):
    # API Gateway routes any one segment to {version}; the function must find its route too, not
    # answer 404 "No route" (and a client's key must get 403, as on every operator route).
    event = load_event("predictions-list")
    event.update(
        httpMethod="POST",
        path=f"/models/{version}/promote",
        resource="/models/{version}/promote",
        multiValueQueryStringParameters=None,
        pathParameters={"version": version},
        queryStringParameters=None,
        body=None,
    )
    event["requestContext"].update(httpMethod="POST", resourcePath="/models/{version}/promote")

    refused = models_app.lambda_handler(with_key_id(event, "a-client"), lambda_context)
    assert refused["statusCode"] == 403 and json.loads(refused["body"])["error"]["code"] == "forbidden"

    served = models_app.lambda_handler(with_key_id(event, operator_key(aws)), lambda_context)
    assert served["statusCode"] == 404
    assert json.loads(served["body"])["error"]["message"] != f"No route POST /models/{version}/promote."
