"""`make bench`'s batch job benchmark still runs: a small job with 1 and 2 workers, and the costs."""

import json
import os
import subprocess
import sys

import pytest

from tests.unit.conftest import REPO

pytestmark = [pytest.mark.build, pytest.mark.slow]


def test_the_job_benchmark_prints_throughput_and_costs():
    result = subprocess.run(
        [sys.executable, "-m", "bench.jobs", "--quick", "--images", "300"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": f"{REPO / 'layers' / 'classifier'}:{REPO}"},
    )

    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.splitlines()[-1])
    assert [(row["workers"], row["status"]) for row in figures["rows"]] == [
        (1, "succeeded"),
        (2, "succeeded"),
    ]
    assert 0 < sum(figures["cost"]["job"].values()) < sum(figures["cost"]["predict"].values())
