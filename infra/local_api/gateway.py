"""What API Gateway does with a request before and after the function, read from the template:
route match, payload limit (413), API key (403), usage-plan and stage token buckets (429), daily
quota (429), the proxy event, the integration timeout (504), the function's answer back as
HTTP, and gateway responses rendered from the template's own ``GatewayResponses``.

The function runs in a worker process of its own (``LocalLambda``): a handler that raises or a
worker that dies mid-request is API Gateway's 502, and a function whose workers are all busy
past a short queue is 429 ``too_many_requests`` (API Gateway would pass Lambda's 429 on as a 5xx;
a 429 here tells local clients to retry).
"""

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote

from infra import events
from infra.local_api.lambda_runtime import (
    FunctionError,
    FunctionThrottledError,
    FunctionTimeoutError,
    LocalLambda,
)
from infra.template import Route, Template, Throttle, UsagePlan

logger = logging.getLogger("local_api")

API_GATEWAY_PAYLOAD_LIMIT = 10 * 1024 * 1024  # bytes, API Gateway REST request payload
LAMBDA_PAYLOAD_LIMIT = 6 * 1024 * 1024  # bytes, synchronous invocation event (after base64)
INTEGRATION_TIMEOUT_S = 29.0  # API Gateway REST integration timeout

# API Gateway's own status and message for each gateway response type it raises here.
_GATEWAY_DEFAULTS: dict[str, tuple[int, str, str]] = {
    "MISSING_AUTHENTICATION_TOKEN": (
        403,
        "Missing Authentication Token",
        "MissingAuthenticationTokenException",
    ),
    "INVALID_API_KEY": (403, "Forbidden", "ForbiddenException"),
    "THROTTLED": (429, "Too Many Requests", "TooManyRequestsException"),
    "QUOTA_EXCEEDED": (429, "Limit Exceeded", "LimitExceededException"),
    "REQUEST_TOO_LARGE": (413, "Request Too Long", "RequestTooLongException"),
    "INTEGRATION_TIMEOUT": (504, "Endpoint request timed out", "InternalServerErrorException"),
    "DEFAULT_5XX": (502, "Internal server error", "InternalServerErrorException"),
}


@dataclass
class HttpRequest:
    method: str
    target: str  # path and query as sent: "/predict?top_k=3"
    headers: list[tuple[str, str]]
    body: bytes = b""
    source_ip: str = "127.0.0.1"


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


class TokenBucket:
    """``burst`` tokens, refilled at ``rate`` per second; a request takes one or is throttled."""

    def __init__(self, throttle: Throttle, now: float):
        self.rate = throttle.rate
        self.burst = throttle.burst
        self.tokens = float(throttle.burst)
        self.updated = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


@dataclass(frozen=True)
class KeyGrant:
    """What API Gateway knows of a key: its id (the request context's ``apiKeyId``) and its usage plan."""

    key_id: str
    plan: UsagePlan | None  # None: the template's first plan (or none at all)


class Gateway:
    def __init__(
        self,
        template: Template,
        runtime: LocalLambda,
        api_keys: Mapping[str, KeyGrant] | set[str],
        *,
        integration_timeout_s: float = INTEGRATION_TIMEOUT_S,
        payload_limit: int = API_GATEWAY_PAYLOAD_LIMIT,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.template = template
        self.runtime = runtime
        if not isinstance(api_keys, Mapping):  # plain values: each its own id, the template's first plan
            api_keys = {
                value: KeyGrant(f"local-{index}", None) for index, value in enumerate(sorted(api_keys))
            }
        self.api_keys = dict(api_keys)
        self.integration_timeout_s = integration_timeout_s
        self.payload_limit = payload_limit
        self.clock = clock
        # Literal segments first, as API Gateway prefers /predict/batch over /predict/{id}.
        self.routes = sorted(
            template.routes, key=lambda r: [part.startswith("{") for part in r.path.strip("/").split("/")]
        )
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._quota_used: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    # ---- gateway responses

    def error(self, kind: str, request_id: str, message: str | None = None) -> HttpResponse:
        """A gateway response of ``kind`` rendered from the template (API Gateway's default otherwise)."""
        status, default_message, error_type = _GATEWAY_DEFAULTS[kind]
        message = message or default_message
        responses = self.template.gateway_responses
        spec = responses.get(kind) or responses.get("DEFAULT_5XX" if status >= 500 else "DEFAULT_4XX")
        body = json.dumps({"message": message})
        headers = [("Content-Type", "application/json")]
        if spec is not None:
            status = spec.status_code or status
            template = spec.templates.get("application/json")
            if template is not None:
                body = (
                    template.replace("$context.error.messageString", json.dumps(message))
                    .replace("$context.error.message", message)
                    .replace("$context.error.responseType", kind)
                    .replace("$context.requestId", request_id)
                )
            headers.extend(spec.headers.items())
        headers += [("x-amzn-RequestId", request_id), ("x-amzn-ErrorType", error_type)]
        return HttpResponse(status, headers, body.encode("utf-8"))

    def function_throttled(self, error: FunctionThrottledError, request_id: str) -> HttpResponse:
        """429 in the error form: the function's workers are all busy (its concurrency is spent).

        No gateway response type covers it, so the body is written here, in the same
        ``{"error": {"code", "message"}}`` form, with the headers of the template's ``THROTTLED``."""
        body = json.dumps({"error": {"code": "too_many_requests", "message": str(error)}})
        spec = self.template.gateway_responses.get("THROTTLED")
        headers = [("Content-Type", "application/json"), *(spec.headers.items() if spec else ())]
        headers += [
            ("Retry-After", "1"),
            ("x-amzn-RequestId", request_id),
            ("x-amzn-ErrorType", "TooManyRequestsException"),
        ]
        return HttpResponse(429, headers, body.encode("utf-8"))

    # ---- the request

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            if route.method in (method, "ANY"):
                parameters = events.match_path(route.path, path)
                if parameters is not None:
                    return route, parameters
        return None

    def _take(self, key: tuple[str, str], throttle: Throttle, now: float) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(throttle, now)
        return bucket.take(now)

    def _admit(self, route: Route, api_key: str | None, request_id: str) -> HttpResponse | None:
        """Stage cap, then the key's per-route bucket, then its quota (its own plan's figures): None
        when admitted."""
        now = self.clock()
        with self._lock:
            stage = self.template.stage_throttle
            if stage is not None and not self._take(("*stage*", route.throttle_key), stage, now):
                return self.error("THROTTLED", request_id)
            if api_key is None:
                return None
            plan = self.api_keys[api_key].plan if api_key in self.api_keys else None
            route_throttles = plan.route_throttles if plan else self.template.route_throttles
            per_route = route_throttles.get(route.throttle_key) or (
                plan.throttle if plan else self.template.plan_throttle
            )
            if per_route is not None and not self._take((api_key, route.throttle_key), per_route, now):
                return self.error("THROTTLED", request_id)
            quota = plan.quota if plan else self.template.quota
            if quota is not None:
                period = _quota_period(quota.period)
                used = self._quota_used.get((api_key, period), 0)
                if used >= quota.limit:
                    return self.error("QUOTA_EXCEEDED", request_id)
                self._quota_used[(api_key, period)] = used + 1
        return None

    def handle(self, request: HttpRequest) -> HttpResponse:
        request_id = str(uuid.uuid4())
        raw_path, _, raw_query = request.target.partition("?")
        path = unquote(raw_path)
        stage_prefix = f"/{self.template.stage_name}"
        if path.startswith(stage_prefix + "/"):  # the deployed URL's form, /v1/predict, works too
            path = path[len(stage_prefix) :]
        if len(request.body) > self.payload_limit:
            return self.error("REQUEST_TOO_LARGE", request_id)
        matched = self.match(request.method.upper(), path)
        if matched is None:
            return self.error("MISSING_AUTHENTICATION_TOKEN", request_id)
        route, path_parameters = matched
        api_key = next((value for name, value in request.headers if name.lower() == "x-api-key"), None)
        if route.api_key_required and api_key not in self.api_keys:
            return self.error("INVALID_API_KEY", request_id)
        refused = self._admit(route, api_key if route.api_key_required else None, request_id)
        if refused is not None:
            return refused
        event = events.api_event(
            route=route,
            path=path,
            path_parameters=path_parameters,
            query=_query_pairs(raw_query),
            headers=request.headers,
            body=request.body,
            binary_media_types=self.template.binary_media_types,
            stage=self.template.stage_name,
            api_key=api_key,
            api_key_id=self.api_keys[api_key].key_id if api_key in self.api_keys else None,
            source_ip=request.source_ip,
            request_id=request_id,
        )
        return self.integrate(route, event, request_id)

    def integrate(self, route: Route, event: dict[str, Any], request_id: str) -> HttpResponse:
        if len(json.dumps(event)) > LAMBDA_PAYLOAD_LIMIT:
            message = f"Request payload exceeds Lambda's {LAMBDA_PAYLOAD_LIMIT // (1024 * 1024)} MB invocation limit"
            return self.error("REQUEST_TOO_LARGE", request_id, message)
        try:
            result = self.runtime.invoke(route.function_id, event, timeout_s=self.integration_timeout_s)
        except FunctionThrottledError as error:
            logger.warning("%s", error)
            return self.function_throttled(error, request_id)
        except FunctionTimeoutError:
            if self.template.functions[route.function_id].timeout_s < self.integration_timeout_s:
                return self.error("DEFAULT_5XX", request_id)  # Lambda timed out: API Gateway says 502
            return self.error("INTEGRATION_TIMEOUT", request_id)
        except FunctionError:
            return self.error("DEFAULT_5XX", request_id)
        try:
            status, headers, body = events.response_parts(result)
        except ValueError:
            logger.exception("%s returned a malformed proxy response", route.function_id)
            return self.error("DEFAULT_5XX", request_id)
        return HttpResponse(status, headers + [("x-amzn-RequestId", request_id)], body)


def _quota_period(period: str) -> str:
    today = datetime.now(UTC)
    if period == "WEEK":
        return today.strftime("%G-W%V")
    if period == "MONTH":
        return today.strftime("%Y-%m")
    return today.strftime("%Y-%m-%d")


def _query_pairs(raw_query: str) -> list[tuple[str, str]]:
    return parse_qsl(raw_query, keep_blank_values=True)
