"""POST /training-data (labelled images, or a presigned zip upload), GET /training-data (images per
label, base set beside user data), GET /training-data/uploads/{upload_id} (a zip's ingest report)."""

from classifier.coldstart import gc_paused

with gc_paused():  # the cold start's imports, without the collector: see classifier.coldstart
    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.event_handler import Response, content_types
    from aws_lambda_powertools.logging import correlation_paths
    from aws_lambda_powertools.metrics import MetricUnit
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from classifier.api import callers, resolver
    from classifier.aws import TRACED_LIBRARIES, s3
    from classifier.cards import baseline_card
    from classifier.mlops import bodies, training_data
    from classifier.metrics import Metric
    from classifier.settings import get_settings

logger = Logger()
tracer = Tracer(patch_modules=TRACED_LIBRARIES)
metrics = Metrics()
app = resolver.make_resolver(logger)


@app.post("/training-data")
@tracer.capture_method
def add_training_data() -> Response:
    event = app.current_event
    callers.caller_of(event).require_operator("add training data")
    request = bodies.parse_training_data(resolver.body(event), resolver.content_type(event))
    bucket = get_settings().artifacts_bucket
    if request.upload:
        return _json(201, training_data.create_upload(s3(), bucket))
    results = training_data.add_images(s3(), bucket, request.label, list(request.items))
    counts = {
        status: sum(r.status == status for r in results) for status in ("accepted", "duplicate", "rejected")
    }
    metrics.add_metric(name=Metric.TRAINING_IMAGES_ACCEPTED, unit=MetricUnit.Count, value=counts["accepted"])
    return _json(200, {"label": request.label, "counts": counts, "results": [r.to_json() for r in results]})


@app.get("/training-data")
@tracer.capture_method
def training_data_summary() -> dict:
    callers.caller_of(app.current_event).require_operator("read the training data")
    return training_data.summary(
        s3(), get_settings().artifacts_bucket, baseline_card()["training_data"]["counts"]
    )


@app.get("/training-data/uploads/<upload_id>")
@tracer.capture_method
def upload_report(upload_id: str) -> dict:
    callers.caller_of(app.current_event).require_operator("read upload reports")
    return training_data.upload_status(s3(), get_settings().artifacts_bucket, upload_id)


def _json(status: int, body: dict) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
