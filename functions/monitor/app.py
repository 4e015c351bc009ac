"""The monitor: on its schedule (EventBridge), the last window's drift, confidence and feedback
figures against the serving model's reference, written to S3 and published as metrics; on
GET /monitoring?hours=N (operators), the same figures for the window ending now."""

from classifier.coldstart import gc_paused

with gc_paused():  # the cold start's imports, without the collector: see classifier.coldstart
    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.logging import correlation_paths
    from aws_lambda_powertools.metrics import MetricUnit
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from classifier.api import callers, monitoring, resolver
    from classifier.aws import TRACED_LIBRARIES, s3, table
    from classifier.settings import get_settings

logger = Logger()
tracer = Tracer(patch_modules=TRACED_LIBRARIES)
metrics = Metrics()
app = resolver.make_resolver(logger)


def window_report(hours: float) -> dict:
    settings = get_settings()
    return monitoring.report(
        table(settings.predictions_table), table(settings.models_table), s3(), settings, hours=hours
    )


@app.get("/monitoring")
@tracer.capture_method
def monitoring_route() -> dict:
    callers.caller_of(app.current_event).require_operator("read the monitoring figures")
    hours = monitoring.parse_hours(
        app.current_event.get_query_string_value("hours"), get_settings().monitor_window_hours
    )
    return window_report(hours)


def scheduled() -> dict:
    """One window: its report in S3, its figures as metrics."""
    figures = window_report(get_settings().monitor_window_hours)
    key = monitoring.save(s3(), get_settings().artifacts_bucket, figures)
    for name, value in monitoring.window_metrics(figures).items():
        metrics.add_metric(name=name, unit=MetricUnit.NoUnit, value=value)
    logger.info(
        "Monitoring window",
        extra={"report_key": key, "drift": figures["drift"], "predictions": figures["predictions"]},
    )
    return {"report_key": key, "predictions": figures["predictions"], "drift": figures["drift"]}


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    if event.get("source") == "aws.events" or event.get("detail-type") == "Scheduled Event":
        return scheduled()
    return app.resolve(event, context)
