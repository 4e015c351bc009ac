"""A local Lambda sandbox: ``python -m infra.local_api.worker EVENTS_FD RESULTS_FD``.

Started by ``Sandbox`` (``infra.local_api.sandbox``) with the function's environment already
set. It reads its function from the first message on ``EVENTS_FD``, imports the handler (the cold
start) and answers ``{"ready": ...}`` or ``{"init_error": ...}`` on ``RESULTS_FD``; then, one
event at a time until that pipe closes, it runs the handler and answers ``{"result": ...}`` or
``{"error": ...}``. Module state survives between events, as in a warm Lambda sandbox.

The two pipes are the protocol's alone: the handler's prints and logs go to the stdout and
stderr the server gave the worker. The parent kills the worker at its time limit; the context's
``get_remaining_time_in_millis`` counts down to that moment.
"""

import os
import sys
import time
from typing import Any

from infra.local_api.lambda_runtime import LambdaContext, error_payload, load_handler
from infra.local_api.sandbox import decode_function, read_message, write_message


def _run(handler: Any, message: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        return {"result": handler(message["event"], context)}
    except Exception as error:  # reported to the parent as Lambda reports an Unhandled error
        return {"error": error_payload(error)}


def main(argv: list[str]) -> int:
    events, results = int(argv[0]), int(argv[1])
    for fd in (events, results):
        os.set_inheritable(fd, False)  # whatever the handler starts must not hold the protocol's pipes
    setup = read_message(events)
    function, region = decode_function(setup["function"]), setup["region"]
    started = time.perf_counter()
    try:
        handler = load_handler(function)
    except Exception as error:  # Lambda's Runtime.ImportModuleError: reported, then the sandbox ends
        write_message(
            results, {"init_error": {**error_payload(error), "errorType": "Runtime.ImportModuleError"}}
        )
        return 1
    write_message(results, {"ready": True, "init_ms": (time.perf_counter() - started) * 1000})
    while True:
        try:
            message = read_message(events)
        except EOFError:  # the parent closed the pipe (or died): the sandbox is done
            return 0
        context = LambdaContext(function, region, message["request_id"], timeout_s=message["timeout_s"])
        outcome = _run(handler, message, context)
        try:
            write_message(results, outcome)
        except (TypeError, ValueError) as error:  # a result JSON cannot hold (a circular one, say)
            write_message(results, {"error": {**error_payload(error), "errorType": "Runtime.MarshalError"}})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
