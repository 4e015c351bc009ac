"""`make loadtest`: locust against a local API that this command starts, then the figures.

The local API serves the real ``template.yaml`` and the shipped model, on loopback only, with S3
and DynamoDB from moto. Locust runs headless in a process of its own (it patches the standard
library for gevent, which the server's threads must not see), bounded by users, seconds and
requests, with the load of ``bench/locustfile.py``: random PNGs to ``POST /predict`` and reads of
the caller's own predictions, every answer checked against the request it answers.

Why locust: a maintained load generator with users, spawn rates and percentile statistics, which
a hand-written thread loop would have to reimplement.

Two of the template's limits would otherwise shape the figures, so the run sets them aside:

- the usage plan's per-key predict bucket (burst 5, then 25 a minute): each user takes a fresh
  client key every ``burst`` predictions, from enough keys registered for the request limit;
- the stage's safety net (``StageThrottleRate``/``StageThrottleBurst``, 50/s and 100 per method
  across all keys): raised through those template parameters unless ``--template-stage-limit``.

What is left is the local API itself: the gateway, the functions' worker pools (4 workers for
predict unless ``--concurrency``) and moto. A 429 that remains is a function whose workers were all
busy past the short queue. The exit status is 1 on any mismatch (an answer that is not the
request's own), 5xx or request without an answer.

    python -m bench.loadtest --users 32 --seconds 30 --requests 5000
"""

import argparse
import contextlib
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from infra.api_keys import new_key_value
from infra.local_api import LocalApi
from infra.template import Template

REPO = Path(__file__).resolve().parents[1]
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
PREDICT_ROUTE = "/predict/POST"
LIFTED_STAGE_LIMIT = "100000"  # requests per second, and burst: far above what this machine serves


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.loadtest", description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=32, help="simulated users, each a closed loop")
    parser.add_argument("--seconds", type=int, default=30, help="run time once locust starts")
    parser.add_argument("--requests", type=int, default=5000, help="stop after this many requests")
    parser.add_argument("--spawn-rate", type=float, help="users started per second (default: all at once)")
    parser.add_argument(
        "--concurrency", type=int, default=4, help="workers per function where the template reserves none"
    )
    parser.add_argument(
        "--template-stage-limit",
        action="store_true",
        help="keep the stage's per-method cap of the template (50/s): its 429s then count",
    )
    parser.add_argument("--summary-json", type=Path, help="also write the figures there")
    parser.add_argument(
        "--server-log",
        type=Path,
        default=Path(tempfile.gettempdir()) / "loadtest-local-api.log",
        help="where the local API's output goes (its access lines, the functions' logs and metrics)",
    )
    parser.add_argument("--template", type=Path, default=REPO / "template.yaml")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> tuple[int, dict | None]:
    """Start the local API, run locust against it, stop the API: locust's exit status and figures."""
    parameters = {}
    if not args.template_stage_limit:
        parameters = {"StageThrottleRate": LIFTED_STAGE_LIMIT, "StageThrottleBurst": LIFTED_STAGE_LIMIT}
    template = Template(args.template, parameters)
    key_uses = template.route_throttles[PREDICT_ROUTE].burst
    # Every prediction may be the last use of a key, and each user holds one partly used key.
    keys = [new_key_value() for _ in range(math.ceil(args.requests / key_uses) + args.users)]

    with _output_to(args.server_log) as (out, err):
        started = time.perf_counter()
        api = LocalApi(
            args.template,
            host="127.0.0.1",
            port=0,
            api_key=keys[0],
            extra_api_keys=tuple(keys[1:]),
            parameters=parameters,
            default_concurrency=args.concurrency,
        ).start()
        print(
            f"local API on {api.url} in {time.perf_counter() - started:.1f} s with {len(keys)} client keys; "
            f"its output in {args.server_log}",
            file=out,
            flush=True,
        )
        try:
            status, figures = _locust(args, api.url, keys, key_uses, out, err)
        finally:
            api.stop()
    if figures is not None:
        figures["parameters"] = {
            "users": args.users,
            "seconds": args.seconds,
            "requests": args.requests,
            "spawn_rate": args.spawn_rate or args.users,
            "concurrency": args.concurrency,
            "client_keys": len(keys),
            "stage_limit": "template" if args.template_stage_limit else "lifted",
        }
    return status, figures


def _locust(args, url: str, keys: list[str], key_uses: int, out, err) -> tuple[int, dict | None]:
    with tempfile.TemporaryDirectory(prefix="loadtest-") as folder:
        keys_file = Path(folder, "keys.json")
        keys_file.write_text(json.dumps(keys))
        summary_file = Path(folder, "summary.json")
        environment = {
            **os.environ,
            "LOADTEST_KEYS": str(keys_file),
            "LOADTEST_KEY_USES": str(key_uses),
            "LOADTEST_REQUESTS": str(args.requests),
            "LOADTEST_SUMMARY": str(summary_file),
        }
        command = [
            sys.executable,
            "-m",
            "locust",
            "--locustfile",
            str(LOCUSTFILE),
            "--headless",
            "--only-summary",
            "--loglevel",
            "WARNING",
            "--host",
            url,
            "--users",
            str(args.users),
            "--spawn-rate",
            str(args.spawn_rate or args.users),
            "--run-time",
            f"{args.seconds}s",
            "--stop-timeout",
            "5",
        ]
        # Locust ends itself at --run-time; the margin covers its start and stop.
        status = subprocess.run(
            command, env=environment, stdout=out, stderr=err, timeout=args.seconds + 60, check=False
        ).returncode
        return status, json.loads(summary_file.read_text()) if summary_file.exists() else None


@contextlib.contextmanager
def _output_to(path: Path):
    """Send this process's stdout and stderr (file descriptors 1 and 2, which the function workers
    inherit) to ``path`` for the duration; yield files on the original ones, for locust and the
    figures."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        with path.open("wb") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            with os.fdopen(os.dup(saved[0]), "w") as out, os.fdopen(os.dup(saved[1]), "w") as err:
                try:
                    yield out, err
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def report(figures: dict) -> str:
    """The figures as a short table: per route and in total."""
    lines = [
        "",
        f"load test: {json.dumps(figures['parameters'])}, {figures['duration_s']} s of requests",
        f"{'route':<24}{'requests':>9}{'req/s':>8}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}  statuses",
    ]
    for name, row in figures["routes"].items():
        codes = ", ".join(f"{code or 'none'}: {n}" for code, n in row["statuses"].items())
        lines.append(
            f"{name:<24}{row['requests']:>9}{row['requests_per_s']:>8}"
            f"{row['p50']:>8}{row['p95']:>8}{row['p99']:>8}  {codes}"
        )
    errors = {code: n for code, n in figures["routes"]["total"]["statuses"].items() if code != "200"}
    lines.append(f"errors by status: {errors or 'none'} (0: no HTTP answer)")
    lines.append(f"answers not belonging to their request (mismatches): {figures['mismatches']}")
    lines.extend(f"  {sample}" for sample in figures["mismatch_samples"])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    status, figures = run(args)
    if figures is None:
        print("locust wrote no figures", file=sys.stderr)
        return status or 1
    print(report(figures))
    if args.summary_json:
        args.summary_json.write_text(json.dumps(figures, indent=2))
    print("load test " + ("FAILED (mismatches, 5xx or unanswered requests)" if status else "passed"))
    return status


if __name__ == "__main__":
    sys.exit(main())
