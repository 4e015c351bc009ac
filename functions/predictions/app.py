"""GET /predictions (the caller's own records newest first, ``limit`` and opaque ``cursor``; operators
see everyone's, or one ``owner``'s) and GET /predictions/{prediction_id} (a client only its own)."""

from classifier.coldstart import gc_paused

with gc_paused():  # the cold start's imports, without the collector: see classifier.coldstart
    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.logging import correlation_paths
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from classifier.api import bodies, callers, records, resolver
    from classifier.aws import TRACED_LIBRARIES, table
    from classifier.settings import get_settings

logger = Logger()
tracer = Tracer(patch_modules=TRACED_LIBRARIES)
metrics = Metrics()
app = resolver.make_resolver(logger)


@app.get("/predictions")
@tracer.capture_method
def list_predictions() -> dict:
    event = app.current_event
    limit = bodies.parse_limit(event.get_query_string_value("limit"))
    cursor = event.get_query_string_value("cursor")
    owner = bodies.parse_owner(callers.caller_of(event), event.get_query_string_value("owner"))
    return records.list_records(
        table(get_settings().predictions_table), limit=limit, cursor=cursor, owner=owner
    )


@app.get("/predictions/<prediction_id>")
@tracer.capture_method
def get_prediction(prediction_id: str) -> dict:
    caller = callers.caller_of(app.current_event)
    owner = None if caller.is_operator else caller.key_id
    return records.get_record(table(get_settings().predictions_table), prediction_id, owner=owner)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
