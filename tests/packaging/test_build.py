"""The template and the build, checked here so a packaging mistake fails before AWS sees it.

SAM CLI and cfn-lint come from .venv-sam (`make sam`; `make test` provides it). The layer build
downloads wheels from PyPI, so these tests are not unit tests."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from classifier.aws import SERVICES
from infra.build import build_function, build_layer
from infra.moto_server import moto_server
from tests.unit.conftest import FUNCTION_ENVIRONMENT, REGION, REPO, TEMPLATE

pytestmark = pytest.mark.build

SAM_BIN = REPO / ".venv-sam" / "bin"
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024  # function + all its layers, unzipped
FUNCTIONS = ("PredictFunction", "BatchFunction", "PredictionsFunction")


def tool(name: str) -> Path:
    path = SAM_BIN / name
    if not path.exists():
        message = f"{path} is missing: run `make sam` (make test does)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    return path


def run(command: list, **options) -> subprocess.CompletedProcess:
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", **options.pop("env", {})}
    result = subprocess.run(command, capture_output=True, text=True, env=env, **{"cwd": REPO, **options})
    assert result.returncode == 0, f"{' '.join(map(str, command))} failed:\n{result.stdout}\n{result.stderr}"
    return result


def size_of(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file() and not path.is_symlink())


def test_sam_validate_lint():
    run([tool("sam"), "validate", "--lint", "--template", "template.yaml"])


def test_cfn_lint():
    run([tool("cfn-lint"), "template.yaml"])


@pytest.mark.slow
def test_sam_build_without_docker_stays_under_the_lambda_size_limit(tmp_path, capsys):
    # given the template, when sam build runs its makefile builds (manylinux wheels for Python 3.12)
    build = tmp_path / "build"
    images = [  # container-image functions need Docker, which this build must not
        logical_id
        for logical_id, resource in TEMPLATE.resources.items()
        if (resource.get("Properties") or {}).get("PackageType") == "Image"
    ]
    excludes = [argument for logical_id in images for argument in ("--exclude", logical_id)]
    run([tool("sam"), "build", "--build-dir", build, "--cache-dir", REPO / ".aws-sam" / "cache", *excludes])

    # then each function holds only its handler, the layer holds the package, the model and no TensorFlow
    layer = build / "ClassifierLayer" / "python"
    assert (layer / "classifier" / "baseline" / "model.tflite").is_file()
    assert (layer / "ai_edge_litert").is_dir() and (layer / "numpy").is_dir()
    assert not (layer / "tensorflow").exists() and not (layer / "keras").exists()
    assert not (layer / "classifier" / "baseline" / "model.keras").exists()
    assert any(layer.glob("numpy/__pycache__/*.cpython-312.pyc")), "the layer ships bytecode for Python 3.12"
    models = layer / "botocore" / "data"
    assert sorted(path.name for path in models.iterdir() if path.is_dir()) == sorted(SERVICES)
    layer_size = size_of(build / "ClassifierLayer")
    with capsys.disabled():
        print(f"\n  built layer: {layer_size / 2**20:.1f} MiB unzipped")
    for function_id in FUNCTIONS:
        assert sorted(path.name for path in (build / function_id).iterdir()) == ["app.py"]
        total = size_of(build / function_id) + layer_size
        with capsys.disabled():
            print(
                f"  {function_id} + layer: {total / 2**20:.1f} MiB of {LAMBDA_UNZIPPED_LIMIT / 2**20:.0f} MiB"
            )
        assert total < LAMBDA_UNZIPPED_LIMIT


RUN_HANDLER = """
import gc, json, sys, time
start = time.perf_counter()
import app
imported = time.perf_counter()

class Context:
    function_name = "PredictFunction"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:PredictFunction"
    aws_request_id = "build-test"
    def get_remaining_time_in_millis(self):
        return 10000

response = app.lambda_handler(json.loads(sys.argv[1]), Context())
done = time.perf_counter()
from classifier.aws import SERVICES, client, session
clients = [client(service).meta.service_model.service_name for service in SERVICES]
print(json.dumps({
    "response": response,
    "import_s": imported - start,
    "first_call_s": done - imported,
    "files": {name: getattr(sys.modules[name], "__file__", None) for name in
              ("app", "classifier", "numpy", "PIL", "ai_edge_litert", "aws_lambda_powertools", "botocore")},
    "tensorflow": "tensorflow" in sys.modules,
    "frozen_objects": gc.get_freeze_count(),
    "services": SERVICES,
    "clients": clients,
    "botocore_models": session().get_available_services(),
    "gc_enabled": gc.isenabled(),
}))
"""


@pytest.mark.slow
def test_the_predict_handler_runs_from_the_build_output_alone(tmp_path, load_event, capsys):
    # given the layer built for this Python by the same makefile, and the function's build output
    layer = build_layer(tmp_path / "layer")
    function = build_function("PredictFunction", REPO / "functions" / "predict", tmp_path / "function")

    # and DynamoDB and S3 from a moto server, with the template's tables
    with moto_server(TEMPLATE, REGION) as aws_env:
        # when a fresh interpreter without site-packages imports the handler from the function folder,
        # with the layer's python/ on the path as Lambda mounts it at /opt/python
        env = {
            **aws_env,
            **FUNCTION_ENVIRONMENT,
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": f"{function}:{layer}",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
        event = json.dumps(load_event("predict-raw"))
        result = subprocess.run(
            [sys.executable, "-S", "-c", RUN_HANDLER, event],
            cwd=function,
            env=env,
            capture_output=True,
            text=True,
        )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])

    # then it answers from the build output alone: everything it imported came from there
    body = json.loads(report["response"]["body"])
    assert report["response"]["statusCode"] == 200, body
    assert body["label"] == "dog" and body["stored"] is True
    assert not report["tensorflow"]
    for name, path in report["files"].items():
        assert path and Path(path).is_relative_to(function if name == "app" else layer), (name, path)
    # and its botocore has the models of the services the functions call, and only those
    assert report["clients"] == report["services"]
    assert report["botocore_models"] == sorted(report["services"])
    # and its imports ran without the garbage collector, which is back on for the requests
    assert report["frozen_objects"] > 10_000 and report["gc_enabled"]
    with capsys.disabled():
        print(
            f"\n  from the build output: import {report['import_s'] * 1000:.0f} ms, "
            f"first invocation {report['first_call_s'] * 1000:.0f} ms"
        )
