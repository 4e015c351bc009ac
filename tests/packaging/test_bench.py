"""`make bench`'s handler benchmark still runs: it builds the layer and measures from the build output."""

import re
import subprocess
import sys

import pytest

from tests.unit.conftest import REPO

pytestmark = [pytest.mark.build, pytest.mark.slow]


def test_the_handler_benchmark_prints_its_figures_for_both_stores(capsys):
    # when the handler benchmark runs in its quick mode
    result = subprocess.run(
        [sys.executable, "-m", "bench.handlers", "--quick", "--no-keras"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )

    # then it prints a cold start (also after a SnapStart restore) and a warm figure, in milliseconds,
    # for each store
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("handler latency"))
    assert "litert" in header and "instant store" in header
    cold = next(line for line in lines if line.startswith("cold start"))
    restored = next(line for line in lines if line.startswith("cold start after a SnapStart restore"))
    warm = next(line for line in lines if line.startswith("warm: 1 image"))
    assert len(re.findall(r"\b\d+\b", cold.split(")", 1)[1])) == 2
    assert len(re.findall(r"\b\d+\b", restored.split(")", 1)[1])) == 2
    assert len(re.findall(r"\d+\.\d, \d+\.\d", warm)) == 2
    with capsys.disabled():
        print("\n" + "\n".join(lines[lines.index(header) : lines.index(header) + 7]))
