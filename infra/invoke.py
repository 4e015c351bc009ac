"""``make invoke FUNCTION=PredictFunction EVENT=shared/events/predict-raw.json``: run one of the
template's handlers in this process on an event file (the files ``sam local invoke -e`` takes) and
print what it returns. No Docker, no AWS: S3 and DynamoDB come from moto (in process) with the
template's tables and bucket, unless ``AWS_ENDPOINT_URL`` names an endpoint (moto server,
LocalStack) or ``--aws`` says to use the configured AWS account as it is.
"""

import argparse
import json
import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from infra import events
from infra.local_api import create_storage
from infra.local_api.lambda_runtime import LambdaContext, load_handler
from infra.moto_server import MOTO_CREDENTIALS
from infra.template import Template


def invoke(template: Template, function_id: str, event: dict[str, Any], *, use_moto: bool) -> Any:
    """The handler's return value for ``event``; the function's environment stays set afterwards."""
    if function_id not in template.functions:
        raise SystemExit(
            f"No function {function_id!r} in {template.path}; choose one of {', '.join(template.functions)}."
        )
    function = template.functions[function_id]
    os.environ.setdefault("AWS_DEFAULT_REGION", template.region)
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")  # no X-Ray daemon here
    os.environ.update(function.environment)
    with ExitStack() as stack:
        if use_moto:
            from moto import mock_aws  # a developer tool: never imported by the functions

            for key, value in MOTO_CREDENTIALS.items():
                os.environ.setdefault(key, value)
            stack.enter_context(mock_aws())
            create_storage(template, template.region)
        handler = load_handler(function)
        return handler(event, LambdaContext(function, template.region))


def readable(result: Any) -> Any:
    """A proxy response with its JSON body parsed, for printing."""
    if isinstance(result, dict) and isinstance(result.get("body"), str) and not result.get("isBase64Encoded"):
        try:
            return {**result, "body": json.loads(result["body"])}
        except ValueError:
            return result
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--function", required=True, help="logical id in template.yaml, e.g. PredictFunction")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--event", type=Path, help="event JSON file, e.g. shared/events/predict-raw.json")
    source.add_argument(
        "--image", type=Path, help="an image file: sent as the raw body of the function's API route"
    )
    parser.add_argument("--template", default="template.yaml", type=Path)
    parser.add_argument(
        "--aws", action="store_true", help="use the configured AWS endpoint and account, not moto"
    )
    args = parser.parse_args(argv)
    template = Template(args.template)
    if args.image is not None:  # the event API Gateway would build, from the local API's own builder
        event = events.event_for_request(template, args.function, file=args.image)
    else:
        event = json.loads(args.event.read_text())
    use_moto = not (args.aws or os.environ.get("AWS_ENDPOINT_URL"))
    result = invoke(template, args.function, event, use_moto=use_moto)
    json.dump(readable(result), sys.stdout, indent=2)
    sys.stdout.write("\n")
    status = result.get("statusCode", 200) if isinstance(result, dict) else 200
    return 0 if int(status) < 500 else 1


if __name__ == "__main__":
    sys.exit(main())
