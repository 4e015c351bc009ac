"""The web console in a real browser (headless Chromium through Playwright) against the local API
with the real template, a client key and an operator key, and a small bootstrap of the base data:
classify one image and a batch, errors in words, the history, feedback (where the route exists),
user text shown as text, a client sees no operator controls, and an operator uploads training
data, retrains, and promotes and rolls back a model. Screenshots of every panel, at phone and
desktop widths, go to build/screenshots/ (or SCREENSHOTS_DIR)."""

import io
import os
import re
import zipfile
from pathlib import Path

import pytest
import requests
from PIL import Image
from playwright import sync_api as playwright_api  # requirements/dev.txt: a missing one fails, never skips

from tests.conftest import REPO, sample_zip
from tests.integration.browser import CHROMIUM_FLAGS, find_browser
from tests.integration.conftest import base_datasets

pytestmark = [pytest.mark.integration, pytest.mark.slow]

expect = playwright_api.expect

OPERATOR = "console-operator"
CLIENTS = [f"console-client-{i}" for i in range(8)]  # each test its own key: its own token buckets
PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 900}
SCREENSHOTS = Path(os.environ.get("SCREENSHOTS_DIR", REPO / "build" / "screenshots"))
XSS_NAME = "<img src=x onerror=alert(1)>.png"


@pytest.fixture(scope="module")
def api(start_local_api, test_zip, tmp_path_factory, from_repo):
    data = base_datasets(tmp_path_factory.mktemp("base"), test_zip)  # 500 test images
    return start_local_api(
        REPO / "template.yaml",
        operator_api_key=OPERATOR,
        api_key=CLIENTS[0],
        extra_api_keys=tuple(CLIENTS[1:]),
        parameters={"ModelRefreshSeconds": "0"},
        bootstrap_data=data,
        s3_poll_interval_s=0.3,
    )


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    executable = find_browser()
    with playwright_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path_factory.mktemp("chromium-profile"),  # a fresh user-data dir
            executable_path=executable,
            args=CHROMIUM_FLAGS,
            headless=True,
            viewport=DESKTOP,
        )
        yield context
        context.close()


@pytest.fixture
def page(browser):
    page = browser.new_page()
    page.dialogs = []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.console_errors = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    page.on("pageerror", lambda error: page.console_errors.append(str(error)))
    yield page
    page.close()


def sign_in(page, api, key):
    page.goto(f"{api.url}/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Use key").click()
    expect(page.locator("#who")).to_contain_text("key", timeout=15_000)
    expect(page.get_by_role("button", name="Classify")).to_be_visible()


def shoot(page, name):
    """The page at phone and desktop widths, as build/screenshots/<name>-{phone,desktop}.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width, size in (("phone", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(size)
        page.wait_for_timeout(150)
        page.screenshot(path=SCREENSHOTS / f"{name}-{width}.png", full_page=True)
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        wide = page.evaluate(
            "w => [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > w)"
            ".slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className)",
            size["width"],
        )
        assert overflow <= 0, f"{name} is {overflow} px wider than a {size['width']} px screen: {wide}"
    page.set_viewport_size(DESKTOP)


def image_file(test_zip, member, name=None):
    with zipfile.ZipFile(test_zip) as archive:
        data = archive.read(member)
    return {"name": name or member.replace("/", "-"), "mimeType": "image/jpeg", "buffer": data}


def png(seed=0):
    buffer = io.BytesIO()
    Image.effect_noise((32, 32), 40 + seed).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


def has_route(api, method, path) -> bool:
    return any(r.method == method and r.path == path for r in api.template.routes)


# --- the page and its assets -----------------------------------------------------------------


def test_the_page_and_its_assets_need_no_key_and_carry_the_csp(api):
    page = requests.get(f"{api.url}/", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy and "unsafe-inline" not in policy
    upload = requests.post(
        f"{api.url}/training-data", json={"upload": True}, headers={"x-api-key": OPERATOR}, timeout=30
    ).json()
    origin = re.match(r"https?://[^/]+", upload["url"]).group(0)
    assert origin in policy.split("connect-src", 1)[1].split(";", 1)[0]  # the presigned zip upload's origin
    script = requests.get(f"{api.url}/console/app.js", timeout=30)
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    again = requests.get(
        f"{api.url}/console/app.js", headers={"if-none-match": script.headers["etag"]}, timeout=30
    )
    assert again.status_code == 304
    assert requests.get(f"{api.url}/console/../app.py", timeout=30).status_code == 404
    assert requests.get(f"{api.url}/whoami", timeout=30).status_code == 403  # the role needs a key
    assert (
        requests.get(f"{api.url}/whoami", headers={"x-api-key": OPERATOR}, timeout=30).json()["role"]
        == "operator"
    )


# --- a client ----------------------------------------------------------------------------------


def test_a_client_classifies_a_dog_and_sees_ten_bars(page, api, test_zip):
    sign_in(page, api, CLIENTS[1])
    page.get_by_label("Images", exact=True).set_input_files(image_file(test_zip, "dog/0000.jpg", "dog.jpg"))
    expect(page.get_by_role("status")).to_contain_text("dog", timeout=20_000)
    expect(page.locator("#single-result .label")).to_have_text("dog")
    expect(page.locator("#single-result rect.bar")).to_have_count(10)
    expect(page.locator("#single-result .meta")).to_contain_text("Model v")
    shoot(page, "classify")
    assert not page.dialogs and not page.console_errors


FOCUSED = """() => {
  const e = document.activeElement;
  // a visually hidden file input shows its focus on the label styled as its button
  const shown = e.classList.contains("file") ? e.nextElementSibling : e;
  const style = getComputedStyle(shown);
  return {
    id: e.id, tag: e.tagName, text: (e.textContent || e.getAttribute("aria-label") || "").trim(),
    ring: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2,
    visible: shown.getBoundingClientRect().width > 0,
  };
}"""


def tab_to(page, predicate, limit=60):
    """Press Tab until the focused element matches ``predicate``; every stop on the way must show a
    focus ring. The stops, in order."""
    stops = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        stops.append(focused)
        assert focused["tag"] == "BODY" or (focused["ring"] and focused["visible"]), (
            f"the keyboard focus is on {focused} with no visible ring"
        )
        if predicate(focused):
            return stops
    raise AssertionError(f"never reached by Tab: {[s['id'] or s['text'] for s in stops]}")


def test_a_keyboard_alone_signs_in_switches_panels_and_classifies(page, api, test_zip):
    # given the page, and a person who uses only the keyboard
    page.goto(f"{api.url}/")

    # the key: typed into the field Tab reaches, sent with Enter
    tab_to(page, lambda f: f["id"] == "api-key")
    page.keyboard.type(CLIENTS[7])
    page.keyboard.press("Enter")
    expect(page.locator("#who")).to_contain_text("Client key", timeout=15_000)

    # a panel: its tab reached by Tab and opened with Enter, then back with Space
    tab_to(page, lambda f: f["tag"] == "BUTTON" and f["text"] == "History")
    page.keyboard.press("Enter")
    expect(page.locator("#panel-history")).to_be_visible()
    page.keyboard.press("Shift+Tab")
    assert page.evaluate(FOCUSED)["text"] == "Classify"
    page.keyboard.press("Space")
    expect(page.locator("#panel-classify")).to_be_visible()

    # an image: the picker reached by Tab and opened with Space
    stops = tab_to(page, lambda f: f["id"] == "images")
    assert stops[-1]["ring"]
    page.screenshot(path=SCREENSHOTS / "keyboard-focus-desktop.png")
    # the OS file dialog Space opens is not part of the page: the focused input gets the file
    page.locator("#images:focus").set_input_files(image_file(test_zip, "dog/0000.jpg", "dog.jpg"))
    expect(page.get_by_role("status")).to_contain_text("dog", timeout=20_000)
    expect(page.locator("#single-result rect.bar")).to_have_count(10)
    assert not page.dialogs and not page.console_errors


def test_a_text_file_gets_a_readable_error(page, api):
    sign_in(page, api, CLIENTS[2])
    page.get_by_label("Images", exact=True).set_input_files(
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not an image at all"}
    )
    error = page.locator("#classify-error")
    expect(error).to_contain_text("notes.txt: ", timeout=20_000)
    expect(error).to_contain_text("not an image")


def test_a_batch_of_three_fills_the_grid_and_the_history_shows_them(page, api, test_zip):
    sign_in(page, api, CLIENTS[3])
    files = [image_file(test_zip, f"{label}/0001.jpg", f"{label}.jpg") for label in ("cat", "ship", "truck")]
    page.get_by_label("Images", exact=True).set_input_files(files)
    expect(page.locator("#batch-grid .card")).to_have_count(3, timeout=30_000)
    expect(page.get_by_role("status")).to_contain_text("3 images classified")
    expect(page.locator("#batch-progress")).to_have_attribute("value", "3")
    shoot(page, "batch")

    page.get_by_role("button", name="History").click()
    expect(page.locator("#history-list .record")).to_have_count(3, timeout=15_000)
    names = page.locator("#history-list .record .name").all_inner_texts()
    assert {n.strip(" ·") for n in names} == {"cat.jpg", "ship.jpg", "truck.jpg"}
    if has_route(api, "POST", "/predictions/{prediction_id}/feedback"):
        expect(page.locator("#history-list img.thumb")).to_have_count(3)  # kept model inputs
    shoot(page, "history")


def test_an_image_named_like_html_is_shown_as_text(page, api):
    sign_in(page, api, CLIENTS[4])
    page.get_by_label("Images", exact=True).set_input_files(
        {"name": XSS_NAME, "mimeType": "image/png", "buffer": png()}
    )
    expect(page.get_by_role("status")).to_contain_text(XSS_NAME, timeout=20_000)
    expect(page.locator("#single-result .name")).to_have_text(XSS_NAME)
    page.get_by_role("button", name="History").click()
    expect(page.locator("#history-list .record .name").first).to_contain_text(XSS_NAME, timeout=15_000)
    page.wait_for_timeout(300)
    assert page.locator("img[src='x']").count() == 0
    assert page.dialogs == []


def test_a_client_sees_no_operator_controls(page, api):
    sign_in(page, api, CLIENTS[5])
    expect(page.locator("#who")).to_contain_text("Client key")
    for name in ("Training data", "Retrain", "Monitoring"):
        expect(page.get_by_role("button", name=name)).to_have_count(0)
    page.get_by_role("button", name="Models").click()
    expect(page.locator("#models-table tbody tr")).not_to_have_count(0, timeout=15_000)
    expect(
        page.locator("#models-table").get_by_role("button", name=re.compile("Promote|Roll back"))
    ).to_have_count(0)
    page.goto(f"{api.url}/#retrain")  # a link to an operator panel shows the first allowed one
    expect(page.locator("#panel-retrain")).to_be_hidden()
    expect(page.locator("#panel-classify")).to_be_visible()


def test_a_wrong_key_is_said_in_words(page, api):
    sign_in_attempt = page.goto(f"{api.url}/")
    assert sign_in_attempt.ok
    page.get_by_label("API key").fill("not-a-key")
    page.get_by_role("button", name="Use key").click()
    expect(page.locator("#who")).to_contain_text("The API key is wrong", timeout=15_000)
    expect(page.get_by_role("button", name="Classify")).to_be_hidden()


def test_feedback_is_recorded_or_said_to_be_unavailable(page, api, test_zip):
    sign_in(page, api, CLIENTS[6])
    page.get_by_label("Images", exact=True).set_input_files(image_file(test_zip, "dog/0002.jpg", "dog2.jpg"))
    expect(page.get_by_role("status")).to_contain_text("dog2.jpg", timeout=20_000)
    page.locator("#single-result").get_by_role("button", name="Right").click()
    status = page.locator("#single-result .feedback-status")
    if has_route(api, "POST", "/predictions/{prediction_id}/feedback"):
        expect(status).to_contain_text("next retraining", timeout=15_000)
        page.get_by_role("button", name="History").click()
        page.get_by_label("corrected").check()
        page.get_by_role("button", name="Show").click()
        expect(page.locator("#history-list .record")).to_have_count(1, timeout=15_000)
    else:
        expect(status).to_have_text("Feedback is not available on this server.", timeout=15_000)


# --- an operator -------------------------------------------------------------------------------


def test_an_operator_uploads_retrains_promotes_and_rolls_back(page, api, test_zip):
    sign_in(page, api, OPERATOR)
    expect(page.locator("#who")).to_contain_text("Operator key")

    # training data: labelled images, then a zip through the presigned upload (XHR straight to S3)
    page.get_by_role("button", name="Training data").click()
    expect(page.locator("#training-counts tbody tr")).to_have_count(10, timeout=15_000)
    page.get_by_label("True class").select_option("cat")
    page.get_by_label("Training images").set_input_files(
        [image_file(test_zip, f"cat/{i:04d}.jpg") for i in range(3)]
        + [{"name": "broken.png", "mimeType": "image/png", "buffer": b"\x89PNG broken"}]
    )
    page.get_by_role("button", name="Upload images").click()
    expect(page.locator("#training-result")).to_contain_text("3 accepted", timeout=20_000)
    expect(page.locator("#training-result .reasons")).to_contain_text("broken.png")
    archive = sample_zip(test_zip, every=250, offset=13)  # 20 images, two per class
    page.get_by_label("Zip of class folders").set_input_files(
        {"name": "set.zip", "mimeType": "application/zip", "buffer": archive}
    )
    page.get_by_role("button", name="Upload zip").click()
    expect(page.locator("#zip-report")).to_contain_text("20 accepted", timeout=60_000)
    expect(page.locator("#zip-progress")).to_have_attribute("value", "1")
    shoot(page, "training")

    # a tiny retraining job: the progress bar reaches its end, and the gate's verdict in words
    page.get_by_role("button", name="Retrain").click()
    page.get_by_label("Epochs").fill("1")
    page.get_by_label("Base images to sample").fill("100")
    page.get_by_role("button", name="Start retraining").click()
    verdict = page.locator("#retrain-verdict")
    expect(verdict).to_contain_text("The gate", timeout=240_000)
    progress = page.locator("#retrain-progress")
    assert progress.get_attribute("value") == progress.get_attribute("max") == "1"
    expect(page.locator("#retrain-curve circle")).not_to_have_count(0)
    shoot(page, "retrain")
    version = re.search(r"version (v\S+)", verdict.inner_text()).group(1)

    # the models: the new version's card; then promote or roll back, each with its confirmation
    page.get_by_role("button", name="Models").click()
    row = page.locator(f"#models-table tr[data-version='{version}']")
    expect(row).to_be_visible(timeout=15_000)
    row.get_by_role("button", name=f"Details of {version}").click()
    expect(page.locator("#model-card rect.cell")).to_have_count(100, timeout=15_000)
    shoot(page, "models")
    baseline = requests.get(f"{api.url}/models", headers={"x-api-key": OPERATOR}, timeout=30).json()
    serving = baseline["current_version"]
    other = next(v["version"] for v in baseline["versions"] if v["version"] != serving)
    action = page.locator(f"#models-table tr[data-version='{other}'] .actions button").nth(1)
    action.click()
    dialog = page.locator("#confirm")
    expect(dialog).to_be_visible()
    if page.locator("#confirm-extra").is_visible():  # a rejected version: the extra confirmation
        expect(page.locator("#confirm-ok")).to_be_disabled()
        page.locator("#confirm-force").check()
    page.locator("#confirm-ok").click()
    expect(page.locator("#models-message")).to_contain_text(f"{other} serves now", timeout=15_000)
    back = page.locator(f"#models-table tr[data-version='{serving}'] .actions button").nth(1)
    back.click()
    if page.locator("#confirm-extra").is_visible():
        page.locator("#confirm-force").check()
    page.locator("#confirm-ok").click()
    expect(page.locator("#models-message")).to_contain_text(f"{serving} serves now", timeout=15_000)
    assert (
        requests.get(f"{api.url}/models", headers={"x-api-key": OPERATOR}, timeout=30).json()[
            "current_version"
        ]
        == serving
    )

    # monitoring: the window's figures
    page.get_by_role("button", name="Monitoring").click()
    expect(page.locator("#monitoring-report")).to_contain_text("predictions", timeout=15_000)
    shoot(page, "monitoring")
    assert not page.dialogs and not page.console_errors, page.console_errors
