"""What a GPU run carries (``infra.devdata``), the script it runs there (``infra/train-on-gpu.sh``)
and the plan that script is given (``infra/gpu-plan.sh``)."""

import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from hashlib import sha256

import pytest

from classifier.datasets import load_dataset
from infra import devdata
from tests.conftest import REPO, encode, gradient


def small_zip(path, count=12):
    labels = ["cat", "dog", "ship"]
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("cat/", b"")  # a folder entry, as zip tools write them
        for i in range(count):
            archive.writestr(f"{labels[i % 3]}/{i:04d}.jpg", encode(gradient(32 + i, 32), "JPEG"))
    return path


def test_a_repacked_zip_keeps_every_file_its_bytes_and_its_order(tmp_path):
    source = small_zip(tmp_path / "set.zip")

    packed = devdata.repack(source, tmp_path / "set.tar.gz")
    again = devdata.repack(source, tmp_path / "again.tar.gz")

    with zipfile.ZipFile(source) as archive, tarfile.open(packed) as tar:
        files = [info for info in archive.infolist() if not info.is_dir()]
        members = tar.getmembers()
        assert [m.name for m in members] == [info.filename for info in files]
        assert all(tar.extractfile(m).read() == archive.read(info) for m, info in zip(members, files))
    assert packed.read_bytes() == again.read_bytes()
    assert load_dataset(packed).content_hash() == load_dataset(source).content_hash()
    assert not list(tmp_path.glob("*.partial"))


def test_the_kit_reports_what_travels_and_fails_over_the_cap(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for name in devdata.DATASETS:
        small_zip(data / f"{name}.zip")
    out = tmp_path / "devdata"
    big = tmp_path / "big.bin"
    with open(big, "wb") as handle:  # sparse: costs no disk
        handle.truncate(devdata.TRAVEL_LIMIT_BYTES)

    fits = devdata.main(["--data", str(data), "--out", str(out), "--verify"])
    report = capsys.readouterr().out
    over = devdata.main(["--data", str(data), "--out", str(out), "--carry", str(big)])

    assert fits == 0 and over == 1
    assert {p.name for p in out.iterdir()} == {f"{name}.tar.gz" for name in devdata.DATASETS}
    assert "loads to the zip's arrays: yes" in report and "travels" in report
    assert "over the limit" in capsys.readouterr().err


@pytest.mark.slow
def test_the_gpu_plan_trains_its_teachers_then_students_taught_by_them(tmp_path):
    """The plan a GPU session runs (infra/gpu-plan.sh, through infra/train-on-gpu.sh) as the GPU
    machine runs it, under JAX, here on the CPU and on a few images, one epoch each: three
    teachers side by side (two recipes' conv networks, airbench's whitening network and
    optimizer), then two students taught on augmented, mixed views by the kept wide network and
    the first stage's three runs, calibrated; then the test accuracy of each."""
    train = devdata.repack(small_zip(tmp_path / "train.zip", 24), tmp_path / "train.tar.gz")
    out, runs_dir = tmp_path / "out", tmp_path / "runs"
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "JAX_PLATFORMS": "cpu",
        "PYTHON": sys.executable,
        "DATA": str(train),
        "TEST": str(train),
        "OUT": str(out),
        "RUNS": str(runs_dir),
        "EXTRA": "--epochs 1 --batch-size 8",
        "WHEELS": "",  # this machine's Keras, not the GPU machine's wheels
        "FILE_LIMIT": "6000000",  # between the students' files and the teachers'
    }

    result = subprocess.run(
        ["bash", "infra/gpu-plan.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=900
    )
    too_many = subprocess.run(
        ["bash", "infra/train-on-gpu.sh", *["--epochs 1"] * 4, "--", *["--epochs 1"] * 4],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    runs = [f"run{i}" for i in range(5)]
    assert {p.name for p in out.iterdir()} == {"train.log", *(f"{run}.tar" for run in runs)}
    records = {}
    for run in runs:
        with tarfile.open(out / f"{run}.tar") as tar:
            assert sorted(tar.getnames()) == ["model.keras", "training.json"]
            records[run] = json.load(tar.extractfile("training.json"))
        assert f"runs/{run}/model.keras test accuracy" in result.stdout
    log = (out / "train.log").read_text()
    assert all(f"{run}: exit 0" in log for run in runs) and "backend jax" in log
    # the students were taught by the kept wide network and the very bytes of the first stage's
    # calibrated copies; the second is the shipped network pruned
    teachers = [runs_dir / f"run{i}" / "teacher.keras" for i in range(3)]
    for student in ("run3", "run4"):
        assert records[student]["teacher"] == ",".join(
            ["models/v20261127-baseline/model.keras", *map(str, teachers)]
        )
        assert records[student]["teacher_files"][1:] == [
            {"path": str(path), "sha256": sha256(path.read_bytes()).hexdigest()} for path in teachers
        ]
    assert records["run4"]["hyper_parameters"]["widths"] == [32, 64, 160, 160]
    assert records["run2"]["hyper_parameters"]["optimizer"] == "lookahead"
    # a file the device tool would not return is named in the log
    assert "run0: run0.tar is over 6000000 bytes" in log and "run3: run3.tar is over" not in log
    assert too_many.returncode == 2 and "at most 7 runs" in too_many.stderr


FAKE_PYTHON = """#!/usr/bin/env bash
# stands in for python: `-m classifier train ... --out DIR ...` leaves a model and a record in DIR
if [ "$1" = "-m" ]; then
  prev=; for arg in "$@"; do [ "$prev" = "--out" ] && out=$arg; prev=$arg; done
  mkdir -p "$out" && echo model > "$out/model.keras" && echo '{}' > "$out/training.json"
  echo "train $*"
else
  cat > /dev/null
fi
"""


def _script(tmp_path, *runs, **env):
    python = tmp_path / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    result = subprocess.run(
        ["bash", "infra/train-on-gpu.sh", *runs],
        cwd=REPO,
        env={
            **os.environ,
            "PYTHON": str(python),
            "OUT": str(tmp_path / "out"),
            "RUNS": str(tmp_path / "runs"),
            "WHEELS": "",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result, (tmp_path / "out" / "train.log").read_text()


@pytest.mark.parametrize(
    "deadline, budget, stop",
    [
        ("", 200, 350),  # the run's own budget; stopped SLACK later
        ("1000", 200, 350),  # a deadline far off changes nothing
        ("380", 200, 340),  # the budget fits; stopped FINISH before the deadline
        ("300", 150, 260),  # what is left less SLACK
    ],
)
def test_a_runs_budget_and_stop_fit_its_own_flags_and_the_deadline(tmp_path, deadline, budget, stop):
    result, log = _script(
        tmp_path, "--epochs 3 --budget-seconds 200", BUDGET="300", SLACK="150", FINISH="40", DEADLINE=deadline
    )

    assert result.returncode == 0, result.stderr
    # the last --budget-seconds is the one argparse keeps; a second may pass before the launch
    given = int(re.findall(r"--budget-seconds (\d+)", re.search(r"^train .*$", log, re.M)[0])[-1])
    stopped = int(re.search(r"run0: stopped if still going after (\d+) s", log)[1])
    assert budget - 2 <= given <= budget and stop - 2 <= stopped <= stop
    assert "run0: exit 0" in log and (tmp_path / "out" / "run0.tar").exists()


def test_a_run_with_no_time_left_before_the_deadline_is_skipped_and_the_script_fails(tmp_path):
    result, log = _script(
        tmp_path, "--epochs 3", "--", "--epochs 3", BUDGET="100", SLACK="150", DEADLINE="120"
    )

    assert result.returncode != 0
    assert "run0: skipped" in log and "run1: skipped" in log
    assert not (tmp_path / "out" / "run0.tar").exists()
