"""The web console's function and files, without a browser: the page and its assets with their
types, cache headers and Content-Security-Policy, no path outside the table of files, GET /whoami,
the limits module in step with the template, and nothing in the files that the CSP would block or
that would put a user's string into the page as HTML. (The page in a real browser:
tests/integration/test_console.py.)"""

import json
import re

import pytest

from classifier.api import callers
from functions.console import app
from infra import console_limits
from infra.events import api_event
from infra.template import Route
from tests.unit.conftest import TEMPLATE

STATIC = app.STATIC_DIR


def event(path, resource, proxy=None, headers=(), api_key_id=None):
    route = Route("GET", resource, "ConsoleFunction", resource != "/whoami")
    built = api_event(
        route=route,
        path=path,
        path_parameters={"proxy": proxy} if proxy is not None else None,
        headers=headers,
        stage="dev",
        api_key="a-key" if api_key_id else None,
        api_key_id=api_key_id,
    )
    return built


def header(response, name):
    return {k.lower(): v for k, v in response["headers"].items()}[name.lower()]


def test_the_limits_module_is_what_the_template_and_the_limits_give():
    expected = console_limits.render(TEMPLATE)
    assert console_limits.TARGET.read_text(encoding="utf-8") == expected, (
        "functions/console/static/limits.js is stale: run `python -m infra.console_limits`"
    )
    limits = console_limits.console_limits(TEMPLATE)
    assert limits["routes"]["client"]["POST /predict"]["figure"] == "30 a minute"
    assert limits["routes"]["client"]["POST /predict/batch"]["figure"] == "10 a minute"
    assert limits["routes"]["client"]["POST /training-data"]["figure"] == "5 an hour"
    assert limits["routes"]["operator"]["POST /predict"]["figure"] == "120 a minute"
    assert limits["routes"]["operator"]["GET /models"]["figure"] == "20 a second"
    assert limits["batch_max_images"] == 64 and limits["max_payload_bytes"] == 6 * 1024 * 1024


def test_the_page_is_html_with_the_csp_and_revalidated_on_every_load(aws, lambda_context):
    response = app.lambda_handler(event("/", "/"), lambda_context)

    assert response["statusCode"] == 200
    assert header(response, "content-type") == "text/html; charset=utf-8"
    assert header(response, "cache-control") == "no-cache"
    policy = header(response, "content-security-policy")
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'self'" and directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'" and directives["img-src"] == "'self' data: blob:"
    assert directives["frame-ancestors"] == "'none'" and "unsafe" not in policy
    # the origin presigned zip uploads post to, as the training-data function presigns them
    upload_url = aws.s3.generate_presigned_post(aws.bucket, "uploads/x/upload.zip")["url"]
    origin = re.match(r"https?://[^/]+", upload_url).group(0)
    assert directives["connect-src"] == f"'self' {origin}"
    assert header(response, "x-content-type-options") == "nosniff"


@pytest.mark.parametrize(
    "name, kind",
    [
        ("app.js", "text/javascript; charset=utf-8"),
        ("console.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
        ("limits.js", "text/javascript; charset=utf-8"),
    ],
)
def test_assets_have_their_type_an_etag_and_a_short_cache(aws, lambda_context, name, kind):
    response = app.lambda_handler(event(f"/console/{name}", "/console/{proxy+}", proxy=name), lambda_context)

    assert response["statusCode"] == 200 and header(response, "content-type") == kind
    assert response["body"] == (STATIC / name).read_text(encoding="utf-8")
    assert header(response, "cache-control") == "public, max-age=300, must-revalidate"
    etag = header(response, "etag")
    again = app.lambda_handler(
        event(f"/console/{name}", "/console/{proxy+}", proxy=name, headers=[("If-None-Match", etag)]),
        lambda_context,
    )
    assert again["statusCode"] == 304 and again["body"] == ""


@pytest.mark.parametrize("proxy", ["../app.py", "app.py", "missing.js", "index.html/../../app.py", ""])
def test_only_the_consoles_files_are_served(aws, lambda_context, proxy):
    response = app.lambda_handler(
        event(f"/console/{proxy}", "/console/{proxy+}", proxy=proxy), lambda_context
    )

    assert response["statusCode"] == 404
    assert json.loads(response["body"])["error"]["code"] == "not_found"


def test_the_deployed_root_without_its_slash_goes_to_the_slash(aws, lambda_context):
    request = event("/", "/")
    request["requestContext"]["path"] = "/dev"

    response = app.lambda_handler(request, lambda_context)

    assert response["statusCode"] == 301 and header(response, "location") == "/dev/"


@pytest.mark.parametrize("plans, role", [(["local-operators"], "operator"), (["local-clients"], "client")])
def test_whoami_names_the_key_id_and_its_role(aws, lambda_context, plans, role):
    callers.set_lookup(callers.RoleLookup(lambda key_id: plans, "local-operators"))

    response = app.lambda_handler(event("/whoami", "/whoami", api_key_id="key-1"), lambda_context)

    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"key_id": "key-1", "role": role}


def static_files(suffix):
    return sorted(path for path in STATIC.rglob(f"*{suffix}"))


def test_the_page_has_no_inline_script_style_or_handler_and_loads_nothing_from_elsewhere():
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []  # every script is a file
    assert " style=" not in html and "<style" not in html
    assert re.findall(r"\son[a-z]+=", html) == []
    assert re.findall(r"(?:src|href)=\"(?:https?:)?//", html) == []
    for field, name in (("api-key", "API key"), ("images", "Images")):
        assert re.search(rf'<label[^>]*\bfor="{field}"[^>]*>{name}</label>', html), name
    assert 'capture="environment"' in html and 'role="status"' in html


@pytest.mark.parametrize("path", static_files(".js"), ids=lambda p: p.name)
def test_scripts_insert_text_never_html_and_fetch_only_this_origin(path):
    source = path.read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in source, f"{path.name} uses {sink}"
    assert ".style.cssText" not in source and 'setAttribute("style"' not in source
    assert re.findall(r"""(?:fetch|import)\s*\(\s*["'`]https?:""", source) == []
    assert re.findall(r"""from\s+["']https?:""", source) == []


def test_every_file_the_page_names_is_served():
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    named = set(re.findall(r'(?:src|href)="console/([^"]+)"', html))
    for path in static_files(".js"):
        named |= set(re.findall(r'from "\./([^"]+)"', path.read_text(encoding="utf-8")))
    assert named and named <= set(app.FILES)


def test_make_browser_says_why_when_no_browser_can_be_had(monkeypatch, tmp_path):
    from infra import browser

    monkeypatch.setattr(browser, "existing", lambda: None)
    monkeypatch.setattr(browser, "run", lambda command, timeout: False)  # no CDN
    monkeypatch.setattr(browser.shutil, "which", lambda name: None)  # no apt
    monkeypatch.setattr(browser, "PATH_FILE", tmp_path / "browser-path")

    assert browser.main() == 1
    assert not (tmp_path / "browser-path").exists()
    found, reason = browser.install()
    assert found is None and "playwright install chromium" in reason and "apt-get is not available" in reason


def test_make_browser_writes_the_path_it_found(monkeypatch, tmp_path):
    from infra import browser

    monkeypatch.setattr(browser, "existing", lambda: "/usr/bin/chromium")
    monkeypatch.setattr(browser, "PATH_FILE", tmp_path / "browser-path")

    assert browser.main() == 0
    assert (tmp_path / "browser-path").read_text() == "/usr/bin/chromium\n"
