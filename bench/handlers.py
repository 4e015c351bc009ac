"""Handler benchmark: cold start (fresh process: import, first invocation) and warm latency through
``lambda_handler`` for one image and batches of 8, 32 and 64, for the LiteRT handler as shipped and
for the same handler serving the Keras model on TensorFlow.

Each figure comes from a fresh Python process set up the way Lambda runs the function, from the
build output: the layer and the function are built first by the makefiles ``sam build`` runs (for
this Python's version; ``infra.build``), and the process imports the handler from the function's
build folder with the layer's ``python/`` on the path and no site-packages (as at ``/opt/python``;
the Keras column adds site-packages after it, for TensorFlow), ``LAMBDA_TASK_ROOT`` and the
template's environment set, DynamoDB and S3 from a moto server (so every request writes its
prediction record over HTTP, as in AWS). X-Ray is off (no daemon here). Requests are the event
files in ``shared/events/`` with CIFAR-10 test images.

The LiteRT handler is measured twice: with moto as DynamoDB, and with a stub DynamoDB endpoint that
answers every call at once (``instant store``). moto spends about 8 ms of Python on each write, far
more than DynamoDB's own single-digit milliseconds, so the second column is the handler's own cost
(botocore serialising, signing and sending the write included) and the first an upper bound.

The cold start is also measured as it is after a SnapStart restore: the process imports the handler
with ``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start`` and runs the before-snapshot hooks, as Lambda does
when it publishes a version, then the after-restore hooks and the first request are timed. Lambda's
own restore of the snapshot is not part of that figure; nothing here can measure it.

Run: ``make bench`` (after the model benchmark) or ``python -m bench.handlers [--quick]``.
"""

import argparse
import base64
import functools
import http.server
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KERAS_MODEL = REPO / "layers" / "classifier" / "classifier" / "baseline" / "model.keras"
BATCH_SIZES = (8, 32, 64)
# Untimed requests before the warm figures (see bench.model.WARMUP_RUNS: LiteRT settles over its
# first few hundred calls); a batch warms up with one request.
WARMUP_INVOCATIONS = 100
REGION = "us-east-1"


# --- the child: one fresh process, one handler -----------------------------------------------------


class _Context:
    function_name = "PredictFunction"
    function_version = "$LATEST"
    memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024"))
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:bench"
    aws_request_id = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def _install_keras_model() -> None:
    """Serve the Keras model through the same handler: TensorFlow import and model load count."""
    import hashlib

    import keras

    from classifier.api import model_provider

    model = keras.models.load_model(KERAS_MODEL, compile=False)

    class KerasPredictor:
        def predict(self, images):
            return keras.ops.convert_to_numpy(model(images, training=False))

    served = model_provider.ServedModel(
        "keras", hashlib.sha256(KERAS_MODEL.read_bytes()).hexdigest(), KerasPredictor()
    )
    model_provider.set_provider(
        model_provider.ModelProvider(
            read_pointer=lambda: None, fetch=bytes, baseline=lambda: served, refresh_seconds=float("inf")
        )
    )


def _run_hooks(registered: list) -> None:
    for function, args, kwargs in registered:
        function(*args, **kwargs)


def _child(runtime: str, events_file: str, first_event: str, repeats: dict[str, int]) -> dict:
    events = json.loads(Path(events_file).read_text())
    context = _Context()
    start = time.perf_counter()
    if runtime == "keras":
        _install_keras_model()
    import app  # noqa: PLC0415 (the import is what is measured)

    imported = time.perf_counter()
    restored = imported
    if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start":
        # Lambda publishes a SnapStart version: it runs the before-snapshot hooks and snapshots the
        # environment; a restored one then runs the after-restore hooks and takes its first request.
        import snapshot_restore_py  # noqa: PLC0415 (Lambda's runtime library, in the child's path)

        _run_hooks(snapshot_restore_py.get_before_snapshot())
        restored = time.perf_counter()
        _run_hooks(snapshot_restore_py.get_after_restore())

    def invoke(event: dict) -> dict:
        response = app.lambda_handler(event, context)
        assert response["statusCode"] == 200, response
        return json.loads(response["body"])

    first = invoke(events[first_event]["event"])
    done = time.perf_counter()
    report = {
        "import_ms": (imported - start) * 1000,
        "first_ms": (done - restored) * 1000,  # after a restore: its hooks and the first request
        "model_version": first["model_version"],
        "warm": {},
    }
    store_ms = _time_record_writes()
    for name, count in repeats.items():
        for _ in range(WARMUP_INVOCATIONS if name == "single" else 1):
            invoke(events[name]["event"])
        rows = {"ms": [], "decode": [], "inference": [], "store": []}
        for _ in range(count):
            store_ms.clear()
            t0 = time.perf_counter()
            body = invoke(events[name]["event"])
            rows["ms"].append((time.perf_counter() - t0) * 1000)
            rows["decode"].append(body["timings_ms"]["decode"])
            rows["inference"].append(body["timings_ms"]["inference"])
            rows["store"].append(sum(store_ms))
        report["warm"][name] = rows
    return report


def _time_record_writes() -> list[float]:
    """Wrap the record writer to time it (a list that each write appends its milliseconds to)."""
    from classifier.api import records

    spent: list[float] = []
    write = records._write

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return write(*args, **kwargs)
        finally:
            spent.append((time.perf_counter() - t0) * 1000)

    records._write = timed
    return spent


# --- the parent: moto server, events, processes, table --------------------------------------------


def _test_images(count: int) -> list[tuple[str, bytes]]:
    from infra.devdata import SHARED_DATA

    with zipfile.ZipFile(SHARED_DATA / "cifar10-test.zip") as archive:
        names = sorted(name for name in archive.namelist() if name.endswith(".jpg"))[::50][:count]
        return [(name.replace("/", "-"), archive.read(name)) for name in names]


def _events() -> dict:
    """The event files, with their bodies swapped for batches of real test images."""
    single = json.loads((REPO / "shared" / "events" / "predict-raw.json").read_text())
    events = {"single": {"handler": "predict", "event": single}}
    images = _test_images(max(BATCH_SIZES))
    for size in BATCH_SIZES:
        event = json.loads((REPO / "shared" / "events" / "batch-json.json").read_text())
        event["body"] = json.dumps(
            {
                "images": [
                    {"name": name, "image": base64.b64encode(data).decode()} for name, data in images[:size]
                ]
            }
        )
        events[f"batch {size}"] = {"handler": "batch", "event": event}
    return events


@functools.cache
def _memory_mb(function_id: str) -> int:
    from infra.template import Template

    return Template(REPO / "template.yaml", region=REGION).functions[function_id].memory_mb


def _build(folder: Path) -> dict[str, Path]:
    """The layer's python/ and the predict and batch functions' build folders, built into ``folder``."""
    from infra.build import build_function, build_layer
    from infra.template import Template

    template = Template(REPO / "template.yaml", region=REGION)
    built = {"layer": build_layer(folder / "layer"), "runtime": folder / "runtime"}
    # Lambda's runtime directory provides snapshot_restore_py (SnapStart's hooks); the layer does not.
    import snapshot_restore_py

    built["runtime"].mkdir()
    shutil.copy(snapshot_restore_py.__file__, built["runtime"])
    for handler in ("predict", "batch"):
        function = template.functions[f"{handler.title()}Function"]
        built[handler] = build_function(function.logical_id, function.code_dir, folder / handler)
    return built


def _run_child(
    handler: str, runtime: str, built: dict, events_file: Path, repeats: dict, environment: dict
) -> dict:
    first_event = "single" if handler == "predict" else f"batch {BATCH_SIZES[0]}"
    function_dir = built[handler]
    env = {
        **environment,
        "PATH": os.environ.get("PATH", ""),
        # /var/task, /opt/python, /var/runtime, then this repository for bench.handlers (standard library)
        "PYTHONPATH": os.pathsep.join(map(str, (function_dir, built["layer"], built["runtime"], REPO))),
        "LAMBDA_TASK_ROOT": str(function_dir),
        "AWS_LAMBDA_FUNCTION_NAME": f"bench-{handler}",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(_memory_mb(f"{handler.title()}Function")),
        "POWERTOOLS_TRACE_DISABLED": "true",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    code = (
        "import json, sys; from bench.handlers import _child; "
        "print('BENCH ' + json.dumps(_child(*sys.argv[1:4], json.loads(sys.argv[4]))))"
    )
    no_site = ["-S"] if runtime == "litert" else []  # Keras needs TensorFlow from site-packages
    result = subprocess.run(
        [sys.executable, *no_site, "-c", code, runtime, str(events_file), first_event, json.dumps(repeats)],
        env=env,
        cwd=function_dir,
        capture_output=True,
        text=True,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("BENCH ")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"benchmark process failed ({runtime} {handler}):\n{result.stderr[-3000:]}")
    return json.loads(lines[-1][len("BENCH ") :])


class _InstantDynamoDB(http.server.BaseHTTPRequestHandler):
    """A DynamoDB endpoint that answers every request with ``{}`` (no item, nothing unprocessed)."""

    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects
    disable_nagle_algorithm = True  # headers and body go out at once (no 40 ms delayed-ACK stall)

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args) -> None:
        pass


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _p90(values: list[float]) -> float:
    return sorted(values)[max(0, int(round(0.9 * len(values))) - 1)]


def measure(
    runtime: str, built: dict, environment: dict, events_file: Path, cold_runs: int, repeats: dict
) -> dict:
    colds = [_run_child("predict", runtime, built, events_file, {}, environment) for _ in range(cold_runs)]
    snapstart = {**environment, "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"}
    restores = [_run_child("predict", runtime, built, events_file, {}, snapstart) for _ in range(cold_runs)]
    single = _run_child("predict", runtime, built, events_file, {"single": repeats["single"]}, environment)
    batch = _run_child(
        "batch",
        runtime,
        built,
        events_file,
        {f"batch {size}": repeats["batch"] for size in BATCH_SIZES},
        environment,
    )
    return {
        "cold": colds,
        "restored": restores,
        "warm": {**single["warm"], **batch["warm"]},
        "model_version": single["model_version"],
    }


def _format(results: dict[str, dict], cold_runs: int) -> str:
    columns = list(results)
    rows = []

    def cold_row(label: str, pick) -> None:
        rows.append([label] + [f"{_median([pick(run) for run in results[c]['cold']]):.0f}" for c in columns])

    cold_row(
        f"cold start: import + first invocation (median of {cold_runs})",
        lambda run: run["import_ms"] + run["first_ms"],
    )
    rows.append(
        ["  fastest"]
        + [f"{min(run['import_ms'] + run['first_ms'] for run in results[c]['cold']):.0f}" for c in columns]
    )
    cold_row("  import", lambda run: run["import_ms"])
    cold_row("  first invocation", lambda run: run["first_ms"])
    rows.append(
        [f"cold start after a SnapStart restore: hooks + first invocation (median of {cold_runs})"]
        + [f"{_median([run['first_ms'] for run in results[c]['restored']]):.0f}" for c in columns]
    )
    for name in ["single", *(f"batch {size}" for size in BATCH_SIZES)]:
        label = "warm: 1 image" if name == "single" else f"warm: {name.replace('batch ', 'batch of ')}"
        count = len(results[columns[0]]["warm"][name]["ms"])
        rows.append(
            [f"{label} (median, p90; n={count})"]
            + [
                f"{_median(results[c]['warm'][name]['ms']):.1f}, {_p90(results[c]['warm'][name]['ms']):.1f}"
                for c in columns
            ]
        )
        for part in ("decode", "inference", "store"):
            rows.append(
                [f"  {part} (median)"] + [f"{_median(results[c]['warm'][name][part]):.1f}" for c in columns]
            )
    header = ["handler latency, ms", *[f"{c} ({results[c]['model_version']})" for c in columns]]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Handler cold start and warm latency, LiteRT vs TensorFlow/Keras"
    )
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    parser.add_argument("--no-keras", action="store_true", help="skip the TensorFlow/Keras handler")
    args, _ = parser.parse_known_args(argv)
    cold_runs = 2 if args.quick else 11
    repeats = {"single": 20, "batch": 3} if args.quick else {"single": 200, "batch": 20}

    from infra.moto_server import moto_server
    from infra.template import Template

    template = Template(REPO / "template.yaml", region=REGION)
    with moto_server(template, REGION) as aws:
        environment = {**aws, **template.functions["PredictFunction"].environment}
        stub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _InstantDynamoDB)
        threading.Thread(target=stub.serve_forever, daemon=True).start()
        instant = {**environment, "AWS_ENDPOINT_URL_DYNAMODB": f"http://127.0.0.1:{stub.server_address[1]}"}
        columns = {"litert": ("litert", environment), "litert, instant store": ("litert", instant)}
        if not args.no_keras and KERAS_MODEL.exists():
            columns["keras"] = ("keras", environment)
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            built = _build(Path(folder))
            print(
                f"  built the layer and functions in {time.perf_counter() - started:.0f} s", file=sys.stderr
            )
            events_file = Path(folder) / "events.json"
            events_file.write_text(json.dumps(_events()))
            results = {}
            for column, (runtime, env) in columns.items():
                started = time.perf_counter()
                results[column] = measure(runtime, built, env, events_file, cold_runs, repeats)
                print(f"  measured {column} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        stub.shutdown()
    print()
    print("Handlers through lambda_handler, fresh processes running the build output as Lambda runs it;")
    print(
        "records written to DynamoDB on a local moto server (store = that write), or to a stub that answers"
    )
    print("at once (instant store); X-Ray off. Batch decode is summed over the images.")
    print(
        "Cold starts vary by 20% from run to run here: to compare two versions, alternate them in one series."
    )
    if not KERAS_MODEL.exists():
        print(f"  no {KERAS_MODEL.relative_to(REPO)}: the TensorFlow/Keras column is left out")
    print(_format(results, cold_runs))


if __name__ == "__main__":
    main()
