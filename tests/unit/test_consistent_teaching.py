"""Consistent teaching and mixup: the teacher's targets are its probabilities for the very images
the student trains on that epoch (shifted, flipped, blended), not for the clean images it has
memorised; mixup blends image pairs and their targets by the same weight."""

import dataclasses
import time

import numpy as np
import pytest


def _images(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)


def _teacher(seed: int = 1):
    import keras

    from classifier.training.network import make_model

    keras.utils.set_random_seed(seed)
    return make_model((8, 8, 8, 8))


def test_mixup_blends_each_image_and_its_targets_by_the_same_weight():
    from classifier.training.trainer import mixup

    images = _images(64)
    targets = np.eye(10, dtype=np.float32)[np.arange(64) % 10]

    mixed, blended = mixup(images, targets, 0.5, seed=0, epoch=3)

    assert mixed.dtype == np.uint8 and mixed.shape == images.shape
    np.testing.assert_allclose(blended.sum(axis=1), 1.0, rtol=1e-6)
    assert (blended.max(axis=1) < 1.0).sum() > 32  # most images were blended with another class
    # every image is the blend its targets describe: weight lam on itself, 1 - lam on a partner
    # of the class holding the rest of the target
    checked = 0
    for i in range(64):
        lam = blended[i, i % 10]
        others = [c for c in range(10) if c != i % 10 and blended[i, c] > 1e-6]
        if not others:
            continue  # blended with an image of its own class
        partners = [j for j in range(64) if j % 10 == others[0]]
        errors = [
            np.abs(mixed[i] - (lam * images[i] + (1 - lam) * images[j].astype(np.float32))).max()
            for j in partners
        ]
        assert min(errors) <= 0.5 + 1e-3
        checked += 1
    assert checked > 32


def test_mixup_is_a_pure_function_of_seed_and_epoch():
    from classifier.training.trainer import mixup

    images, targets = _images(32), np.eye(10, dtype=np.float32)[np.arange(32) % 10]

    first, again, other = (mixup(images, targets, 1.0, 0, e) for e in (5, 5, 6))

    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])


def test_epoch_data_mixes_only_when_asked():
    from classifier.training.trainer import HyperParameters, epoch_data

    labels = np.arange(40) % 10

    x_plain, y_plain = epoch_data(_images(40), labels, HyperParameters(translate=0), epoch=0)
    x_mixed, y_mixed = epoch_data(_images(40), labels, HyperParameters(translate=0, mixup=1.0), epoch=0)

    assert set(np.unique(y_plain)) == {0.0, 1.0}
    assert len(np.unique(y_mixed)) > 2 and not np.array_equal(x_plain, x_mixed)
    np.testing.assert_allclose(y_mixed.sum(axis=1), 1.0, rtol=1e-6)


def test_live_teacher_targets_are_the_teachers_probabilities_for_exactly_these_images():
    from classifier.training.trainer import live_teacher_targets

    teachers = [_teacher(1), _teacher(2)]
    images = _images(16)
    labels = np.eye(10, dtype=np.float32)[np.arange(16) % 10]

    targets = live_teacher_targets(teachers, images, labels, distillation=0.75)

    expected = np.mean([t.predict(images, verbose=0) for t in teachers], axis=0)
    np.testing.assert_allclose(targets, 0.25 * labels + 0.75 * expected, rtol=1e-5, atol=1e-6)
    other = live_teacher_targets(teachers, images[:, :, ::-1], labels, distillation=0.75)
    assert not np.allclose(targets, other)  # the mirrored images got their own probabilities


def test_a_flipping_live_teacher_averages_each_image_with_its_mirror_image():
    from classifier.training.trainer import live_teacher_targets

    teachers = [_teacher(1), _teacher(2)]
    images = _images(16)
    labels = np.eye(10, dtype=np.float32)[np.arange(16) % 10]

    targets = live_teacher_targets(teachers, images, labels, distillation=1.0, flip=True)

    views = (images, images[:, :, ::-1])
    expected = np.mean([t.predict(v, verbose=0) for t in teachers for v in views], axis=0)
    np.testing.assert_allclose(targets, expected, rtol=1e-5, atol=1e-6)
    # a flip-averaged teacher cannot tell an image from its mirror image
    mirrored = live_teacher_targets(teachers, images[:, :, ::-1], labels, distillation=1.0, flip=True)
    np.testing.assert_allclose(targets, mirrored, rtol=1e-5, atol=1e-6)
    unflipped = live_teacher_targets(teachers, images, labels, distillation=1.0)
    assert not np.allclose(targets, unflipped)


@pytest.mark.slow
@pytest.mark.parametrize("views, flip", [("augmented", False), ("augmented-flip", True)])
def test_training_on_augmented_views_shows_the_teacher_each_epochs_own_images(
    tmp_path, monkeypatch, views, flip
):
    from classifier.training import trainer
    from classifier.training.trainer import HyperParameters, epoch_data, train

    images, labels = _images(96), np.arange(96) % 10
    hp = HyperParameters(
        epochs=2, batch_size=32, widths=(8, 8, 8, 8), distillation=0.5, teacher_views=views, mixup=0.5
    )
    seen = []
    real = trainer.live_teacher_targets

    def spy(teacher, x, y, distillation, flip=False):
        seen.append((x.copy(), flip))
        return real(teacher, x, y, distillation, flip)

    monkeypatch.setattr(trainer, "live_teacher_targets", spy)

    result = train(images, labels, tmp_path, hp, teacher=_teacher())

    assert result.finished and len(seen) == 2
    assert all(flipped == flip for _, flipped in seen)
    seen = [x for x, _ in seen]
    for epoch, x in enumerate(seen):
        np.testing.assert_array_equal(x, epoch_data(images, labels, hp, epoch)[0])
    assert not (tmp_path / trainer.TEACHER_FILE).exists()  # nothing fixed was computed


def test_augmented_views_need_teacher_models_on_every_run(tmp_path):
    from classifier.training.trainer import HyperParameters, train

    images, labels = _images(32), np.arange(32) % 10
    hp = HyperParameters(
        epochs=1, batch_size=32, widths=(8, 8, 8, 8), distillation=0.5, teacher_views="augmented"
    )

    with pytest.raises(ValueError, match="teacher models"):
        train(images, labels, tmp_path / "a", hp, teacher=np.full((32, 10), 0.1, np.float32))
    with pytest.raises(ValueError, match="teacher models"):
        train(images, labels, tmp_path / "b", hp, teacher=None)


@pytest.mark.parametrize("views, calls", [("augmented", 1), ("augmented-flip", 2)])
def test_a_live_teacher_is_timed_on_a_sample_and_scaled_to_the_epoch(monkeypatch, views, calls):
    from classifier.training import trainer

    pause = 0.05
    sizes = []

    def slow_predict(teacher, images):
        sizes.append(len(images))
        time.sleep(pause)
        return np.full((len(images), 10), 0.1, np.float32)

    monkeypatch.setattr(trainer, "_predict", slow_predict)
    images = _images(2 * trainer.TEACHER_TIMING_IMAGES)
    hp = trainer.HyperParameters(distillation=0.5, teacher_views=views)

    seconds = trainer.teacher_seconds_per_epoch([_teacher(), _teacher(2)], images, hp)

    # one untimed call, one timed, each on the sample, once per member and view
    assert sizes == [trainer.TEACHER_TIMING_IMAGES] * (2 * 2 * calls)
    assert seconds >= 2 * (2 * calls * pause)  # the sample is half the images


@pytest.mark.slow
def test_a_time_budget_leaves_room_for_a_live_teacher_and_only_for_a_live_one(tmp_path, monkeypatch):
    from classifier.training import trainer

    monkeypatch.setattr(trainer, "teacher_seconds_per_epoch", lambda teacher, images, hp: 30.0)
    images, labels = _images(64), np.arange(64) % 10
    hp = trainer.HyperParameters(epochs=5, batch_size=32, widths=(8, 8, 8, 8), distillation=0.5)
    live = dataclasses.replace(hp, teacher_views="augmented")

    taught = trainer.train(images, labels, tmp_path / "live", live, teacher=_teacher(), budget_seconds=100)
    fixed = trainer.train(images, labels, tmp_path / "fixed", hp, teacher=_teacher(), budget_seconds=100)

    # 100 s over (30 s of teaching + the student's steps) with the 15% margin: 2 epochs
    assert taught.finished and taught.hyper_parameters.epochs == 2
    assert fixed.finished and fixed.hyper_parameters.epochs == 5


@pytest.mark.parametrize(
    "field, value",
    [("teacher_views", "clean"), ("mixup", -0.1), ("label_smoothing", -0.1), ("label_smoothing", 1.0)],
)
def test_hyper_parameters_refuse_unknown_teacher_views_negative_mixup_and_bad_smoothing(field, value):
    from classifier.training.trainer import HyperParameters

    with pytest.raises(ValueError, match=field):
        HyperParameters(**{field: value})


@pytest.mark.slow
def test_cli_trains_on_augmented_teacher_views_with_mixup_and_records_them(tmp_path, test_zip):
    import json

    import keras

    from classifier.training.trainer import STATE_FILE, TEACHER_FILE
    from tests.unit.test_training import run_train

    _teacher().save(tmp_path / "teacher.keras")

    trained = run_train(
        test_zip,
        tmp_path / "run",
        "--epochs",
        "1",
        "--teacher",
        str(tmp_path / "teacher.keras"),
        "--teacher-views",
        "augmented",
        "--mixup",
        "0.5",
        "--label-smoothing",
        "0",
    )

    assert trained.returncode == 0, trained.stderr
    record = json.loads((tmp_path / "run" / "training.json").read_text())
    assert record["hyper_parameters"]["teacher_views"] == "augmented"
    assert record["hyper_parameters"]["mixup"] == 0.5
    assert record["hyper_parameters"]["label_smoothing"] == 0.0
    # the loss the run trained with, as its checkpoint (which a resumed run continues) keeps it
    checkpoints = tmp_path / "run" / "checkpoints"
    state = json.loads((checkpoints / STATE_FILE).read_text())
    assert (
        keras.models.load_model(checkpoints / state["checkpoint"]).loss.get_config()["label_smoothing"] == 0.0
    )
    assert not (checkpoints / TEACHER_FILE).exists()
