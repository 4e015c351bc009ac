"""Lambda SnapStart: the predict and batch functions load their model before the snapshot, and an
environment restored from it re-reads the registry before its first answer. The hooks are driven the
way Lambda's Python runtime drives them, through ``snapshot_restore_py``."""

import importlib
import json
import random
from types import SimpleNamespace

import pytest
import snapshot_restore_py

from classifier import aws as aws_clients
from classifier.api import model_provider
from classifier.coldstart import on_snapstart
from classifier.mlops import registry
from functions.batch import app as batch
from functions.predict import app as predict
from tests.unit.test_serving import BASELINE_VERSION, publish


@pytest.fixture
def hooks(monkeypatch):
    """The runtime library's registries, empty for the test."""
    before, after = [], []
    monkeypatch.setattr(snapshot_restore_py, "_before_snapshot_registry", before)
    monkeypatch.setattr(snapshot_restore_py, "_after_restore_registry", after)
    return SimpleNamespace(before=before, after=after)


def run(registered: list) -> None:
    """What the runtime does with a registry: call each hook with its arguments."""
    for function, args, kwargs in registered:
        function(*args, **kwargs)


@pytest.fixture
def initialised_for_a_snapshot(monkeypatch, hooks):
    """Import a handler module as Lambda does when it publishes a SnapStart version; re-import it
    plainly afterwards."""
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start")
    reloaded = []

    def initialise(module):
        reloaded.append(module)
        return importlib.reload(module)

    yield initialise
    monkeypatch.delenv("AWS_LAMBDA_INITIALIZATION_TYPE")
    for module in reloaded:
        importlib.reload(module)


@pytest.mark.parametrize("initialization", [None, "on-demand", "provisioned-concurrency"])
def test_outside_snapstart_nothing_is_registered(monkeypatch, hooks, initialization):
    if initialization is None:
        monkeypatch.delenv("AWS_LAMBDA_INITIALIZATION_TYPE", raising=False)
    else:
        monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", initialization)
    assert on_snapstart(before_snapshot=print, after_restore=print) is False
    assert hooks.before == [] and hooks.after == []


@pytest.mark.parametrize("module", [predict, batch], ids=["predict", "batch"])
def test_the_handlers_register_their_hooks_under_snapstart(hooks, initialised_for_a_snapshot, module):
    initialised_for_a_snapshot(module)
    assert [function for function, _, _ in hooks.before] == [model_provider.before_snapshot]
    assert [function for function, _, _ in hooks.after] == [random.seed, model_provider.after_restore]


def test_a_restored_predict_function_answers_from_its_snapshot_with_the_current_registry(
    aws, hooks, initialised_for_a_snapshot, load_event, lambda_context, monkeypatch
):
    reads = []
    read_pointer = registry.read_pointer
    monkeypatch.setattr(registry, "read_pointer", lambda table: reads.append(1) or read_pointer(table))

    # given the predict function initialised for a snapshot: importing it loads nothing
    handler = initialised_for_a_snapshot(predict)
    assert reads == []

    # when Lambda runs the before-snapshot hooks, the model is loaded then, before any request
    run(hooks.before)
    assert len(reads) == 1 and model_provider.current_model().version == BASELINE_VERSION

    # and a version is promoted while the snapshot waits, within the pointer's refresh interval
    publish(aws, "v2")

    # when an environment is restored from the snapshot and takes its first request
    run(hooks.after)
    response = handler.lambda_handler(load_event("predict-raw"), lambda_context)

    # then that request re-read the registry and was answered by the promoted version, and stored
    assert response["statusCode"] == 200
    body = json.loads(response["body"])
    assert body["model_version"] == "v2" and body["label"] == "dog" and body["stored"] is True
    # the snapshot's read (cached since), the restored request's, and its check once v2 was
    # fetched that the pointer still names it
    assert len(reads) == 3


def test_the_snapshot_holds_the_clients_but_none_of_their_connections(aws, monkeypatch):
    # given the clients the functions have made so far, with their close() observed
    closed = []
    for service in ("dynamodb", "s3"):
        made = aws_clients.client(service)
        real_close = made.close
        monkeypatch.setattr(
            made, "close", lambda service=service, close=real_close: closed.append(service) or close()
        )

    # when the before-snapshot hook runs
    model = model_provider.before_snapshot()

    # then the model is loaded, every client made was closed, and a closed client still answers
    assert model.version == BASELINE_VERSION
    assert sorted(closed) == ["dynamodb", "s3"]
    aws.predictions.put_item(
        Item={"id": "after-restore", "kind": "prediction", "created_at": "2026-11-27T00:00:00Z"}
    )
    assert aws.predictions.get_item(Key={"id": "after-restore"})["Item"]["kind"] == "prediction"
