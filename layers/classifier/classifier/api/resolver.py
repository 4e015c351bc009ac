"""What every API function shares: the REST resolver with the error mapping, and reading the event.

One exception handler turns any :class:`~classifier.errors.ClassifierError` into
``{"error": {"code", "message"}}`` with the error's own ``http_status``; unknown routes get the same
shape with 404. Anything else is a bug: Powertools logs it and Lambda reports the failure.
"""

import logging
import re

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from classifier.errors import ClassifierError, ResourceNotFoundError, error_body
from classifier.payloads import request_body

logger = logging.getLogger(__name__)


def error_response(error: ClassifierError) -> Response:
    return Response(
        status_code=error.http_status,
        content_type=content_types.APPLICATION_JSON,
        body=error_body(error),
    )


_PATH_PARAMETER = re.compile(r"<(\w+)>")


class _Resolver(APIGatewayRestResolver):
    """Powertools' REST resolver, with a path parameter matching any one path segment, as API
    Gateway's ``{name}`` does. Powertools' own pattern takes only word characters and some
    punctuation, so ``GET /retrain/a"b`` (routed here by API Gateway) found no route: a 404 "No
    route" for a route that exists, and for a client's key on an operator route instead of 403."""

    @staticmethod
    def _compile_regex(rule: str, base_regex: str = "^{}/*$"):  # trailing slashes allowed, as in its own
        return re.compile(base_regex.format(_PATH_PARAMETER.sub(r"(?P<\1>[^/]+)", rule)))


def make_resolver(function_logger: Logger) -> APIGatewayRestResolver:
    """The function's resolver. The package's own loggers (``classifier.*``) write through
    ``function_logger``'s handler, so their lines are the same JSON with the same Lambda context."""
    copy_config_to_registered_loggers(source_logger=function_logger, include={"classifier"})
    app = _Resolver()

    @app.exception_handler(ClassifierError)
    def handle_classifier_error(error: ClassifierError) -> Response:
        if error.http_status >= 500:
            logger.exception("Request failed", extra={"error_code": error.code})
        else:
            logger.info("Request refused", extra={"error_code": error.code, "error_message": str(error)})
        return error_response(error)

    @app.not_found
    def handle_not_found(_: NotFoundError) -> Response:
        event = app.current_event
        return error_response(ResourceNotFoundError(f"No route {event.http_method} {event.path}."))

    return app


def body(event: APIGatewayProxyEvent) -> bytes:
    return request_body(event.body, bool(event.is_base64_encoded))


def content_type(event: APIGatewayProxyEvent) -> str | None:
    return event.headers.get("content-type")
