"""The airbench recipe: a whitening stem set from the data, identity-initialised blocks, batch
norms without a learned scale, Nesterov SGD with lookahead, alternating flips. Each piece is
checked against what it claims, the optimizer against PyTorch's update written out by hand."""

import numpy as np
import pytest

WIDTHS = (24, 16, 16, 16)


def _images(count: int, seed: int = 0) -> np.ndarray:
    """Images with neighbouring pixels correlated, as in photographs (so whitening has work)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (count, 8, 8, 3)).astype("float64")
    smooth = coarse.repeat(4, axis=1).repeat(4, axis=2) + rng.normal(0, 12, (count, 32, 32, 3))
    return np.clip(smooth, 0, 255).astype(np.uint8)


def test_the_whitening_stem_gives_its_patches_unit_variance_in_every_direction():
    import keras

    from classifier.training.network import WHITEN_WIDTH, make_model, set_whitening

    images = _images(400)
    model = make_model(WIDTHS, stem="whiten")
    set_whitening(model, images)
    stem = keras.Model(model.input, model.get_layer("stem_whiten").output)

    out = np.asarray(stem.predict(images, verbose=0), dtype="float64").reshape(-1, WHITEN_WIDTH)
    half = WHITEN_WIDTH // 2
    second_moment = out[:, :half].T @ out[:, :half] / len(out)

    # then the first half of the channels are decorrelated with unit variance; the second, negatives
    np.testing.assert_allclose(second_moment, np.eye(half), atol=0.02)
    np.testing.assert_allclose(out[:, half:], -out[:, :half], atol=1e-4)


def test_whitened_blocks_start_as_identities_and_their_norms_learn_no_scale():
    import keras

    from classifier.training.network import make_model

    model = make_model(WIDTHS, stem="whiten")
    square = keras.ops.convert_to_numpy(model.get_layer("block1b_conv").kernel)  # 16 -> 16
    widening = keras.ops.convert_to_numpy(model.get_layer("block1a_conv").kernel)  # 24 -> 16
    identity = np.zeros_like(square)
    identity[1, 1, np.arange(16), np.arange(16)] = 1.0

    np.testing.assert_array_equal(square, identity)
    np.testing.assert_array_equal(widening[1, 1, np.arange(16), np.arange(16)], np.ones(16))
    assert [w.name for w in model.get_layer("block1a_bn").weights] == [
        "beta",
        "moving_mean",
        "moving_variance",
    ]
    assert [w.name for w in make_model((8, 16, 16, 16)).get_layer("block1a_bn").weights][0] == "gamma"


def _torch_style_reference(
    params, gradients, lr, momentum, weight_decay, bias_scale, total, frozen_bias_after
):
    """PyTorch's SGD (nesterov, weight_decay in the gradient) with airbench's parameter groups and
    its LookaheadState, for a constant schedule, written the way airbench94.py writes it."""
    lr_groups = {"block1a_bn/beta": lr * bias_scale}
    buffers = {name: np.zeros_like(value) for name, value in params.items()}
    ema = {name: value.copy() for name, value in params.items()}
    for step, grads in enumerate(gradients, start=1):
        for name, value in params.items():
            if name == "stem_whiten/kernel" or (name == "stem_whiten/bias" and step > frozen_bias_after):
                continue  # requires_grad = False
            group_lr = lr_groups.get(name, lr)
            g = grads[name] + (weight_decay / group_lr) * value
            buffers[name] = momentum * buffers[name] + g
            params[name] = value - group_lr * (g + momentum * buffers[name])
        if step % 5 == 0 or step == total:
            decay = 1.0 if step == total else 0.95**5 * (step / total) ** 3
            for name in params:
                ema[name] = ema[name] + (1 - decay) * (params[name] - ema[name])
                params[name] = ema[name].copy()
    return params


def test_lookahead_nesterov_makes_the_updates_pytorch_makes_for_airbench():
    import keras

    from classifier.training.trainer import LookaheadNesterov

    rng = np.random.default_rng(0)
    shapes = {
        "block1a_conv/kernel": (3, 3, 2, 4),
        "block1a_bn/beta": (4,),
        "stem_whiten/kernel": (2, 2, 3, 2),
        "stem_whiten/bias": (2,),
    }
    initial = {name: rng.normal(0, 1, shape).astype("float32") for name, shape in shapes.items()}
    variables = {}
    for name, value in initial.items():
        scope, leaf = name.split("/")
        with keras.name_scope(scope):
            variables[name] = keras.Variable(value, name=leaf)
    total, steps, lr, l2 = 12, 12, 0.3, 0.01
    gradients = [{n: rng.normal(0, 1, s).astype("float32") for n, s in shapes.items()} for _ in range(steps)]
    optimizer = LookaheadNesterov(
        lr, momentum=0.85, l2=l2, bias_scale=4.0, total_steps=total, whiten_bias_steps=4
    )

    for grads in gradients:
        optimizer.apply_gradients([(grads[n], v) for n, v in variables.items()])

    expected = _torch_style_reference(
        {n: v.astype("float64") for n, v in initial.items()},
        gradients,
        lr=lr,
        momentum=0.85,
        weight_decay=l2 * lr,  # airbench's wd: the decay per step, for every group
        bias_scale=4.0,
        total=total,
        frozen_bias_after=4,
    )
    for name, variable in variables.items():
        np.testing.assert_allclose(keras.ops.convert_to_numpy(variable), expected[name], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(variables["stem_whiten/kernel"]), initial["stem_whiten/kernel"]
    )


def test_alternating_flips_show_every_image_both_ways_round_every_two_epochs():
    from classifier.training.trainer import HyperParameters, alternating_flips, epoch_data

    images = _images(64)
    hp = HyperParameters(flip="alternating", translate=0)
    first, second, third = (alternating_flips(64, 0, epoch) for epoch in (0, 1, 2))
    assert (first ^ second).all() and np.array_equal(first, third) and 0 < first.sum() < 64

    for epoch, mirrored in ((0, first), (1, second)):
        x, y = epoch_data(images, np.arange(64) % 10, hp, epoch)
        order = np.random.default_rng([hp.seed, epoch, 1]).permutation(64)  # epoch_data's shuffle
        expected = np.where(mirrored[order, None, None, None], images[order][:, :, ::-1], images[order])
        np.testing.assert_array_equal(x, expected)


def test_unknown_stems_optimizers_and_flips_are_refused_before_anything_trains():
    from classifier.training.network import make_model
    from classifier.training.trainer import HyperParameters

    for field in ("stem", "optimizer", "flip"):
        with pytest.raises(ValueError, match=field):
            HyperParameters(**{field: "other"})
    with pytest.raises(ValueError, match="24 channels"):
        make_model((32, 16, 16, 16), stem="whiten")


def test_a_whitened_network_survives_pruning_fine_tuning_and_the_float32_copy(tmp_path):
    import keras

    from classifier.training.network import architecture_of, make_model, set_whitening
    from classifier.training.pruning import prune_channels
    from classifier.training.trainer import HyperParameters, float32_copy, train

    images = _images(64)
    model = make_model(WIDTHS, stem="whiten", activation="relu")
    set_whitening(model, images)
    stem = keras.ops.convert_to_numpy(model.get_layer("stem_whiten").kernel)

    same = prune_channels(model, WIDTHS, images)
    np.testing.assert_allclose(same.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-5)
    narrower = prune_channels(model, (24, 8, 8, 8), images)
    assert architecture_of(narrower) == dict(widths=(24, 8, 8, 8), activation="relu", stem="whiten")
    with pytest.raises(ValueError, match="whitening stem"):
        prune_channels(model, (12, 8, 8, 8), images)

    # fine-tuning (Keras SGD, as the retrain job does) trains the blocks but leaves the stem as the data set it
    tuned = train(
        images,
        np.arange(64) % 10,
        tmp_path,
        HyperParameters.finetune(epochs=1, batch_size=32),
        init_model=model,
    )
    assert tuned.hyper_parameters.stem == "whiten" and tuned.hyper_parameters.widths == WIDTHS
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(tuned.model.get_layer("stem_whiten").kernel), stem
    )
    assert not np.allclose(
        keras.ops.convert_to_numpy(tuned.model.get_layer("block1a_conv").kernel),
        keras.ops.convert_to_numpy(model.get_layer("block1a_conv").kernel),
    )
    assert architecture_of(float32_copy(tuned.model, temperature=2.0)) == architecture_of(model)


def test_the_pytorch_equivalence_check_says_what_it_needs_when_torch_is_absent(monkeypatch, capsys):
    import sys

    from bench import airbench_equivalence

    monkeypatch.setitem(sys.modules, "torch", None)  # an import of torch now fails, installed or not
    assert airbench_equivalence.main(["--steps", "1"]) == 2
    assert "pip install torch" in capsys.readouterr().err


def test_classifier_evaluate_loads_a_saved_whitened_model_in_a_fresh_process(tmp_path, test_zip):
    import os
    import subprocess
    import sys

    from classifier.training.network import make_model

    path = tmp_path / "model.keras"
    make_model(WIDTHS, stem="whiten").save(path)
    # a fresh interpreter, as a user runs it: nothing else has registered DiracPrefix there
    command = [sys.executable, "-m", "classifier", "evaluate", "--model", str(path), "--data", str(test_zip)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}  # pytest's pythonpath, for the child
    out = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "images            5000" in out.stdout and "per class:" in out.stdout
