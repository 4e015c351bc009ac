"""One Lambda invocation in a fresh process: ``python -m infra.local_api.worker TEMPLATE FUNCTION
EVENT_FILE RESULT_FILE [PARAMETERS_JSON]``. Writes ``{"result": ...}`` or ``{"error": ...}``.

The parent (``LocalLambda``) kills the process at the function's ``Timeout``; the context's
``get_remaining_time_in_millis`` counts down to that same moment."""

import json
import os
import sys
from pathlib import Path

from infra.local_api.lambda_runtime import LambdaContext, error_payload, load_handler
from infra.template import Template


def main(argv: list[str]) -> int:
    template_path, function_id, event_file, result_file = argv[:4]
    parameters = json.loads(argv[4]) if len(argv) > 4 else {}
    region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    function = Template(template_path, parameters, region=region).functions[function_id]
    event = json.loads(Path(event_file).read_text(encoding="utf-8"))
    try:
        result = load_handler(function)(event, LambdaContext(function, region))
        outcome = {"result": result}
    except Exception as error:  # reported to the parent as Lambda reports an Unhandled error
        outcome = {"error": error_payload(error)}
    Path(result_file).write_text(json.dumps(outcome, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
