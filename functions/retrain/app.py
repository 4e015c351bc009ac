"""The retraining Lambda (container image with tensorflow-cpu): advance one job, then either
invoke itself again to continue (checkpoints are in S3) or stop with the job's verdict."""

from classifier.coldstart import gc_paused

with gc_paused():  # the cold start's imports, without the collector: see classifier.coldstart
    import json

    from aws_lambda_powertools import Logger, Tracer
    from aws_lambda_powertools.metrics import MetricUnit, single_metric
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from classifier import storage
    from classifier.aws import TRACED_LIBRARIES, client, s3, table
    from classifier.metrics import Metric
    from classifier.mlops import retrain
    from classifier.settings import get_settings

logger = Logger()
tracer = Tracer(patch_modules=TRACED_LIBRARIES)


def environment() -> retrain.Environment:
    settings = get_settings()
    bucket = settings.artifacts_bucket
    return retrain.Environment(
        s3=s3(),
        bucket=bucket,
        jobs_table=table(settings.jobs_table),
        models_table=table(settings.models_table),
        base_train=settings.base_train_data or storage.base_dataset_uri(bucket, storage.BASE_TRAIN_NAME),
        base_test=settings.base_test_data or storage.base_dataset_uri(bucket, storage.BASE_TEST_NAME),
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    job_id = event["job_id"]
    deadline = retrain.remaining_deadline(context.get_remaining_time_in_millis())
    try:
        status = retrain.run_job(job_id, environment(), deadline, log=logger.info)
    except Exception:
        # run_job has already marked the job failed with its reason; the alarm counts it here
        with single_metric(name=Metric.RETRAINING_JOBS_FAILED, unit=MetricUnit.Count, value=1):
            pass
        raise
    if status == retrain.CONTINUE:
        client("lambda").invoke(
            FunctionName=context.function_name,
            InvocationType="Event",
            Payload=json.dumps({"job_id": job_id}).encode(),
        )
        logger.info("Retraining continues in a new invocation", extra={"job_id": job_id})
    return {"job_id": job_id, "status": status}
