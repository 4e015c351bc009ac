"""``make serve``: ``python -m infra.local_api [--port N] [--template template.yaml]``.

Serves on loopback (``--host`` to widen it, on purpose). ``PORT``, ``API_KEY`` (client keys) and
``OPERATOR_API_KEY`` (operator keys), each comma-separated, come from the environment when set; one
key of each kind is generated and printed otherwise."""

import argparse
import logging
import os
import signal
import sys
import threading

from infra.devdata import SHARED_DATA
from infra.local_api import LocalApi
from infra.local_api.lambda_runtime import ASYNC_RETRY_DELAYS_S, DEFAULT_CONCURRENCY
from infra.local_api.sandbox import IDLE_S


def _example(api: LocalApi) -> str:
    routes = {(route.method, route.path) for route in api.template.routes}
    header = f'-H "x-api-key: {api.api_key}"'
    if ("POST", "/predict") in routes:
        return f"curl {header} -F file=@dog.jpg {api.url}/predict"
    method, path = sorted(routes)[0]
    return f"curl -X {method} {header} {api.url}{path}"


def _keys(value: str | None) -> list[str]:
    return [key.strip() for key in (value or "").split(",") if key.strip()]


def _delays(value: str) -> tuple[float, ...]:
    try:
        delays = tuple(float(part) for part in value.split(",") if part.strip())
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not comma-separated seconds: {value!r}") from error
    if any(delay < 0 for delay in delays):
        raise argparse.ArgumentTypeError(f"a delay cannot be negative: {value!r}")
    return delays


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.local_api", description=__doc__)
    parser.add_argument("--template", default="template.yaml")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 3000))
    parser.add_argument(
        "--api-key",
        default=os.environ.get("API_KEY") or None,
        help="client keys (predict, own records, models), comma-separated (default: one generated)",
    )
    parser.add_argument(
        "--operator-api-key",
        default=os.environ.get("OPERATOR_API_KEY") or None,
        help="operator keys (every route), comma-separated (default: one generated)",
    )
    parser.add_argument(
        "--parameter", action="append", default=[], metavar="NAME=VALUE", help="template parameter override"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help="worker processes per function where the template reserves no concurrency "
        f"(default: {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--worker-idle",
        type=float,
        default=IDLE_S,
        help="seconds an idle worker lives before it is stopped, as Lambda reclaims idle sandboxes; "
        f"0 for never (default: {IDLE_S:.0f}; one worker per API function is always kept)",
    )
    parser.add_argument(
        "--async-retry-delays",
        type=_delays,
        default=ASYNC_RETRY_DELAYS_S,
        help="seconds before each retry of a failed asynchronous event, comma-separated, after which "
        "it goes to the function's dead-letter queue (default: "
        f"{','.join(f'{d:.0f}' for d in ASYNC_RETRY_DELAYS_S)}, as Lambda)",
    )
    parser.add_argument(
        "--schedule-interval",
        type=float,
        default=float(os.environ.get("SCHEDULE_INTERVAL") or 60),
        help="seconds between runs of the scheduled functions (the monitor); 0 for never (default: 60)",
    )
    parser.add_argument(
        "--data",
        default=str(SHARED_DATA),
        help="folder with cifar10-train.zip and cifar10-test.zip, uploaded as the base datasets for "
        "retraining; 'none' to skip the bootstrap",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("botocore", "werkzeug"):  # moto's request log and boto3's endpoint notes
        logging.getLogger(noisy).setLevel(logging.WARNING)
    parameters = dict(item.split("=", 1) for item in args.parameter)
    keys = _keys(args.api_key)
    operator_keys = _keys(args.operator_api_key)
    api = LocalApi(
        args.template,
        host=args.host,
        port=args.port,
        api_key=keys[0] if keys else None,
        extra_api_keys=tuple(keys[1:]),
        operator_api_key=operator_keys[0] if operator_keys else None,
        extra_operator_api_keys=tuple(operator_keys[1:]),
        parameters=parameters,
        bootstrap_data=None if args.data == "none" else args.data,
        default_concurrency=args.concurrency,
        schedule_interval_s=args.schedule_interval,
        worker_idle_s=args.worker_idle or None,
        async_retry_delays_s=args.async_retry_delays,
    )
    api.start()
    storage = "moto, in process" if api.uses_moto else api.storage_endpoint
    routes = "\n".join(f"  {route.method:6} {route.path}" for route in api.template.routes)
    print(
        f"Local API on {api.url} (stage {api.template.stage_name}; S3 and DynamoDB: {storage})\n"
        f"{routes}\n"
        f"Client API key:   {api.api_key}\n"
        f"Operator API key: {api.operator_api_key}\n"
        f"Try:     {_example(api)}\n"
        "Ctrl-C stops it.",
        flush=True,
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        while not stopped.wait(0.5):  # short waits, so signals are handled promptly
            pass
    except KeyboardInterrupt:
        pass
    api.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
