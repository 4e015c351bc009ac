"""Batch-norm recalibration (bench.batchnorm_recalibration): after it, every batch norm's moving
statistics are plain means over the images given, under the weights as they are, and nothing
else in the network has moved; so what the bench prints measures what it says."""

import numpy as np
import pytest

WIDTHS = (8, 16, 16, 16)


def _images(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)


def _model(stem="conv"):
    import keras

    from classifier.training.network import WHITEN_WIDTH, make_model

    keras.utils.set_random_seed(0)
    widths = (WHITEN_WIDTH, *WIDTHS[1:]) if stem == "whiten" else WIDTHS
    return make_model(widths, stem=stem)


def _variables(model):
    import keras

    return {v.path: keras.ops.convert_to_numpy(v) for v in model.weights}


def test_the_first_batch_norm_keeps_the_size_weighted_mean_of_its_batch_statistics():
    import keras

    from bench.batchnorm_recalibration import recalibrate

    model = _model()
    images = _images(250)  # batches of 100, 100 and 50: unequal, so plain averaging would be wrong
    recalibrate(model, images, batch_size=100)

    conv = keras.Model(model.input, model.get_layer("stem_conv").output)
    batches = [conv.predict(images[s : s + 100], verbose=0).astype("float64") for s in (0, 100, 200)]
    weights = np.array([100, 100, 50]) / 250
    mean = sum(w * b.mean(axis=(0, 1, 2)) for w, b in zip(weights, batches))
    variance = sum(w * b.var(axis=(0, 1, 2)) for w, b in zip(weights, batches))

    norm = model.get_layer("stem_bn")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(norm.moving_mean), mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(norm.moving_variance), variance, rtol=1e-3)


@pytest.mark.parametrize("stem", ["conv", "whiten"])
def test_with_one_batch_inference_then_gives_what_training_mode_gives_on_that_batch(stem):
    import keras

    from bench.batchnorm_recalibration import recalibrate

    model = _model(stem)
    logits = keras.Model(model.input, model.get_layer("logits").output)
    images = _images(64, seed=1)
    before = logits.predict(images, verbose=0)
    expected = keras.ops.convert_to_numpy(logits(images, training=True))
    recalibrate(model, images, batch_size=64)

    after = logits.predict(images, verbose=0)
    scale = np.abs(expected).max()
    # the untouched statistics (mean 0, variance 1) describe another network entirely
    assert np.abs(before - expected).max() > 0.1 * scale
    np.testing.assert_allclose(after, expected, atol=1e-3 * scale)


def test_recalibration_moves_only_the_statistics_and_restores_the_momenta():
    from bench.batchnorm_recalibration import batch_norms, recalibrate

    model = _model()
    norms = batch_norms(model)
    momenta = [norm.momentum for norm in norms]
    before = _variables(model)
    assert recalibrate(model, _images(120), batch_size=50) == len(norms) == 7

    after = _variables(model)
    moved = {path for path in before if not np.array_equal(before[path], after[path])}
    assert moved == {v.path for norm in norms for v in (norm.moving_mean, norm.moving_variance)}
    assert [norm.momentum for norm in norms] == momenta


def test_recalibration_refuses_an_empty_set_of_images():
    from bench.batchnorm_recalibration import recalibrate

    with pytest.raises(ValueError, match="at least one image"):
        recalibrate(_model(), _images(0))


def test_the_bench_prints_each_models_accuracy_before_and_after(tmp_path, test_zip, monkeypatch, capsys):
    import bench.batchnorm_recalibration as bench
    from tests.conftest import sample_zip

    # the test zip stands in for both: what is measured here is the printout, not the figure
    (tmp_path / "cifar10-train.zip").write_bytes(sample_zip(test_zip, 20, 0))
    (tmp_path / "cifar10-test.zip").write_bytes(sample_zip(test_zip, 20, 1))
    monkeypatch.setattr(bench, "DATA", tmp_path)
    model_path = tmp_path / "model.keras"
    _model().save(model_path)

    assert bench.main([str(model_path), "--images", "100,250"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["model", "images", "top-1", "seconds"]
    rows = [line.split() for line in lines[1:]]
    assert [row[0] for row in rows] == [str(model_path)] * 3
    assert [row[1:3] for row in rows] == [["as", "is"], ["100", rows[1][2]], ["250", rows[2][2]]]
    for accuracy in (rows[0][3], rows[1][2], rows[2][2]):
        assert accuracy.endswith("%") and 0 <= float(accuracy[:-1]) <= 100
