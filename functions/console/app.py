"""The web console: GET / (the page) and GET /console/{proxy+} (its CSS and JavaScript modules),
served with no API key, and GET /whoami (the caller's key id and role, with a key), which the page
asks to show only what that key may do.

The files are read once, at the cold start, from ``static/`` beside this handler; a request can
only name one of them (a lookup in that table, so no path reaches the file system). Every answer
carries the Content-Security-Policy: scripts, styles and fonts from this origin only, images also
from ``data:`` and ``blob:`` (previews, thumbnails), and connections to this origin and to the S3
origin that presigned zip uploads post to (``upload_origin``)."""

from classifier.coldstart import gc_paused

with gc_paused():  # the cold start's imports, without the collector: see classifier.coldstart
    import hashlib
    import json
    from functools import cache
    from pathlib import Path
    from urllib.parse import urlsplit

    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.logging import correlation_paths
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from classifier.api import callers, resolver
    from classifier.aws import s3
    from classifier.errors import ResourceNotFoundError, error_body
    from classifier.settings import get_settings

logger = Logger()
app = resolver.make_resolver(logger)

STATIC_DIR = Path(__file__).resolve().parent / "static"
INDEX = "index.html"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
}
# The page is checked on every load (a deploy shows at once); assets may be reused for 5 minutes,
# then revalidated with their ETag (the file names carry no content hash: no build step).
PAGE_CACHE = "no-cache"
ASSET_CACHE = "public, max-age=300, must-revalidate"


def _read_static() -> dict[str, tuple[str, str, str]]:
    """name -> (text, content type, ETag) for every file under ``static/`` (names like ``app.js``)."""
    files = {}
    for path in sorted(STATIC_DIR.rglob("*")):
        kind = CONTENT_TYPES.get(path.suffix)
        if path.is_file() and kind:
            data = path.read_bytes()
            files[path.relative_to(STATIC_DIR).as_posix()] = (
                data.decode("utf-8"),
                kind,
                '"' + hashlib.sha256(data).hexdigest()[:32] + '"',
            )
    return files


FILES = _read_static()


@cache
def upload_origin() -> str:
    """The origin presigned zip uploads post to, as the training-data function presigns them (the
    same client and bucket): ``https://<bucket>.s3.amazonaws.com`` in AWS, the local S3 endpoint
    under ``make serve``. Signing is local: no call is made. Empty if it cannot be worked out."""
    try:
        url = s3().generate_presigned_post(get_settings().artifacts_bucket, "uploads/console/upload.zip")[
            "url"
        ]
    except Exception:  # noqa: BLE001 (no credentials or no bucket: the page works without zip uploads)
        logger.warning("No upload origin for the Content-Security-Policy", exc_info=True)
        return ""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else ""


def security_headers() -> dict[str, str]:
    connect = " ".join(filter(None, ("'self'", upload_origin())))
    policy = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        f"connect-src {connect}; object-src 'none'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }


def static_response(event: dict) -> dict:
    """The page for ``/``, an asset for ``/console/<name>``; 304 when the browser's copy is current."""
    if event.get("resource") == "/":
        # /dev (the deployed root without its slash) would resolve the page's relative URLs against /
        full_path = (event.get("requestContext") or {}).get("path") or "/"
        if not full_path.endswith("/"):
            return {"statusCode": 301, "headers": {"Location": full_path + "/"}, "body": ""}
        name, cache_control = INDEX, PAGE_CACHE
    else:
        name, cache_control = ((event.get("pathParameters") or {}).get("proxy") or ""), ASSET_CACHE
    found = FILES.get(name)
    if found is None:
        error = ResourceNotFoundError(f"No console file {event.get('path')}.")
        return {
            "statusCode": 404,
            "headers": {"Content-Type": "application/json", **security_headers()},
            "body": json.dumps(error_body(error)),
        }
    text, content_type, etag = found
    headers = {
        "Content-Type": content_type,
        "Cache-Control": cache_control,
        "ETag": etag,
        **security_headers(),
    }
    request_headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    if request_headers.get("if-none-match") == etag:
        return {"statusCode": 304, "headers": headers, "body": ""}
    return {"statusCode": 200, "headers": headers, "body": text}


@app.get("/whoami")
def whoami() -> dict:
    """The caller's key id (what its records name as their owner) and role."""
    caller = callers.caller_of(app.current_event)
    return {"key_id": caller.key_id, "role": str(caller.role)}


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    if event.get("resource") in ("/", "/console/{proxy+}"):
        return static_response(event)
    return app.resolve(event, context)
