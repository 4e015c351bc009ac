"""The control plane: POST /retrain (202 + job id, 409 while one runs, ``Idempotency-Key`` honoured),
GET /retrain/{job_id}, GET /models, GET /models/{version}, POST /models/{version}/promote."""

from classifier.coldstart import gc_paused

with gc_paused():  # the cold start's imports, without the collector: see classifier.coldstart
    from functools import cache

    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.event_handler import Response, content_types
    from aws_lambda_powertools.logging import correlation_paths
    from aws_lambda_powertools.metrics import MetricUnit
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from classifier.api import callers, resolver
    from classifier.aws import TRACED_LIBRARIES, client, s3, table
    from classifier.errors import ConflictError
    from classifier.metrics import Metric
    from classifier.mlops import jobs, models
    from classifier.payloads import parse_json_object
    from classifier.settings import get_settings

logger = Logger()
tracer = Tracer(patch_modules=TRACED_LIBRARIES)
metrics = Metrics()
app = resolver.make_resolver(logger)
idempotency = IdempotencyConfig(expires_after_seconds=24 * 3600)


@app.post("/retrain")
@tracer.capture_method
def start_retraining() -> Response:
    event = app.current_event
    callers.caller_of(event).require_operator("start retraining")
    request = jobs.parse_request(parse_json_object(resolver.body(event) if event.body else b""))
    key = event.headers.get("idempotency-key")
    if key is None:
        job = _start_job(request)
    else:
        try:
            job = _idempotent_start()(request={"idempotency_key": key, **request})
        except IdempotencyAlreadyInProgressError as error:
            raise ConflictError("A request with this Idempotency-Key is still being processed.") from error
    return Response(
        status_code=202,
        content_type=content_types.APPLICATION_JSON,
        body=job,
        headers={"Location": f"/retrain/{job['job_id']}"},
    )


def _start_job(request: dict) -> dict:
    request = {k: v for k, v in request.items() if k != "idempotency_key"}
    settings = get_settings()
    job = jobs.start_job(table(settings.jobs_table), client("lambda"), settings.retrain_function, request)
    logger.info("Retraining job started", extra={"job_id": job["job_id"], "request": request})
    metrics.add_metric(name=Metric.RETRAINING_JOBS_STARTED, unit=MetricUnit.Count, value=1)
    return job


@cache
def _idempotent_start():
    persistence = DynamoDBPersistenceLayer(table_name=get_settings().idempotency_table)
    return idempotent_function(
        data_keyword_argument="request", persistence_store=persistence, config=idempotency
    )(_start_job)


@app.get("/retrain/<job_id>")
@tracer.capture_method
def retraining_job(job_id: str) -> dict:
    callers.caller_of(app.current_event).require_operator("read retraining jobs")
    return jobs.get_job(table(get_settings().jobs_table), job_id)


@app.get("/models")
@tracer.capture_method
def list_models() -> dict:
    return models.list_models(table(get_settings().models_table))


@app.get("/models/<version>")
@tracer.capture_method
def get_model(version: str) -> dict:
    settings = get_settings()
    return models.get_model(table(settings.models_table), s3(), settings.artifacts_bucket, version)


@app.post("/models/<version>/promote")
@tracer.capture_method
def promote(version: str) -> dict:
    """Promote a candidate, or roll back to an earlier version (``{"force": true}`` for a rejected one)."""
    callers.caller_of(app.current_event).require_operator("promote or roll back models")
    body = parse_json_object(resolver.body(app.current_event) if app.current_event.body else b"")
    result = models.promote(table(get_settings().models_table), version, force=body.get("force") is True)
    logger.info("Model promoted", extra={"version": version, "previous_version": result["previous_version"]})
    metrics.add_metric(name=Metric.PROMOTIONS, unit=MetricUnit.Count, value=1)
    return result


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    idempotency.register_lambda_context(context)
    return app.resolve(event, context)
