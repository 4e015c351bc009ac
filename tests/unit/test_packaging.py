"""What the functions import and what the template promises the code: checked without AWS."""

import json
import subprocess
import sys

import pytest

from classifier import settings
from classifier.api import records
from infra import invoke
from tests.unit.conftest import FUNCTION_ENVIRONMENT, REPO, TEMPLATE, reset_process_state

HANDLERS = ["functions.predict.app", "functions.batch.app", "functions.predictions.app"]
# boto3: 0.1 s of cold start that botocore alone saves; classifier.training: the Keras side of the package
HEAVY = ["tensorflow", "keras", "moto", "boto3", "classifier.training", "classifier.mlops.retrain"]


@pytest.mark.parametrize("module", HANDLERS)
def test_importing_a_handler_loads_no_tensorflow_and_no_model(module):
    # given a fresh interpreter, as on a Lambda cold start
    script = (
        f"import json, sys; import {module}; from classifier.api import model_provider; "
        f"print(json.dumps({{'heavy': [m for m in {HEAVY!r} if m in sys.modules], "
        "'model_loaded': model_provider._provider is not None}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
        env={
            "PATH": "",
            "PYTHONPATH": f"{REPO / 'layers' / 'classifier'}:{REPO}",
            "POWERTOOLS_TRACE_DISABLED": "1",
        },
    )
    # then neither TensorFlow, Keras nor boto3 is imported, and no model is loaded before the first request
    assert json.loads(result.stdout.splitlines()[-1]) == {"heavy": [], "model_loaded": False}


def test_every_function_is_an_api_route_on_the_one_api():
    routes = {(route.method, route.path): route.function_id for route in TEMPLATE.routes}
    assert {
        ("POST", "/predict"): "PredictFunction",
        ("POST", "/predict/batch"): "BatchFunction",
        ("GET", "/predictions"): "PredictionsFunction",
        ("GET", "/predictions/{prediction_id}"): "PredictionsFunction",
    }.items() <= routes.items()
    assert all(route.api_key_required for route in TEMPLATE.routes if route.function_id != "ConsoleFunction")
    for function_id in ("PredictFunction", "BatchFunction", "PredictionsFunction"):
        events = TEMPLATE.resources[function_id]["Properties"]["Events"].values()
        assert all(
            event["Type"] == "Api" and event["Properties"]["RestApiId"] == {"Ref": "Api"} for event in events
        )
        assert TEMPLATE.resources[function_id]["Properties"]["Layers"] == [{"Ref": "ClassifierLayer"}]
        assert (TEMPLATE.functions[function_id].code_dir / "app.py").is_file()


def test_predict_and_batch_can_be_restored_from_a_snapshot_but_are_not_by_default():
    # SnapStart is a deploy parameter (it costs a cache and restore charge): off unless asked for
    assert TEMPLATE.parameters["SnapStart"] == "None"
    assert set(TEMPLATE.doc["Parameters"]["SnapStart"]["AllowedValues"]) == {"None", "PublishedVersions"}
    for function_id in ("PredictFunction", "BatchFunction"):
        properties = TEMPLATE.resources[function_id]["Properties"]
        # SnapStart applies only to published versions, so the API must call an alias
        assert properties["AutoPublishAlias"] and properties["SnapStart"] == {"ApplyOn": {"Ref": "SnapStart"}}


def test_the_retrain_function_may_continue_a_job_by_invoking_itself_and_nothing_else():
    retrain = TEMPLATE.resources["RetrainFunction"]["Properties"]
    # Lambda's loop detection would otherwise stop a long job's chain after about 16 invocations
    assert retrain["RecursiveLoop"] == "Allow"
    # the permission names the function's own ARN, not a pattern on a (possibly shortened) name
    statements = [
        statement
        for resource in TEMPLATE.resources.values()
        if resource["Type"] == "AWS::IAM::Policy"
        and resource["Properties"]["Roles"] == [{"Ref": "RetrainFunctionRole"}]
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert statements == [
        {
            "Effect": "Allow",
            "Action": "lambda:InvokeFunction",
            "Resource": {"Fn::GetAtt": ["RetrainFunction", "Arn"]},
        }
    ]
    inline = json.dumps(retrain["Policies"])
    assert "lambda:InvokeFunction" not in inline


def test_the_environment_sets_every_setting():
    environment = TEMPLATE.functions["PredictFunction"].environment
    parsed = settings.Settings.from_env(environment)
    assert parsed.predictions_table == "PredictionsTable" and parsed.models_table == "ModelsTable"
    assert parsed.jobs_table == "JobsTable" and parsed.artifacts_bucket and parsed.model_refresh_seconds == 60


def test_the_listing_indexes_are_the_ones_the_code_queries():
    indexes = {
        index["IndexName"]: [key["AttributeName"] for key in index["KeySchema"]]
        for index in TEMPLATE.tables["PredictionsTable"]["GlobalSecondaryIndexes"]
    }
    assert indexes == {
        records.LIST_INDEX: ["kind", "created_at"],
        records.OWNER_INDEX: ["owner", "created_at"],
    }


def test_every_function_that_checks_a_role_may_ask_which_usage_plans_a_key_is_in():
    # the functions whose handlers look up the caller's role (classifier.api.callers)
    checking = {
        function_id
        for function_id, function in TEMPLATE.functions.items()
        if "callers.caller_of" in (function.code_dir / "app.py").read_text()
    }
    assert checking == {
        "PredictionsFunction",
        "TrainingDataFunction",
        "ModelsFunction",
        "MonitorFunction",
        "ConsoleFunction",
        "BatchJobsFunction",
    }
    for function_id in checking:
        statements = [
            statement
            for policy in TEMPLATE.resources[function_id]["Properties"]["Policies"]
            for statement in policy["Statement"]
        ]
        assert any(statement["Action"] == "apigateway:GET" for statement in statements), function_id
    plan_names = {plan.name for plan in TEMPLATE.usage_plans.values()}
    assert FUNCTION_ENVIRONMENT["OPERATOR_USAGE_PLAN"] in plan_names


def test_data_resources_are_protected():
    for logical_id in ("PredictionsTable", "ModelsTable", "JobsTable"):
        properties = TEMPLATE.resources[logical_id]["Properties"]
        assert properties["BillingMode"] == "PAY_PER_REQUEST"
        assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    bucket = TEMPLATE.resources["ArtifactsBucket"]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["BucketEncryption"]


def test_every_function_has_a_log_group_with_retention():
    groups = {
        resource["Properties"]["LogGroupName"]["Fn::Sub"]: resource["Properties"]
        for resource in TEMPLATE.resources.values()
        if resource["Type"] == "AWS::Logs::LogGroup"
    }
    for function_id in ("PredictFunction", "BatchFunction", "PredictionsFunction"):
        assert groups[f"/aws/lambda/${{{function_id}}}"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_make_invoke_runs_a_handler_on_an_event_file(capsys, monkeypatch):
    # given no AWS: make invoke brings moto and the template's tables itself
    for key in [*FUNCTION_ENVIRONMENT, "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION"]:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    reset_process_state()

    code = invoke.main(
        ["--function", "PredictFunction", "--event", str(REPO / "shared/events/predict-raw.json")]
    )
    reset_process_state()

    # then it prints the proxy response with the JSON body readable
    out = capsys.readouterr().out
    response = json.loads(out[out.index('{\n  "statusCode"') :])
    assert code == 0 and response["statusCode"] == 200
    assert response["body"]["label"] == "dog" and response["body"]["stored"] is True
