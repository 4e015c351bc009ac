"""POST /predict/batch: classify up to 64 images in one model call (multipart ``files``, JSON ``images``)."""

from classifier.coldstart import gc_paused, on_snapstart

with gc_paused():  # the cold start's imports, without the collector: see classifier.coldstart
    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.logging import correlation_paths
    from aws_lambda_powertools.metrics import MetricUnit
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from classifier.api import bodies, callers, model_provider, predict, resolver, telemetry
    from classifier.aws import TRACED_LIBRARIES, table
    from classifier.metrics import Metric
    from classifier.settings import get_settings

logger = Logger()
tracer = Tracer(patch_modules=TRACED_LIBRARIES)
metrics = Metrics()
app = resolver.make_resolver(logger)
# With SnapStart on, the model is loaded before the snapshot and the registry re-read after a restore.
on_snapstart(before_snapshot=model_provider.before_snapshot, after_restore=model_provider.after_restore)


@app.post("/predict/batch")
@tracer.capture_method
def predict_batch() -> dict:
    event = app.current_event
    items = bodies.parse_images(resolver.body(event), resolver.content_type(event))
    top_k = bodies.parse_top_k(event.get_query_string_value("top_k"))
    result = predict.predict_batch(
        items,
        top_k=top_k,
        model=model_provider.current_model(),
        table=table(get_settings().predictions_table),
        owner=callers.key_id_of(event),
    )
    metrics.add_metric(name=Metric.PREDICTIONS, unit=MetricUnit.Count, value=result["succeeded"])
    metrics.add_metric(name=Metric.REJECTED_IMAGES, unit=MetricUnit.Count, value=result["failed"])
    metrics.add_metric(
        name=Metric.RECORDS_NOT_STORED, unit=MetricUnit.Count, value=0 if result["stored"] else 1
    )
    telemetry.publish_predictions(
        result["results"], result["model_version"], get_settings().low_confidence_threshold
    )
    return result


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
