"""A few seconds of `make loadtest` (locust against a local API it starts): every answer is its own
request's, and nothing fails with a 5xx or goes unanswered. No figure is asserted: speed is the
benchmark's, `make loadtest` prints it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def test_a_short_load_gets_every_request_its_own_answer_and_no_5xx(tmp_path):
    summary = tmp_path / "summary.json"
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "layers" / "classifier"), str(REPO)]),
    }
    command = [sys.executable, "-m", "bench.loadtest", "--users", "4", "--seconds", "5", "--requests", "1000"]
    command += ["--summary-json", str(summary), "--server-log", str(tmp_path / "local-api.log")]

    done = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=180)

    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(summary.read_text())
    assert figures["mismatches"] == 0, figures["mismatch_samples"]
    statuses = figures["routes"]["total"]["statuses"]
    assert not [code for code in statuses if code == "0" or code.startswith("5")], statuses
    for route in ("POST /predict", "GET /predictions/{id}"):  # both kinds of request were made and checked
        assert figures["routes"][route]["statuses"].get("200"), figures["routes"]
