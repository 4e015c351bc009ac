"""The one builder of the events Lambda receives locally: API Gateway REST proxy events (what the
local API sends for each request and what ``make invoke`` builds from a file) and S3
notification events (what the local API sends when an object lands under a trigger's prefix), and
SQS events (what an event source mapping hands a function).

The shapes follow what API Gateway and S3 send, the same keys as ``shared/events/*.json``.
"""

import base64
import fnmatch
import json
import mimetypes
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from infra.template import ACCOUNT_ID, API_ID, Route, Template

Pairs = Iterable[tuple[str, str]]


def is_binary(content_type: str | None, binary_media_types: Iterable[str]) -> bool:
    """Whether API Gateway hands this body to Lambda base64-encoded (``image/*`` style patterns)."""
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return any(fnmatch.fnmatchcase(media_type, pattern.lower()) for pattern in binary_media_types)


def _single_and_multi(pairs: Pairs) -> tuple[dict[str, str] | None, dict[str, list[str]] | None]:
    """API Gateway's two views of repeated names: the last value, and every value in order."""
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        single[name] = value
        multi.setdefault(name, []).append(value)
    return (single or None, multi or None)


def scheduled_event(rule: str, region: str = "us-east-1", now: float | None = None) -> dict[str, Any]:
    """The event EventBridge Scheduler sends a scheduled function (``shared/events/monitor-schedule.json``)."""
    now = time.time() if now is None else now
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "region": region,
        "resources": [f"arn:aws:events:{region}:123456789012:rule/{rule}"],
        "detail": {},
    }


def api_event(
    *,
    route: Route,
    path: str,
    path_parameters: Mapping[str, str] | None = None,
    query: Pairs = (),
    headers: Pairs = (),
    body: bytes = b"",
    binary_media_types: Iterable[str] = (),
    stage: str = "local",
    api_key: str | None = None,
    api_key_id: str | None = None,
    source_ip: str = "127.0.0.1",
    request_id: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The REST API (v1) Lambda proxy event for one request, as API Gateway builds it."""
    now = time.time() if now is None else now
    request_id = request_id or str(uuid.uuid4())
    header_pairs = list(headers)
    single_headers, multi_headers = _single_and_multi(header_pairs)
    single_query, multi_query = _single_and_multi(query)
    lower = {name.lower(): value for name, value in header_pairs}
    binary = is_binary(lower.get("content-type"), binary_media_types)
    if not body:
        event_body = None
    elif binary:
        event_body = base64.b64encode(body).decode("ascii")
    else:
        event_body = body.decode("utf-8", errors="replace")
    stamp = datetime.fromtimestamp(now, UTC)
    host = lower.get("host", "localhost")
    return {
        "resource": route.path,
        "path": path,
        "httpMethod": route.method,
        "headers": single_headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": single_query,
        "multiValueQueryStringParameters": multi_query,
        "pathParameters": dict(path_parameters) if path_parameters else None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "local",
            "resourcePath": route.path,
            "httpMethod": route.method,
            "extendedRequestId": request_id,
            "requestTime": stamp.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/{stage}{path}",
            "accountId": ACCOUNT_ID,
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainPrefix": host.split(".", 1)[0].split(":", 1)[0],
            "requestTimeEpoch": int(now * 1000),
            "requestId": request_id,
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "sourceIp": source_ip,
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": lower.get("user-agent"),
                "user": None,
                "apiKey": api_key,
                "apiKeyId": (api_key_id or "local") if api_key else None,
            },
            "domainName": host,
            "deploymentId": "local",
            "apiId": API_ID,
        },
        "body": event_body,
        "isBase64Encoded": bool(event_body) and binary,
    }


def response_parts(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """A proxy integration result as HTTP: status, header pairs, body bytes (base64 decoded).

    Raises ``ValueError`` for what API Gateway calls a malformed Lambda proxy response (502)."""
    if not isinstance(result, dict) or "statusCode" not in result:
        raise ValueError("Malformed Lambda proxy response: no statusCode")
    status = int(result["statusCode"])
    headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers = [(k, v) for k, v in headers if k.lower() != name.lower()]
        headers.extend((str(name), str(value)) for value in values)
    body = result.get("body") or ""
    if not isinstance(body, str):
        raise ValueError("Malformed Lambda proxy response: body is not a string")
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")
    return status, headers, raw


def s3_event(*, bucket: str, key: str, size: int, etag: str, region: str, event_name: str) -> dict[str, Any]:
    """The S3 notification event for one object (``event_name`` like ``ObjectCreated:Put``)."""
    now = datetime.now(UTC)
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": region,
                "eventTime": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
                "eventName": event_name,
                "userIdentity": {"principalId": "local"},
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {
                    "x-amz-request-id": uuid.uuid4().hex[:16].upper(),
                    "x-amz-id-2": "local",
                },
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "local",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": "local"},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    # S3 URL-encodes keys in notifications (spaces become '+').
                    "object": {
                        "key": quote(key, safe="/").replace("%20", "+"),
                        "size": size,
                        "eTag": etag.strip('"'),
                        "sequencer": f"{time.time_ns():016X}",
                    },
                },
            }
        ]
    }


def s3_eventbridge_event(*, bucket: str, key: str, size: int, etag: str, region: str) -> dict[str, Any]:
    """The EventBridge event S3 sends for a new object (the bucket has EventBridge notifications on)."""
    now = datetime.now(UTC)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {
                "key": key,
                "size": size,
                "etag": etag.strip('"'),
                "sequencer": f"{time.time_ns():016X}",
            },
            "request-id": uuid.uuid4().hex[:16].upper(),
            "requester": "local",
            "source-ip-address": "127.0.0.1",
            "reason": "PutObject",
        },
    }


def event_for_request(
    template: Template,
    function_id: str,
    *,
    file: str | Path | None = None,
    json_body: str | None = None,
    content_type: str | None = None,
    method: str | None = None,
    path: str | None = None,
    query: Pairs = (),
    api_key: str = "local-invoke",
) -> dict[str, Any]:
    """The event API Gateway would send ``function_id`` for a request built from a file (a raw
    image body, say) or a JSON text. ``make invoke FUNCTION=PredictFunction IMAGE=dog.jpg`` uses it.

    The route is the function's first one (``method``/``path`` pick another); a path template's
    parameters are filled from ``path`` when given, e.g. ``path="/predictions/abc"``."""
    routes = [
        r for r in template.routes if r.function_id == function_id and (method is None or r.method == method)
    ]
    if not routes:
        raise ValueError(f"{function_id} serves no API route{f' with method {method}' if method else ''}")
    route, parameters = routes[0], {}
    if path is not None:
        for candidate in routes:
            parameters = match_path(candidate.path, path)
            if parameters is not None:
                route = candidate
                break
        else:
            raise ValueError(f"{path} matches none of {function_id}'s routes")
    body = b""
    if file is not None:
        body = Path(file).read_bytes()
        content_type = content_type or mimetypes.guess_type(str(file))[0] or "application/octet-stream"
    elif json_body is not None:
        body = json_body.encode("utf-8")
        content_type = content_type or "application/json"
    headers = [("Host", "localhost:3000"), ("User-Agent", "make-invoke"), ("x-api-key", api_key)]
    if content_type:
        headers.append(("Content-Type", content_type))
    return api_event(
        route=route,
        path=path or route.path,
        path_parameters=parameters or None,
        query=query,
        headers=headers,
        body=body,
        binary_media_types=template.binary_media_types,
        stage=template.stage_name,
        api_key=api_key,
    )


def match_path(resource_path: str, path: str) -> dict[str, str] | None:
    """Path parameters if ``path`` fits the resource path template (``/predictions/{id}``), else None.

    ``{name+}`` greedy parameters take the rest of the path, as in API Gateway."""
    template_parts = resource_path.strip("/").split("/") if resource_path != "/" else []
    parts = path.strip("/").split("/") if path.strip("/") else []
    parameters: dict[str, str] = {}
    for index, part in enumerate(template_parts):
        if part.startswith("{") and part.endswith("+}"):
            if index >= len(parts):
                return None
            parameters[part[1:-2]] = "/".join(parts[index:])
            return parameters
        if index >= len(parts):
            return None
        if part.startswith("{") and part.endswith("}"):
            if not parts[index]:
                return None
            parameters[part[1:-1]] = parts[index]
        elif part != parts[index]:
            return None
    return parameters if len(parts) == len(template_parts) else None


def dumps(event: dict[str, Any]) -> str:
    return json.dumps(event, indent=2)


def sqs_event(messages: list[dict[str, Any]], *, queue_arn: str, region: str) -> dict[str, Any]:
    """The event an SQS event source mapping sends: ``messages`` as ``ReceiveMessage`` returned them
    (with ``AttributeNames=["All"]``), in Lambda's record form."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": dict(message.get("Attributes") or {}),
                "messageAttributes": {
                    name: {
                        "stringValue": value.get("StringValue"),
                        "binaryValue": value.get("BinaryValue"),
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": value.get("DataType", "String"),
                    }
                    for name, value in (message.get("MessageAttributes") or {}).items()
                },
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for message in messages
        ]
    }
