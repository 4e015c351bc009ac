"""S3 trigger: a zip uploaded under ``uploads/<id>/upload.zip`` is checked entry by entry and its
report written to ``uploads/<id>/report.json`` (GET /training-data/uploads/{id} returns it)."""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import S3Event, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from classifier import training_data
from classifier.aws import s3

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=S3Event)
def lambda_handler(event: S3Event, context: LambdaContext) -> list[dict]:
    reports = []
    for record in event.records:
        key = record.s3.get_object.key  # Powertools URL-decodes it
        report = training_data.ingest_upload(s3(), record.s3.bucket.name, key)
        logger.info("Upload ingested", extra={"key": key, "status": report["status"], "counts": report["counts"]})
        metrics.add_metric(name="UploadImagesAccepted", unit=MetricUnit.Count,
                           value=report["counts"].get("accepted", 0))
        reports.append({"upload_id": report["upload_id"], "status": report["status"], "counts": report["counts"]})
    return reports
