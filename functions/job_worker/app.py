"""The batch job workers. ``lambda_handler``: the chunk queue's event source mapping (SQS, partial
batch responses), one chunk per message: read its entries with ranged GETs, classify, write its
part, count it once; the worker that counts the last chunk merges the results.
``dead_letter_handler``: the dead-letter queue's mapping, for chunks that failed every receive:
their images get an error line each and the job ends ``failed``."""

from classifier.coldstart import gc_paused

with gc_paused():  # the cold start's imports, without the collector: see classifier.coldstart
    import json

    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.metrics import MetricUnit
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from classifier.api import batch_jobs, model_provider
    from classifier.aws import TRACED_LIBRARIES, s3, table
    from classifier.metrics import Metric
    from classifier.settings import get_settings

logger = Logger()
tracer = Tracer(patch_modules=TRACED_LIBRARIES)
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)
dead_letters = BatchProcessor(event_type=EventType.SQS)


def run_chunk(record: SQSRecord) -> dict:
    message = json.loads(record.body)
    outcome = batch_jobs.run_chunk(
        message,
        table=table(get_settings().batch_jobs_table),
        s3=s3(),
        model=model_provider.current_model(),
    )
    logger.info("Chunk done", extra=outcome)
    metrics.add_metric(name=Metric.BATCH_JOB_IMAGES, unit=MetricUnit.Count, value=len(message["entries"]))
    if outcome["merged"]:
        metrics.add_metric(name=Metric.BATCH_JOBS_SUCCEEDED, unit=MetricUnit.Count, value=1)
    return outcome


def fail_chunk(record: SQSRecord) -> dict:
    message = json.loads(record.body)
    reason = f"the chunk failed on each of its {record.attributes.approximate_receive_count} receives"
    outcome = batch_jobs.fail_chunk(message, reason, table=table(get_settings().batch_jobs_table), s3=s3())
    logger.error("Chunk failed for good", extra=outcome)
    metrics.add_metric(name=Metric.BATCH_JOB_CHUNKS_FAILED, unit=MetricUnit.Count, value=1)
    if outcome["merged"]:
        metrics.add_metric(name=Metric.BATCH_JOBS_FAILED, unit=MetricUnit.Count, value=1)
    return outcome


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return process_partial_response(
        event=event, record_handler=run_chunk, processor=processor, context=context
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def dead_letter_handler(event: dict, context: LambdaContext) -> dict:
    return process_partial_response(
        event=event, record_handler=fail_chunk, processor=dead_letters, context=context
    )
