"""POST /predict: classify one image (raw image/*, multipart field ``file``, JSON ``{"image": base64}``)."""

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


@app.post("/predict")
@tracer.capture_method
def predict_image() -> dict:
    event = app.current_event
    image = bodies.parse_image(resolver.body(event), resolver.content_type(event))
    top_k = bodies.parse_top_k(event.get_query_string_value("top_k"))
    result = predict.predict_one(
        image,
        top_k=top_k,
        model=model_provider.current_model(),
        table=table(get_settings().predictions_table),
        owner=callers.key_id_of(event),
    )
    metrics.add_metric(name=Metric.PREDICTIONS, unit=MetricUnit.Count, value=1)
    metrics.add_metric(
        name=Metric.RECORDS_NOT_STORED, unit=MetricUnit.Count, value=0 if result["stored"] else 1
    )
    telemetry.publish_predictions([result], result["model_version"], get_settings().low_confidence_threshold)
    return result


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
