"""Training: augmentation, schedule, a tiny end-to-end run to a .tflite and card, and a killed
run that resumes and ends where an uninterrupted run ends."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import REPO

TINY = ["--widths", "8,16,16,16", "--batch-size", "64", "--limit", "320"]


def cli_env():
    """The environment `python -m classifier` runs in, as the Makefile sets it up."""
    return {
        **os.environ,
        "KERAS_BACKEND": "tensorflow",
        "TF_DETERMINISTIC_OPS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PYTHONPATH": f"{REPO / 'layers' / 'classifier'}",
    }


def run_train(data, out, *extra, wait=True):
    env = cli_env()
    command = [
        sys.executable,
        "-m",
        "classifier",
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        *TINY,
        *extra,
    ]
    if wait:
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_augment_is_a_pure_function_of_seed_and_epoch():
    from classifier.training.trainer import augment

    images = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)

    first, again, other = (
        augment(images, 0, 3, 4, 8),
        augment(images, 0, 3, 4, 8),
        augment(images, 0, 4, 4, 8),
    )

    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert first.dtype == np.uint8 and first.shape == images.shape


def test_augment_flips_and_shifts_whole_images():
    from classifier.training.trainer import augment

    image = np.zeros((1, 32, 32, 3), dtype=np.uint8)
    image[0, :, :8] = 255  # a bright band on the left
    flipped_or_not = [augment(image, seed, 0, 0)[0] for seed in range(20)]

    lefts = {bool(a[:, 0].mean() > 128) for a in flipped_or_not}
    assert lefts == {True, False}  # some flipped, some not
    for a in flipped_or_not:
        assert a.sum() == image.sum()  # a flip moves pixels, it never invents or drops any


def test_one_cycle_schedule_rises_then_falls_to_zero():
    from classifier.training.trainer import OneCycle

    schedule = OneCycle(peak=0.4, total_steps=100, warmup_steps=20)
    values = [float(schedule(step)) for step in (0, 10, 20, 60, 100)]

    assert values[0] == 0.0 and values[1] == pytest.approx(0.2) and values[2] == pytest.approx(0.4)
    assert values[3] == pytest.approx(0.2) and values[4] == pytest.approx(0.0)


def test_one_cycle_schedule_can_start_and_end_above_zero():
    from classifier.training.trainer import HyperParameters, OneCycle

    hp = HyperParameters.airbench()
    schedule = OneCycle(1.5, 100, 23, final_fraction=hp.final_learning_rate_fraction, initial_fraction=0.2)
    values = [float(schedule(step)) for step in (0, 23, 100, 120)]

    assert values == pytest.approx([0.3, 1.5, 1.5 * 0.07, 1.5 * 0.07])


def test_time_budget_sizes_the_number_of_epochs():
    from classifier.training.trainer import HyperParameters, plan_epochs

    hp = HyperParameters(epochs=50)

    assert plan_epochs(hp, seconds_per_epoch=10, budget_seconds=None) == 50
    assert plan_epochs(hp, seconds_per_epoch=10, budget_seconds=120) == 10  # 15% overhead margin
    assert plan_epochs(hp, seconds_per_epoch=10, budget_seconds=5) == 1
    assert plan_epochs(hp, seconds_per_epoch=0.1, budget_seconds=1e6) == 50


@pytest.mark.slow
def test_tiny_training_run_exports_a_loadable_tflite_and_card(tmp_path, test_zip):
    from classifier.litert import TFLiteModel

    trained = run_train(test_zip, tmp_path, "--epochs", "2")
    assert trained.returncode == 0, trained.stderr
    assert "epoch 2/2" in trained.stderr and "seconds" not in trained.stdout

    exported = subprocess.run(
        [
            sys.executable,
            "-m",
            "classifier",
            "export",
            "--model",
            str(tmp_path / "model.keras"),
            "--out",
            str(tmp_path),
            "--test-data",
            str(test_zip),
            "--version",
            "v-test",
        ],
        env={**os.environ, "PYTHONPATH": str(REPO / "layers" / "classifier"), "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert exported.returncode == 0, exported.stderr

    card = json.loads((tmp_path / "card.json").read_text())
    model = TFLiteModel.from_path(tmp_path / "model.tflite")
    assert card["version"] == "v-test" and card["sha256"] == model.sha256
    assert card["training_data"]["images"] == 320 and card["hyper_parameters"]["widths"] == [8, 16, 16, 16]
    assert set(card["per_class"]) == set(card["labels"]) and len(card["confusion_matrix"]) == 10
    assert 0.0 <= card["accuracy"] <= 1.0 and card["runtime_versions"]["tensorflow"]
    assert model.predict(np.zeros((2, 32, 32, 3), np.uint8)).shape == (2, 10)


@pytest.mark.slow
@pytest.mark.parametrize(
    "recipe",
    [[], ["--recipe", "airbench", "--widths", "24,16,16,16"]],
    ids=["sgd", "airbench"],  # the airbench optimizer's momentum and lookahead copies are saved too
)
def test_a_killed_run_resumes_and_ends_where_an_uninterrupted_run_ends(tmp_path, test_zip, recipe):
    import keras

    epochs = ["--epochs", "4", *recipe]
    reference = run_train(test_zip, tmp_path / "reference", *epochs)
    assert reference.returncode == 0, reference.stderr

    victim = run_train(test_zip, tmp_path / "killed", *epochs, wait=False)
    state = tmp_path / "killed" / "checkpoints" / "state.json"
    deadline = time.time() + 300
    while not (state.exists() and json.loads(state.read_text())["epochs_done"] >= 1):
        assert victim.poll() is None, victim.stderr.read()
        assert time.time() < deadline, "no checkpoint within 300 s"
        time.sleep(0.2)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "killed" / "model.keras").exists()

    resumed = run_train(test_zip, tmp_path / "killed", *epochs)
    assert resumed.returncode == 0, resumed.stderr
    first_resumed_epoch = json.loads(state.read_text())["epochs_done"]
    assert "epoch 1/4" not in resumed.stderr and "epoch 4/4" in resumed.stderr and first_resumed_epoch == 4

    expected = keras.models.load_model(tmp_path / "reference" / "model.keras").get_weights()
    actual = keras.models.load_model(tmp_path / "killed" / "model.keras").get_weights()
    for want, got in zip(expected, actual, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_fine_tuning_keeps_the_init_models_widths(tmp_path):
    # given a model narrower than the defaults (as the shipped one may be) and default hyper-parameters
    from classifier.training.network import DEFAULT_WIDTHS, make_model
    from classifier.training.network import widths_of
    from classifier.training.trainer import HyperParameters, train

    init = make_model((8, 16, 16, 16))
    assert widths_of(init) != DEFAULT_WIDTHS
    images = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)

    result = train(
        images,
        np.arange(64) % 10,
        tmp_path,
        HyperParameters.finetune(epochs=1, batch_size=32),
        init_model=init,
    )

    # then training starts from its weights instead of failing on a shape mismatch
    assert result.finished and widths_of(result.model) == (8, 16, 16, 16)
    assert result.hyper_parameters.widths == (8, 16, 16, 16)


def test_the_checkpoint_of_a_run_in_progress_can_be_evaluated_from_the_command_line(tmp_path, test_zip):
    # given the checkpoint a run leaves after an epoch (its optimizer and schedule saved with it)
    from classifier.training.trainer import HyperParameters, train

    images = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    train(
        images, np.arange(64) % 10, tmp_path, HyperParameters(epochs=1, batch_size=32, widths=(8, 16, 16, 16))
    )
    (checkpoint,) = tmp_path.glob("epoch-*.keras")

    # when a person checks its progress in another process, as `make evaluate MODEL=...` does
    command = [
        sys.executable,
        "-m",
        "classifier",
        "evaluate",
        "--model",
        str(checkpoint),
        "--data",
        str(test_zip),
    ]
    evaluated = subprocess.run(command, env=cli_env(), capture_output=True, text=True, timeout=600)

    # then it prints the test report instead of failing on the saved schedule
    assert evaluated.returncode == 0, evaluated.stderr
    assert "images            5000" in evaluated.stdout and "per class:" in evaluated.stdout
