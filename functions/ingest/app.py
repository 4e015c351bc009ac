"""A zip landing under ``uploads/<id>/upload.zip`` (S3 "Object Created", delivered by EventBridge in
AWS, by the local API's S3 poller in ``make serve``) is checked entry by entry and its report
written to ``uploads/<id>/report.json``, which GET /training-data/uploads/{id} returns."""

from classifier.coldstart import gc_paused

with gc_paused():  # the cold start's imports, without the collector: see classifier.coldstart
    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.metrics import MetricUnit
    from aws_lambda_powertools.utilities.data_classes import S3Event
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from classifier.aws import TRACED_LIBRARIES, s3
    from classifier.metrics import Metric
    from classifier.mlops import training_data

logger = Logger()
tracer = Tracer(patch_modules=TRACED_LIBRARIES)
metrics = Metrics()


def uploaded_objects(event: dict) -> list[tuple[str, str]]:
    """(bucket, key) of each new object, from an EventBridge S3 event or an S3 notification."""
    if event.get("source") == "aws.s3":
        detail = event["detail"]
        return [(detail["bucket"]["name"], detail["object"]["key"])]
    return [(record.s3.bucket.name, record.s3.get_object.key) for record in S3Event(event).records]


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> list[dict]:
    reports = []
    for bucket, key in uploaded_objects(event):
        if training_data.upload_id_of(key) is None:
            logger.info("Not an upload; ignored", extra={"key": key})
            continue
        report = training_data.ingest_upload(s3(), bucket, key)
        logger.info(
            "Upload ingested", extra={"key": key, "status": report["status"], "counts": report["counts"]}
        )
        metrics.add_metric(
            name=Metric.UPLOAD_IMAGES_ACCEPTED,
            unit=MetricUnit.Count,
            value=report["counts"].get("accepted", 0),
        )
        reports.append(
            {"upload_id": report["upload_id"], "status": report["status"], "counts": report["counts"]}
        )
    return reports
