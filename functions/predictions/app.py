"""GET /predictions (the caller's own records newest first, ``limit`` and opaque ``cursor``, filters
``label``, ``has_feedback``, ``wrong``; operators see everyone's, or one ``owner``'s), GET
/predictions/{prediction_id} (a client only its own) and POST /predictions/{prediction_id}/feedback
(the true label, from the record's owner or an operator)."""

from classifier.coldstart import gc_paused

with gc_paused():  # the cold start's imports, without the collector: see classifier.coldstart
    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.logging import correlation_paths
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from classifier.api import bodies, callers, feedback, records, resolver
    from classifier.aws import TRACED_LIBRARIES, s3, table
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
    filters = bodies.parse_list_filter(
        event.get_query_string_value("label"),
        event.get_query_string_value("has_feedback"),
        event.get_query_string_value("wrong"),
    )
    return records.list_records(
        table(get_settings().predictions_table), limit=limit, cursor=cursor, owner=owner, filters=filters
    )


@app.get("/predictions/<prediction_id>")
@tracer.capture_method
def get_prediction(prediction_id: str) -> dict:
    caller = callers.caller_of(app.current_event)
    owner = None if caller.is_operator else caller.key_id
    return records.get_record(table(get_settings().predictions_table), prediction_id, owner=owner)


@app.post("/predictions/<prediction_id>/feedback")
@tracer.capture_method
def give_feedback(prediction_id: str) -> dict:
    event = app.current_event
    request = bodies.parse_feedback(resolver.body(event), resolver.content_type(event))
    settings = get_settings()
    outcome = feedback.give_feedback(
        table(settings.predictions_table),
        s3(),
        settings.artifacts_bucket,
        prediction_id,
        request,
        callers.caller_of(event),
    )
    feedback.emit_agreement(outcome)
    return outcome.answer


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
