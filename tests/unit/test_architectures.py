"""What a new architecture needs to be trained, exported and served: the activation travels with
the network (through fine-tuning, pruning and export), full-int8 export takes uint8 pixels like
every other ``.tflite``, a distillation teacher is asked both ways round, and the frontier bench
counts multiply-adds right, cuts a network into its blocks and times models in turns."""

import json

import numpy as np
import pytest

WIDTHS = (8, 16, 16, 16)


def _images(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)


@pytest.mark.parametrize("activation", ["gelu", "relu"])
def test_the_activation_survives_fine_tuning_pruning_and_the_float32_copy(tmp_path, activation):
    from classifier.training.network import activation_of, make_model
    from classifier.training.pruning import prune_channels
    from classifier.training.trainer import HyperParameters, float32_copy, train

    init = make_model(WIDTHS, activation=activation)
    assert activation_of(init) == activation

    result = train(
        _images(64),
        np.arange(64) % 10,
        tmp_path,
        HyperParameters.finetune(epochs=1, batch_size=32),
        init_model=init,
    )

    assert result.hyper_parameters.activation == activation
    assert activation_of(result.model) == activation
    assert activation_of(float32_copy(result.model, temperature=2.0)) == activation
    assert activation_of(prune_channels(result.model, (8, 8, 8, 8), _images(16))) == activation


def test_an_unknown_activation_is_refused_before_anything_trains():
    from classifier.training.network import make_model
    from classifier.training.trainer import HyperParameters

    with pytest.raises(ValueError, match="gelu"):
        HyperParameters(activation="swish")
    with pytest.raises(ValueError, match="relu"):
        make_model(WIDTHS, activation="tanh")


def test_a_checkpoint_written_before_activations_were_a_choice_resumes_as_gelu():
    from classifier.training.trainer import HyperParameters

    stored = HyperParameters().to_json()
    del stored["activation"]

    assert HyperParameters.from_json(stored).activation == "gelu"


def test_full_int8_export_takes_uint8_pixels_and_answers_probabilities():
    from classifier.litert import TFLiteModel
    from classifier.training.export import to_tflite
    from classifier.training.network import make_model

    model = make_model(WIDTHS, activation="relu")
    with pytest.raises(ValueError, match="representative"):
        to_tflite(model, "int8")

    lite = TFLiteModel(to_tflite(model, "int8", _images(16, seed=1)))
    probabilities = lite.predict(_images(4))

    assert probabilities.shape == (4, 10)
    # int8 outputs come in steps of 1/256: they sum to one within a few steps
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=0.02)
    with pytest.raises(Exception, match="uint8"):
        lite.predict(_images(1).astype(np.float32) / 255)  # normalised twice stays impossible


def test_the_teacher_is_asked_about_each_image_and_its_mirror_image(tmp_path):
    from classifier.training.network import make_model
    from classifier.training.trainer import TEACHER_FILE, teacher_probabilities

    teacher = make_model(WIDTHS)
    images = _images(12)
    plain = teacher.predict(images, verbose=0)
    mirrored = teacher.predict(images[:, :, ::-1], verbose=0)

    soft = teacher_probabilities(teacher, images, tmp_path)

    np.testing.assert_allclose(soft, (plain + mirrored) / 2, rtol=1e-5, atol=1e-6)
    assert not np.allclose(plain, mirrored)  # the mirror image really is another input
    np.testing.assert_array_equal(np.load(tmp_path / TEACHER_FILE), soft)  # kept for a resumed run


def test_an_ensemble_teacher_is_the_mean_of_its_members_flip_averaged_probabilities(tmp_path):
    import keras

    from classifier.training.network import make_model
    from classifier.training.trainer import teacher_probabilities

    images = _images(12)
    members = []
    for seed in (1, 2):
        keras.utils.set_random_seed(seed)
        members.append(make_model(WIDTHS))
    for name in ("alone-0", "alone-1", "ensemble"):
        (tmp_path / name).mkdir()
    alone = [teacher_probabilities(model, images, tmp_path / f"alone-{i}") for i, model in enumerate(members)]

    soft = teacher_probabilities(members, images, tmp_path / "ensemble")

    assert not np.allclose(alone[0], alone[1])  # two different teachers
    np.testing.assert_allclose(soft, (alone[0] + alone[1]) / 2, rtol=1e-5, atol=1e-6)


def test_precomputed_teacher_probabilities_join_an_ensemble_as_one_member(tmp_path):
    from classifier.training.network import make_model
    from classifier.training.trainer import teacher_probabilities

    images = _images(12)
    model = make_model(WIDTHS)
    (tmp_path / "model").mkdir()
    from_model = teacher_probabilities(model, images, tmp_path / "model")
    elsewhere = np.random.default_rng(3).dirichlet(np.ones(10), len(images)).astype(np.float32)

    soft = teacher_probabilities([model, elsewhere], images, tmp_path)

    np.testing.assert_allclose(soft, (from_model + elsewhere) / 2, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "probabilities, problem",
    [
        (np.full((11, 10), 0.1, np.float32), "shape"),  # one image short: another data set's order
        (np.full((12, 10), 0.2, np.float32), "sum to 1"),  # logits or scores, not probabilities
    ],
)
def test_precomputed_teacher_probabilities_that_do_not_fit_the_images_are_refused(
    tmp_path, probabilities, problem
):
    from classifier.training.trainer import teacher_probabilities

    with pytest.raises(ValueError, match=problem):
        teacher_probabilities(probabilities, _images(12), tmp_path)


def test_the_frontier_counts_the_shipped_networks_multiply_adds():
    from bench.frontier import multiply_adds
    from classifier.cards import BASELINE_DIR
    from classifier.training.network import DEFAULT_WIDTHS, make_model

    card = json.loads((BASELINE_DIR / "card.json").read_text())
    model = make_model(DEFAULT_WIDTHS)

    assert model.count_params() == card["parameters"]
    # stem 32x32x32x27, block1 32x32x64x288 + 16x16x64x576, and so on: 105M, as docs/model.md says
    assert round(multiply_adds(model) / 1e6) == 105


def test_the_block_profile_cuts_after_every_block_and_the_cuts_add_up_to_the_network():
    from bench.frontier import block_cuts, multiply_adds
    from classifier.training.network import DEFAULT_WIDTHS, make_model

    model = make_model(DEFAULT_WIDTHS)
    cuts = block_cuts(model)

    names = [name for name, _ in cuts]
    assert names == ["stem_gelu"] + [f"block{i}{part}_gelu" for i in (1, 2, 3) for part in "ab"] + ["head"]
    assert cuts[-1][1] is model
    totals = [multiply_adds(cut) for _, cut in cuts]
    assert totals == sorted(totals) and totals[-1] == multiply_adds(model)
    # each cut is the network's own first layers, up to the end of its block
    block2 = dict(cuts)["block2b_gelu"]
    layers = [layer.name for layer in block2.layers]
    assert layers == [layer.name for layer in model.layers][: len(layers)] and layers[-1] == "block2b_gelu"
    assert block2.output.shape[1:] == (8, 8, 192)


def test_models_timed_in_turns_keep_their_ratio_while_the_machine_slows_down(monkeypatch):
    from types import SimpleNamespace

    import bench.model

    # a fake clock: each call costs its model's time, times how slow the machine is that round
    clock = {"now": 0.0, "slowdown": 1.0}
    calls = []
    monkeypatch.setattr(bench.model, "time", SimpleNamespace(perf_counter=lambda: clock["now"]))

    def model(name, seconds):
        def predict(images):
            calls.append(name)
            clock["now"] += seconds * clock["slowdown"]

        return predict

    rounds = 5
    fast, slow = model("fast", 0.002), model("slow", 0.003)

    def slow_down(images):  # timed last in each round: the machine slows down from round to round
        calls.append("marker")
        clock["slowdown"] *= 1.5 if calls.count("marker") > bench.model.WARMUP_RUNS else 1.0

    figures = bench.model.interleaved_latency_ms(
        {"fast": fast, "slow": slow, "marker": slow_down}, rounds=rounds, runs=4, warmup=1
    )

    timed = [name for name in calls[3 * bench.model.WARMUP_RUNS :] if name != "marker"]
    assert timed == (["fast"] * 5 + ["slow"] * 5) * rounds  # one model after another, in turns
    assert len(figures["fast"]["rounds_ms"]) == rounds
    # the absolute figures move with the machine, the ratio does not
    assert figures["fast"]["spread_ms"][1] > 4 * figures["fast"]["spread_ms"][0]
    for fast_ms, slow_ms in zip(figures["fast"]["rounds_ms"], figures["slow"]["rounds_ms"], strict=True):
        assert slow_ms / fast_ms == pytest.approx(1.5)
    assert figures["slow"]["p50_ms"] / figures["fast"]["p50_ms"] == pytest.approx(1.5)


def test_the_runtimes_bench_times_each_litert_kernel_set_and_they_answer_the_same_classes(test_set):
    from bench.frontier import RUNTIMES, measure_runtimes
    from classifier.cards import BASELINE_DIR

    rows = measure_runtimes(BASELINE_DIR / "model.tflite", test_set.images[::50], rounds=2)

    assert [row["runtime"] for row in rows] == list(RUNTIMES)
    assert all(len(row["rounds_ms"]) == 2 and row["p50_ms"] > 0 for row in rows)
    # another kernel set is only a fair comparison if it computes the same model
    assert all(row["top1_agreement"] >= 0.99 for row in rows)


def test_int8_export_refuses_to_calibrate_without_a_training_set(tmp_path, test_zip):
    from classifier.training.export import export_model

    with pytest.raises(ValueError, match="training set"):
        export_model(tmp_path / "missing.keras", tmp_path, test_zip, quantization="int8")
    assert not any(tmp_path.iterdir())  # refused before writing anything


def test_the_jpeg_bench_reencodes_at_the_quality_asked_and_leaves_none_alone():
    from bench.jpeg_quality import reencode

    images = _images(6)
    assert reencode(images, None) is images
    low, high = reencode(images, 10), reencode(images, 95)
    assert low.shape == images.shape and low.dtype == np.uint8
    # a lower quality loses more: its error against the input is larger
    assert np.abs(low.astype(int) - images).mean() > np.abs(high.astype(int) - images).mean()
