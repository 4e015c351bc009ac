"""Channel pruning and distillation: how the shipped baseline was made small enough for its
latency budget. A pruned network keeps the channels that carry the function; distillation mixes
the teacher's probabilities into the targets; the CLI does both in one resumable run."""

import hashlib
import json

import numpy as np
import pytest

from tests.unit.test_training import run_train

WIDTHS = (8, 16, 16, 16)


def _images(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)


def _model_with_live_statistics(widths=WIDTHS, seed=0):
    """A random model whose batch norms have non-trivial statistics (so channels differ)."""
    import keras

    from classifier.training.network import make_model

    keras.utils.set_random_seed(seed)
    model = make_model(widths)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.name.endswith("_bn"):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape).astype("float32"),
                    rng.normal(0, 0.3, beta.shape).astype("float32"),
                    rng.normal(0, 0.1, mean.shape).astype("float32"),
                    rng.uniform(0.5, 2.0, variance.shape).astype("float32"),
                ]
            )
    return model


def _kill_channels(model, dead: dict[str, np.ndarray]) -> None:
    """Zero the weights that read each named conv's ``dead`` channels (in the next conv or the head)."""
    import keras

    from classifier.training.pruning import conv_layer_names

    convs = conv_layer_names(model)
    for name, channels in dead.items():
        position = convs.index(name)
        reader = (
            model.get_layer(convs[position + 1]) if position + 1 < len(convs) else model.get_layer("logits")
        )
        kernel = np.array(keras.ops.convert_to_numpy(reader.kernel))
        kernel[..., channels, :] = 0.0
        reader.kernel.assign(kernel)


def test_pruning_to_the_same_widths_keeps_the_network_exactly():
    from classifier.training.pruning import prune_channels

    model = _model_with_live_statistics()
    images = _images(64)

    pruned = prune_channels(model, WIDTHS, images)

    np.testing.assert_allclose(pruned.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)


def test_pruning_drops_the_channels_nothing_reads_and_keeps_the_function():
    from classifier.training.pruning import prune_channels

    model = _model_with_live_statistics()
    # half of block 2's and block 3's channels are read by nothing downstream
    dead = {
        name: np.arange(1, 16, 2) for name in ("block2a_conv", "block2b_conv", "block3a_conv", "block3b_conv")
    }
    _kill_channels(model, dead)
    images = _images(64)

    pruned = prune_channels(model, (8, 16, 8, 8), images)

    assert pruned.get_layer("block2a_conv").filters == 8 and pruned.get_layer("logits").kernel.shape == (
        8,
        10,
    )
    np.testing.assert_allclose(pruned.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-5)
    assert pruned.count_params() < model.count_params()


def test_pruning_refuses_to_widen():
    from classifier.training.pruning import prune_channels

    with pytest.raises(ValueError, match="at most the original"):
        prune_channels(_model_with_live_statistics(), (8, 16, 32, 16), _images(8))


def test_distillation_mixes_the_teachers_probabilities_into_the_targets():
    from classifier.training.trainer import HyperParameters, epoch_data

    labels = np.arange(20) % 10
    teacher = np.full((20, 10), 0.1, dtype=np.float32)
    hp = HyperParameters(distillation=0.75, translate=0)

    _, plain = epoch_data(_images(20), labels, HyperParameters(translate=0), epoch=0, teacher=teacher)
    _, mixed = epoch_data(_images(20), labels, hp, epoch=0, teacher=teacher)

    assert set(np.unique(plain)) == {0.0, 1.0}  # distillation 0: the labels alone
    np.testing.assert_allclose(mixed.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(mixed.max(axis=1), 0.25 + 0.75 * 0.1, rtol=1e-6)
    np.testing.assert_array_equal(mixed.argmax(axis=1), plain.argmax(axis=1))


@pytest.mark.slow
def test_train_prunes_a_wider_init_and_distils_from_a_teacher(tmp_path, test_zip):
    import keras

    teacher_path = tmp_path / "teacher.keras"
    _model_with_live_statistics().save(teacher_path)

    trained = run_train(
        test_zip,
        tmp_path / "run",
        "--epochs",
        "1",
        "--init",
        str(teacher_path),
        "--teacher",
        str(teacher_path),
        "--widths",
        "8,16,8,8",
        "--distillation",
        "0.5",
    )

    assert trained.returncode == 0, trained.stderr
    assert "pruning" in trained.stderr and "to (8, 16, 8, 8)" in trained.stderr
    student = keras.models.load_model(tmp_path / "run" / "model.keras")
    assert student.get_layer("block3b_conv").filters == 8
    record = json.loads((tmp_path / "run" / "training.json").read_text())
    assert record["hyper_parameters"]["distillation"] == 0.5 and record["teacher"] == str(teacher_path)
    assert (tmp_path / "run" / "checkpoints" / "teacher.npy").exists()


def test_train_distils_from_probabilities_computed_elsewhere_and_keeps_them_with_their_images(
    tmp_path, test_zip, test_set
):
    # given: a teacher's probabilities for every image of the zip, each row telling which it is
    rows = np.arange(len(test_set))
    probabilities = np.eye(10, dtype=np.float32)[rows % 10]
    np.save(tmp_path / "elsewhere.npy", probabilities)

    # when: a run trains on a random 64 of those images
    trained = run_train(
        test_zip,
        tmp_path / "run",
        "--epochs",
        "1",
        "--limit",
        "64",
        "--widths",
        "8,16,8,8",
        "--teacher",
        str(tmp_path / "elsewhere.npy"),
    )

    # then: each kept image is taught with its own row
    assert trained.returncode == 0, trained.stderr
    kept = test_set.sample_indices(64)
    soft = np.load(tmp_path / "run" / "checkpoints" / "teacher.npy")
    np.testing.assert_array_equal(soft, probabilities[kept])
    assert not np.array_equal(soft, probabilities[:64])  # the sample is not simply the first rows
    record = json.loads((tmp_path / "run" / "training.json").read_text())
    digest = hashlib.sha256((tmp_path / "elsewhere.npy").read_bytes()).hexdigest()
    assert record["teacher_files"] == [{"path": str(tmp_path / "elsewhere.npy"), "sha256": digest}]
