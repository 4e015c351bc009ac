"""The retraining job end to end on moto: a job split over two invocations resumes from its S3
checkpoint; the gate keeps a bad candidate out of serving."""

import shutil
import time

import pytest

from classifier.aws import table
from classifier.mlops import jobs, registry, retrain
from classifier.mlops.training_data import add_images
from tests.conftest import sample_zip
from tests.unit.conftest import FUNCTION_ENVIRONMENT

pytestmark = pytest.mark.slow


def small_zip(source, target, every, offset):
    target.write_bytes(sample_zip(source, every, offset))
    return target


@pytest.fixture
def env(aws, tmp_path, test_zip):
    return retrain.Environment(
        s3=aws.s3,
        bucket=aws.bucket,
        jobs_table=table(FUNCTION_ENVIRONMENT["JOBS_TABLE"]),
        models_table=aws.models,
        base_train=str(small_zip(test_zip, tmp_path / "train.zip", every=40, offset=1)),
        base_test=str(small_zip(test_zip, tmp_path / "test.zip", every=20, offset=3)),
        workdir=tmp_path / "work",
    )


def test_a_job_split_over_two_invocations_resumes_from_its_checkpoint(env, aws, dog_jpeg):
    add_images(aws.s3, aws.bucket, "dog", [("mine.jpg", dog_jpeg)])
    job = jobs.create_job(env.jobs_table, {"mode": "finetune", "epochs": 2})

    first = retrain.run_job(job["job_id"], env, deadline=time.time() + retrain.EXPORT_RESERVE_SECONDS + 1)

    assert first == retrain.CONTINUE
    progress = jobs.get_job(env.jobs_table, job["job_id"])
    assert progress["status"] == "running" and progress["epoch"] == 1 and progress["epochs"] == 2
    shutil.rmtree(env.workdir)  # the next invocation may land in a fresh container: S3 only

    second = retrain.run_job(job["job_id"], env, deadline=time.time() + 3600)

    done = jobs.get_job(env.jobs_table, job["job_id"])
    assert second in ("succeeded", "rejected") and done["status"] == second
    assert done["invocations"] == 2 and done["epoch"] == 2
    card = registry.get_version(aws.models, done["version"])
    assert card["parent_version"] == progress["parent_version"]
    # the lock is free: another job may start
    assert jobs.create_job(env.jobs_table, {"mode": "finetune"})["status"] == "queued"


def test_the_gate_rejects_a_deliberately_bad_candidate(env, aws):
    job = jobs.create_job(env.jobs_table, {"mode": "scratch", "epochs": 1})

    verdict = retrain.run_job(job["job_id"], env, deadline=time.time() + 3600)

    done = jobs.get_job(env.jobs_table, job["job_id"])
    assert verdict == "rejected" and done["status"] == "rejected" and done["promoted"] is False
    assert any("overall accuracy" in reason for reason in done["gate"]["reasons"])
    kept = registry.get_version(aws.models, done["version"])
    assert kept["status"] == "rejected" and "overall accuracy" in kept["reason"]
    assert registry.read_pointer(aws.models) is None  # serving still on the baseline


def test_a_crash_marks_the_job_failed_and_frees_the_lock(env, aws):
    job = jobs.create_job(env.jobs_table, {"mode": "finetune"})
    broken = retrain.Environment(**{**env.__dict__, "base_train": "/nonexistent/train.zip"})

    with pytest.raises(Exception, match="No dataset"):
        retrain.run_job(job["job_id"], broken, deadline=time.time() + 3600)

    failed = jobs.get_job(env.jobs_table, job["job_id"])
    assert failed["status"] == "failed" and "No dataset" in failed["reason"]
    assert jobs.create_job(env.jobs_table, {"mode": "finetune"})["status"] == "queued"


def test_a_diverged_run_fails_the_job_with_the_reason(env, monkeypatch):
    def diverging_train(images, labels, checkpoint_dir, hp, *, progress, **_):
        progress(
            {
                "epoch": 1,
                "epochs": 2,
                "loss": float("nan"),
                "accuracy": 0.1,
                "seconds": 1.0,
                "seconds_left": 1.0,
            }
        )

    monkeypatch.setattr(retrain, "train", diverging_train)
    job = jobs.create_job(env.jobs_table, {"mode": "finetune"})

    with pytest.raises(retrain.TrainingDivergedError):
        retrain.run_job(job["job_id"], env, deadline=time.time() + 3600)

    failed = jobs.get_job(env.jobs_table, job["job_id"])
    assert failed["status"] == "failed" and "diverged at epoch 1" in failed["reason"]
    assert jobs.create_job(env.jobs_table, {"mode": "finetune"})["status"] == "queued"
