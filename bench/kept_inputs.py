"""What keeping the model input costs POST /predict: warm latency through ``lambda_handler`` with
``KEEP_MODEL_INPUTS`` on and off (alternating requests, same process), with DynamoDB from a moto
server and from a stub that answers every call at once (the handler's own cost: PNG encoding,
botocore serialising and sending the larger item), and the DynamoDB item sizes of the records.

Run: ``python -m bench.kept_inputs [--requests N]`` (figures in docs/mlops.md, "Kept inputs").
"""

import argparse
import base64
import contextlib
import http.server
import json
import os
import statistics
import threading
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REGION = "us-east-1"


def item_bytes(item: dict) -> int:
    """DynamoDB's size of an item (names + values, as its docs count them; numbers about 1 byte per
    two digits, plus one)."""

    def size(value) -> int:
        ((kind, inner),) = value.items()
        if kind == "S":
            return len(inner.encode())
        if kind == "B":
            return len(inner)
        if kind == "N":
            return (len(inner.lstrip("-").replace(".", "")) + 1) // 2 + 1
        if kind in ("BOOL", "NULL"):
            return 1
        if kind == "M":
            return 3 + sum(len(k.encode()) + size(v) + 1 for k, v in inner.items())
        if kind == "L":
            return 3 + sum(size(v) + 1 for v in inner)
        raise ValueError(kind)

    return sum(len(name.encode()) + size(value) for name, value in item.items())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="timed requests per setting and store")
    args = parser.parse_args(argv)

    from bench.handlers import _InstantDynamoDB
    from infra.devdata import SHARED_DATA
    from infra.moto_server import moto_server
    from infra.template import Template

    template = Template(REPO / "template.yaml", region=REGION)
    with zipfile.ZipFile(SHARED_DATA / "cifar10-test.zip") as archive:
        image = archive.read("dog/0000.jpg")
    event = json.loads((REPO / "shared" / "events" / "predict-raw.json").read_text())
    event["body"] = base64.b64encode(image).decode()
    with moto_server(template, REGION) as aws:
        os.environ.update({**aws, **template.functions["PredictFunction"].environment})
        os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
        stub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _InstantDynamoDB)
        threading.Thread(target=stub.serve_forever, daemon=True).start()
        instant = f"http://127.0.0.1:{stub.server_address[1]}"

        from classifier.aws import reset_clients, table
        from classifier.settings import get_settings
        from functions.predict import app
        from tests.conftest import FakeLambdaContext

        context = FakeLambdaContext()
        results: dict[tuple[str, str], list[float]] = {}
        sizes = {}
        quiet = contextlib.redirect_stdout(open(os.devnull, "w"))  # noqa: SIM115 (the EMF and log lines)
        quiet.__enter__()
        for store in ("moto", "instant"):
            if store == "instant":
                os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = instant
            reset_clients()
            for keep in ("true", "false"):  # warm up each setting
                os.environ["KEEP_MODEL_INPUTS"] = keep
                get_settings.cache_clear()
                for _ in range(30):
                    app.lambda_handler(event, context)
            for position in range(2 * args.requests):
                keep = "true" if position % 2 == 0 else "false"
                os.environ["KEEP_MODEL_INPUTS"] = keep
                get_settings.cache_clear()
                started = time.perf_counter()
                response = app.lambda_handler(event, context)
                results.setdefault((store, keep), []).append((time.perf_counter() - started) * 1000)
                if store == "moto" and keep not in sizes:
                    record_id = json.loads(response["body"])["id"]
                    raw = table(get_settings().predictions_table).client.get_item(
                        TableName=get_settings().predictions_table, Key={"id": {"S": record_id}}
                    )["Item"]
                    sizes[keep] = item_bytes(raw)
        quiet.__exit__(None, None, None)
        stub.shutdown()
    print("POST /predict warm latency through lambda_handler, ms (median, p90)")
    for (store, keep), times in sorted(results.items()):
        times.sort()
        print(
            f"  {store:8s} keep={keep:5s}  {statistics.median(times):6.2f}  {times[int(0.9 * len(times))]:6.2f}"
            f"  n={len(times)}"
        )
    print("DynamoDB item size, bytes:", {f"keep={k}": v for k, v in sizes.items()})


if __name__ == "__main__":
    main()
