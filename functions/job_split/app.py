"""A batch job's zip landing under ``batch-jobs/<id>/upload.zip`` (S3 "Object Created", delivered
by EventBridge in AWS, by the local API's S3 poller in ``make serve``), or ``{"job_id": ...}`` from
the jobs API for a job from an S3 prefix: its entries are checked and sent to the queue in chunks.

``dead_letter_handler``: the split dead-letter queue's mapping. Lambda puts there, unchanged, an
event the split failed on every try, with the last error in its ``ErrorMessage`` attribute; each
job it names ends ``failed`` (``split_failed``) unless its chunks were queued since."""

from classifier.coldstart import gc_paused

with gc_paused():  # the cold start's imports, without the collector: see classifier.coldstart
    import json

    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.metrics import MetricUnit
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
    from aws_lambda_powertools.utilities.data_classes import S3Event
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from classifier import storage
    from classifier.api import batch_jobs
    from classifier.aws import TRACED_LIBRARIES, client, s3, table
    from classifier.metrics import Metric
    from classifier.settings import get_settings

logger = Logger()
tracer = Tracer(patch_modules=TRACED_LIBRARIES)
metrics = Metrics()
dead_letters = BatchProcessor(event_type=EventType.SQS)


def jobs_of(event: dict) -> list[str]:
    """The job ids an event names: an EventBridge S3 event, an S3 notification or a direct invoke."""
    if "job_id" in event:
        return [str(event["job_id"])]
    if event.get("source") == "aws.s3":
        keys = [event["detail"]["object"]["key"]]
    else:
        keys = [record.s3.get_object.key for record in S3Event(event).records]
    return [job_id for job_id in map(storage.batch_job_of_upload, keys) if job_id]


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> list[dict]:
    settings = get_settings()
    outcomes = []
    for job_id in jobs_of(event):
        outcome = batch_jobs.split_job(
            table(settings.batch_jobs_table),
            s3(),
            client("sqs"),
            settings.batch_job_queue_url,
            job_id,
            chunk_images=settings.batch_job_chunk_images,
        )
        logger.info("Batch job split", extra=outcome)
        if outcome["status"] == batch_jobs.FAILED:
            metrics.add_metric(name=Metric.BATCH_JOBS_FAILED, unit=MetricUnit.Count, value=1)
        outcomes.append(outcome)
    return outcomes


def fail_split(record: SQSRecord) -> list[dict]:
    """One dead-lettered split event. A body that names no job is raised, so the message stays in
    the queue (14 days) for a person to read."""
    job_ids = jobs_of(json.loads(record.body))
    if not job_ids:
        raise ValueError(f"The dead-lettered event names no batch job: {record.body[:200]!r}")
    error = record.message_attributes["ErrorMessage"]
    reason = (error.string_value if error else None) or "no error message was recorded"
    outcomes = []
    for job_id in job_ids:
        outcome = batch_jobs.fail_split(table(get_settings().batch_jobs_table), job_id, reason)
        logger.error("Batch job split failed on every try", extra={**outcome, "reason": reason})
        if outcome["status"] == batch_jobs.FAILED and "error" in outcome:
            metrics.add_metric(name=Metric.BATCH_JOBS_FAILED, unit=MetricUnit.Count, value=1)
        outcomes.append(outcome)
    return outcomes


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def dead_letter_handler(event: dict, context: LambdaContext) -> dict:
    return process_partial_response(
        event=event, record_handler=fail_split, processor=dead_letters, context=context
    )
