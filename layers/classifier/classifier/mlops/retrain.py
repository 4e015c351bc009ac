"""A retraining job from start to verdict; what the retrain Lambda (a container image with
tensorflow-cpu) runs for one job id, and ``make serve`` runs in a background process.

One invocation: mark the job running, load the base training set plus every accepted user image,
restore the job's checkpoint from S3 if an earlier invocation left one, train while the
invocation has time left (checkpointing to S3 after every epoch and reporting progress in the job
record), and either return ``CONTINUE`` (the handler invokes itself again) or finish: evaluate on
the fixed base test set, export, write ``models/<version>/``, register the version, pass it
through the gate, promote it or keep it as a rejected candidate, free the lock.
"""

import dataclasses
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from classifier import gate, storage
from classifier.aws import download_file, is_missing, local_copy, upload_file
from classifier.cards import BASELINE_DIR, baseline_card
from classifier.datasets import concatenate, load_dataset
from classifier.evaluation import metrics, predict_batched
from classifier.litert import TFLiteModel
from classifier.mlops import jobs, registry
from classifier.mlops.training_data import load_user_data_with_manifest
from classifier.training.export import export_model, new_version
from classifier.training.trainer import STATE_FILE, HyperParameters, save_run, train

CONTINUE = "continue"
MAX_JOB_LISTED_FEEDBACK = 100  # feedback images named in the job record (the card lists them all)
EXPORT_RESERVE_SECONDS = 180  # left for evaluation, export and uploads after the last epoch
SCRATCH_DEFAULT_BUDGET_SECONDS = 3600


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the job fails with this reason."""


@dataclasses.dataclass(frozen=True)
class Environment:
    """Where a job reads and writes; built by the handler from settings."""

    s3: Any
    bucket: str
    jobs_table: Any
    models_table: Any
    base_train: str  # path or s3:// URI of the base training set
    base_test: str  # path or s3:// URI of the fixed base test set
    workdir: Path = Path("/tmp/retrain")  # nosec B108  # Lambda's /tmp: private to the environment, the only writable path


def run_job(job_id: str, env: Environment, deadline: float, log: Callable[[str], None] = print) -> str:
    """Advance job ``job_id`` until ``deadline`` (a ``time.time()`` value); return CONTINUE or the
    job's final status. Any error marks the job failed with its reason and frees the lock."""
    job = jobs.get_job(env.jobs_table, job_id)
    if job["status"] not in jobs.ACTIVE:
        return job["status"]  # a duplicate invocation of a finished job
    try:
        return _advance(job, env, deadline, log)
    except Exception as error:  # noqa: BLE001 - any failure must end the job and free the lock
        jobs.finish(env.jobs_table, job_id, "failed", reason=f"{type(error).__name__}: {error}")
        raise


def _advance(job: dict, env: Environment, deadline: float, log: Callable[[str], None]) -> str:
    job_id = job["job_id"]
    work = env.workdir / job_id
    parent, parent_dir = _parent(job, env, work)
    jobs.update(
        env.jobs_table,
        job_id,
        status="running",
        invocations=int(job.get("invocations", 0)) + 1,
        parent_version=parent,
    )

    base_train = local_copy(env.base_train, work / "datasets")
    data = load_dataset(base_train, "train")  # nosec B615  # classifier.datasets, not Hugging Face
    if job.get("max_images"):
        data = data.sample(min(job["max_images"], len(data)))
    base_images = len(data)
    user, user_manifest = load_user_data_with_manifest(env.s3, env.bucket)
    if len(user):
        data = concatenate(data, user)
    listed = user_manifest["feedback_images"]
    jobs.update(
        env.jobs_table,
        job_id,
        training_data={
            "base": base_images,
            "uploads": user_manifest["uploads"],
            "feedback": user_manifest["feedback"],
            "feedback_images": listed[:MAX_JOB_LISTED_FEEDBACK],
            "feedback_not_listed": max(0, len(listed) - MAX_JOB_LISTED_FEEDBACK),
        },
    )
    log(
        f"job {job_id}: {len(data)} images ({user_manifest['uploads']} uploaded, "
        f"{user_manifest['feedback']} from feedback), parent {parent}"
    )

    checkpoints = work / "checkpoints"
    _restore_checkpoint(env, job_id, checkpoints)
    if job["mode"] == "finetune":
        import keras

        hp = HyperParameters.finetune(**({"epochs": job["epochs"]} if job.get("epochs") else {}))
        init = keras.models.load_model(parent_dir / storage.KERAS_NAME)
        budget = job.get("budget_seconds")
    else:
        hp = HyperParameters(**({"epochs": job["epochs"]} if job.get("epochs") else {}))
        init = None
        budget = job.get("budget_seconds", SCRATCH_DEFAULT_BUDGET_SECONDS)

    def progress(row: dict) -> None:
        if not math.isfinite(row["loss"]):
            raise TrainingDivergedError(
                f"training diverged at epoch {row['epoch']}: the loss is {row['loss']}"
            )
        _save_checkpoint(env, job_id, checkpoints)
        jobs.update(
            env.jobs_table,
            job_id,
            epoch=row["epoch"],
            epochs=row["epochs"],
            loss=row["loss"],
            accuracy=row["accuracy"],
            seconds_left=round(row["seconds_left"]),
        )
        log(
            f"job {job_id}: epoch {row['epoch']}/{row['epochs']} loss {row['loss']:.4f} "
            f"accuracy {row['accuracy']:.4f} about {row['seconds_left']:.0f}s left"
        )

    result = train(
        data.images,
        data.labels,
        checkpoints,
        hp,
        init_model=init,
        budget_seconds=budget,
        deadline=deadline - EXPORT_RESERVE_SECONDS,
        progress=progress,
    )
    if not result.finished:
        return CONTINUE
    return _finish(job_id, env, work, result, data, parent, parent_dir, user_manifest)


def _finish(job_id, env, work, result, data, parent, parent_dir, user_manifest) -> str:
    out = work / "out"
    model_path = save_run(
        result, out, data, source=env.base_train + " + training-data/", parent=parent, user_data=user_manifest
    )
    version = new_version()
    base_test = local_copy(env.base_test, work / "datasets")
    card = export_model(model_path, out, test_data=base_test, version=version, parent=parent)
    for name in (storage.TFLITE_NAME, storage.KERAS_NAME, storage.CARD_NAME):
        upload_file(env.s3, out / name, env.bucket, storage.model_key(version, name))
    decision = gate.check(card, _evaluate_parent(parent_dir, base_test))
    status = registry.ModelStatus.CANDIDATE if decision.passed else registry.ModelStatus.REJECTED
    registry.put_version(
        env.models_table, registry.version_item(card, status, "; ".join(decision.reasons) or None)
    )
    # loss and accuracy in the job are training progress; the verdict's figures are the test set's
    outcome = {
        "version": version,
        "test_accuracy": card["accuracy"],
        "test_per_class": card["per_class"],
        "gate": decision.to_json(),
    }
    if decision.passed:
        pointer = registry.read_pointer(env.models_table)
        registry.promote(env.models_table, version, expected_current=pointer.version if pointer else None)
        jobs.finish(env.jobs_table, job_id, "succeeded", promoted=True, **outcome)
    else:
        jobs.finish(env.jobs_table, job_id, "rejected", promoted=False, **outcome)
    shutil.rmtree(work, ignore_errors=True)
    return "succeeded" if decision.passed else "rejected"


def _parent(job: dict, env: Environment, work: Path) -> tuple[str, Path]:
    """The model the job starts from and is gated against: the version current when the job
    first ran (kept in the job record), downloaded to ``work/parent``; the shipped baseline when
    the registry names none."""
    version = job.get("parent_version")
    if version is None:
        pointer = registry.read_pointer(env.models_table)
        version = pointer.version if pointer else None
    baseline = baseline_card()["version"]
    if version is None or version == baseline:
        return baseline, BASELINE_DIR  # the image carries it, whether or not S3 has a copy
    target = work / "parent"
    target.mkdir(parents=True, exist_ok=True)
    for name in (storage.TFLITE_NAME, storage.KERAS_NAME, storage.CARD_NAME):
        if not (target / name).exists():
            download_file(env.s3, env.bucket, storage.model_key(version, name), target / name)
    return version, target


def _evaluate_parent(parent_dir: Path, base_test: Path) -> dict:
    """The parent's metrics on the same test set the candidate was just evaluated on, so the gate
    compares like with like even if the parent's card was measured on another copy of it."""
    test = load_dataset(base_test, "test")  # nosec B615  # classifier.datasets, not Hugging Face
    model = TFLiteModel.from_path(parent_dir / storage.TFLITE_NAME, num_threads=os.cpu_count() or 1)
    return {**metrics(predict_batched(model.predict, test.images), test.labels), "test_data": test.manifest()}


def _save_checkpoint(env: Environment, job_id: str, checkpoints: Path) -> None:
    """Upload the epoch file the state names, then the state (so S3 never names a missing file)."""
    state = json.loads((checkpoints / STATE_FILE).read_text())
    for name in (state["checkpoint"], STATE_FILE):
        upload_file(env.s3, checkpoints / name, env.bucket, storage.checkpoint_key(job_id, name))


def _restore_checkpoint(env: Environment, job_id: str, checkpoints: Path) -> None:
    if (checkpoints / STATE_FILE).exists():
        return  # same container as the last invocation: the local copy is current
    try:
        body = env.s3.get_object(Bucket=env.bucket, Key=storage.checkpoint_key(job_id, STATE_FILE))[
            "Body"
        ].read()
    except ClientError as error:
        if is_missing(error):
            return  # first invocation
        raise
    state = json.loads(body)
    checkpoints.mkdir(parents=True, exist_ok=True)
    download_file(
        env.s3,
        env.bucket,
        storage.checkpoint_key(job_id, state["checkpoint"]),
        checkpoints / state["checkpoint"],
    )
    (checkpoints / STATE_FILE).write_bytes(body)


def remaining_deadline(remaining_ms: int, safety_seconds: float = 30) -> float:
    return time.time() + remaining_ms / 1000 - safety_seconds
