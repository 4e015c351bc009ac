"""The cold-start measures: imports without the garbage collector, and a layer that ships botocore's
models for the services the functions call only."""

import gc
import gzip
import json

import pytest
import slim_botocore

from classifier.aws import SERVICES, client, reset_clients, session
from classifier.coldstart import gc_paused


@pytest.fixture
def collector_state():
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    gc.enable() if enabled else gc.disable()


def test_imports_run_without_the_collector_which_is_back_on_after(collector_state):
    # given the collector on
    gc.enable()
    frozen_before = gc.get_freeze_count()

    # when a block runs under gc_paused and makes long-lived objects
    with gc_paused():
        inside = gc.isenabled()
        made = [{"module": index} for index in range(1000)]

    # then the collector was off inside, is on again, and what the block made is frozen
    assert inside is False
    assert gc.isenabled()
    assert gc.get_freeze_count() >= frozen_before + len(made)


def test_a_paused_collector_stays_as_the_caller_had_it(collector_state):
    gc.disable()
    with gc_paused():
        pass
    assert not gc.isenabled()


def test_the_collector_comes_back_when_an_import_fails(collector_state):
    gc.enable()
    with pytest.raises(ImportError), gc_paused():
        import a_module_that_does_not_exist  # noqa: F401
    assert gc.isenabled()


def test_a_client_for_a_service_the_layer_does_not_ship_is_refused():
    with pytest.raises(ValueError, match="SERVICES"):
        client("ec2")
    assert {"dynamodb", "s3", "lambda"} <= set(SERVICES)


def test_a_reset_makes_new_clients_from_the_models_already_parsed(aws, monkeypatch):
    # given a client made, then an environment change that a reset must reach
    before = client("s3")
    loader = session().get_component("data_loader")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://localhost:1")

    reset_clients()

    # then the next client is new and sees the change, from the loader that parsed the models
    after = client("s3")
    assert after is not before and after.meta.endpoint_url == "http://localhost:1"
    assert session().get_component("data_loader") is loader


def _service(data, name: str, prefix: str) -> None:
    folder = data / name / "2020-01-01"
    folder.mkdir(parents=True)
    with gzip.open(folder / "service-2.json.gz", "wt") as model:
        json.dump({"metadata": {"endpointPrefix": prefix}}, model)


def test_slimming_keeps_the_listed_services_models_and_endpoints(tmp_path):
    # given a botocore with three services, one whose endpoint prefix differs from its name
    data = tmp_path / "botocore" / "data"
    for name, prefix in (("dynamodb", "dynamodb"), ("lambda", "lambda"), ("ec2", "ec2")):
        _service(data, name, prefix)
    _service(data, "s3control", "s3-control")
    services = {name: {"endpoints": {}} for name in ("dynamodb", "lambda", "ec2", "s3-control")}
    (data / "endpoints.json").write_text(
        json.dumps({"partitions": [{"partition": "aws", "services": services}], "version": 3})
    )
    (data / "_retry.json").write_text("{}")

    # when it is slimmed to two of them
    slim_botocore.slim(tmp_path, ("dynamodb", "s3control"))

    # then only their models and their endpoint entries remain; the shared files stay
    assert sorted(path.name for path in data.iterdir()) == [
        "_retry.json",
        "dynamodb",
        "endpoints.json",
        "s3control",
    ]
    endpoints = json.loads((data / "endpoints.json").read_text())
    assert sorted(endpoints["partitions"][0]["services"]) == ["dynamodb", "s3-control"]
    assert endpoints["version"] == 3


def test_slimming_to_a_service_botocore_lacks_fails_the_build(tmp_path):
    data = tmp_path / "botocore" / "data"
    _service(data, "dynamodb", "dynamodb")
    (data / "endpoints.json").write_text(json.dumps({"partitions": []}))
    with pytest.raises(SystemExit, match="dynamo"):
        slim_botocore.slim(tmp_path, ("dynamodb", "dynamo"))
    assert (data / "dynamodb").is_dir()  # nothing removed
