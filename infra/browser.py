"""``make browser``: a Chromium for the console's browser tests, without manual steps.

Tries, in order: a Chromium already named by ``CONSOLE_BROWSER`` or at a known path; Playwright's
own download (``playwright install chromium``, which needs its CDN); the operating system's package
(``apt-get install -y chromium``, when running as root with apt). Says what it did, writes the
browser's path to ``build/browser-path`` (the Makefile exports it as ``CONSOLE_BROWSER`` to the
tests), and exits non-zero with the reason when none worked: the browser tests then fail with that
reason rather than being skipped."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

# Where an OS package puts Chromium (Debian's chromium, Ubuntu's chromium-browser, Google's build).
KNOWN_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
REPO = Path(__file__).resolve().parents[1]
PATH_FILE = REPO / "build" / "browser-path"
DOWNLOAD_TIMEOUT_S = 300


def playwright_chromium() -> str | None:
    """Playwright's own download (``playwright install chromium``), if it is there."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    with sync_playwright() as playwright:
        path = playwright.chromium.executable_path
    return path if path and Path(path).is_file() else None


def existing() -> str | None:
    named = os.environ.get("CONSOLE_BROWSER", "").strip()
    if named and Path(named).is_file():
        return named
    for candidate in KNOWN_PATHS:
        if Path(candidate).is_file():
            return candidate
    return playwright_chromium()


def run(command: list[str], timeout: float) -> bool:
    print("make browser: running", " ".join(command), flush=True)
    try:
        return subprocess.run(command, timeout=timeout, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired) as error:
        print(f"make browser: {command[0]} failed: {error}", flush=True)
        return False


def install() -> tuple[str | None, str]:
    found = existing()
    if found:
        return found, f"found {found}"
    playwright = Path(sys.executable).with_name("playwright")
    if playwright.is_file() and run([str(playwright), "install", "chromium"], DOWNLOAD_TIMEOUT_S):
        found = playwright_chromium()
        if found:
            return found, f"downloaded Playwright's Chromium to {found}"
    reasons = ["Playwright's download (playwright install chromium) failed or is not installed"]
    apt = shutil.which("apt-get")
    if apt and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        update = subprocess.run([apt, "update", "-qq"], env=env, check=False).returncode == 0
        if (
            update
            and subprocess.run([apt, "install", "-y", "-qq", "chromium"], env=env, check=False).returncode
            == 0
        ):
            found = existing()
            if found:
                return found, f"installed the operating system's package: {found} (apt-get install chromium)"
        reasons.append("apt-get install chromium failed")
    else:
        reasons.append(
            "apt-get is not available" if not apt else "not root, so apt-get cannot install chromium"
        )
    return None, "; ".join(reasons)


def main() -> int:
    found, what = install()
    PATH_FILE.parent.mkdir(parents=True, exist_ok=True)
    if found is None:
        PATH_FILE.unlink(missing_ok=True)
        print(f"make browser: no Chromium for the browser tests: {what}", file=sys.stderr)
        return 1
    PATH_FILE.write_text(found + "\n", encoding="utf-8")
    print(f"make browser: {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
