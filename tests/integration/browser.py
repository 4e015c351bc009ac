"""The browser the console's tests drive: headless Chromium through Playwright, found from
``CONSOLE_BROWSER`` (``make browser`` writes it, ``make test`` exports it) or the known paths. No
browser is a failure with its reason, never a skip: ``make browser`` installs one."""

import os
import shutil
from pathlib import Path

import pytest

from infra.browser import KNOWN_PATHS, playwright_chromium

# Chromium as the tests run it: no sandbox (root in CI), no GPU, nothing fetched in the background.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def find_browser() -> str:
    named = os.environ.get("CONSOLE_BROWSER", "").strip()
    if named:
        if not (Path(named).is_file() and os.access(named, os.X_OK)):
            pytest.fail(f"CONSOLE_BROWSER={named} is not an executable file: run `make browser`")
        return named
    for candidate in (*KNOWN_PATHS, shutil.which("chromium") or ""):
        if candidate and Path(candidate).is_file():
            return candidate
    found = playwright_chromium()
    if found:
        return found
    pytest.fail(
        "No Chromium for the console's browser tests: neither CONSOLE_BROWSER, nor "
        f"{', '.join(KNOWN_PATHS)}, nor Playwright's download. Run `make browser` "
        "(Playwright's download, else apt-get install chromium as root)."
    )
