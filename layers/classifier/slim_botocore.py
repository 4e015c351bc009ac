"""Layer build step: keep botocore's models for ``classifier.aws.SERVICES`` only.

botocore ships the models of 400-odd services (about 22 MB). Creating a client lists every model
folder and parses the 1.2 MB ``endpoints.json``: about 90 ms of a cold start on this project's
benchmark, for services no function calls. This removes the other model folders and the other
services' entries in ``endpoints.json``. A client for a service left out fails with botocore's
UnknownServiceError; :func:`classifier.aws.client` refuses such services first, in every test.

Run by the Makefile: ``python slim_botocore.py LAYER_PYTHON_DIR``.
"""

import gzip
import json
import shutil
import sys
from pathlib import Path


def endpoint_prefix(model_folder: Path) -> str:
    """The service's key in endpoints.json, from its newest ``service-2`` model."""
    newest = sorted(path for path in model_folder.iterdir() if path.is_dir())[-1]
    for name, read in (("service-2.json.gz", gzip.open), ("service-2.json", open)):
        if (newest / name).exists():
            with read(newest / name, "rt") as model:
                return json.load(model)["metadata"]["endpointPrefix"]
    raise FileNotFoundError(f"no service-2 model in {newest}")


def slim(site: Path, services: tuple[str, ...]) -> None:
    data = site / "botocore" / "data"
    missing = [service for service in services if not (data / service).is_dir()]
    if missing:
        raise SystemExit(f"botocore in {site} has no model for {missing}")
    prefixes = {endpoint_prefix(data / service) for service in services}
    for folder in data.iterdir():
        if folder.is_dir() and folder.name not in services:
            shutil.rmtree(folder)
    endpoints_file = data / "endpoints.json"
    endpoints = json.loads(endpoints_file.read_text())
    for partition in endpoints["partitions"]:
        partition["services"] = {
            name: service for name, service in partition["services"].items() if name in prefixes
        }
    endpoints_file.write_text(json.dumps(endpoints, separators=(",", ":")))


if __name__ == "__main__":
    layer = Path(sys.argv[1])
    sys.path.insert(0, str(layer))  # the layer's own botocore and classifier package
    from classifier.aws import SERVICES

    slim(layer, SERVICES)
