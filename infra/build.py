"""The layer and function builds for the Python running this code.

The same makefiles ``sam build`` runs (BuildMethod: makefile), with the layer's wheels for this
interpreter's version instead of Lambda's 3.12, so that a handler can run from the build output alone
in a fresh process, the way Lambda mounts it: the function at ``/var/task``, the layer's ``python/``
at ``/opt/python``. Used by ``tests/packaging`` and ``bench/handlers``.
"""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"


def _make(folder: Path, target: str, *variables: str) -> None:
    command = ["make", "-C", str(folder), target, *variables]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")


def build_layer(destination: Path) -> Path:
    """Build the ClassifierLayer into ``destination``; returns its ``python/`` (Lambda's /opt/python)."""
    _make(
        REPO / "layers" / "classifier",
        "build-ClassifierLayer",
        f"ARTIFACTS_DIR={destination}",
        f"PYTHON_VERSION={PYTHON_VERSION}",
        f"PYTHON={sys.executable}",
    )
    return destination / "python"


def build_function(logical_id: str, code_dir: Path, destination: Path) -> Path:
    """Build the zip function ``logical_id`` from ``code_dir`` into ``destination`` (Lambda's /var/task)."""
    _make(code_dir, f"build-{logical_id}", f"ARTIFACTS_DIR={destination}")
    return destination
