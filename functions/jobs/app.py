"""POST /predict/jobs (202: a job and a presigned upload for its zip, or an operator's S3 prefix),
GET /predict/jobs (the caller's jobs, newest first) and GET /predict/jobs/{job_id} (progress, then
links to the results; a client only its own)."""

from classifier.coldstart import gc_paused

with gc_paused():  # the cold start's imports, without the collector: see classifier.coldstart
    import json

    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.event_handler import Response, content_types
    from aws_lambda_powertools.logging import correlation_paths
    from aws_lambda_powertools.metrics import MetricUnit
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from classifier.api import batch_jobs, bodies, callers, resolver
    from classifier.aws import TRACED_LIBRARIES, client, s3, table
    from classifier.metrics import Metric
    from classifier.payloads import parse_json_object
    from classifier.settings import get_settings

logger = Logger()
tracer = Tracer(patch_modules=TRACED_LIBRARIES)
metrics = Metrics()
app = resolver.make_resolver(logger)


def _start_split(job_id: str) -> None:
    """A job from an S3 prefix: the split function lists it, asynchronously (the listing of 100,000
    objects takes longer than an API request may)."""
    client("lambda").invoke(
        FunctionName=get_settings().batch_job_split_function,
        InvocationType="Event",
        Payload=json.dumps({"job_id": job_id}).encode(),
    )


@app.post("/predict/jobs")
@tracer.capture_method
def create_job() -> Response:
    event = app.current_event
    request = batch_jobs.parse_request(parse_json_object(resolver.body(event) if event.body else b""))
    # The role is looked up only when it matters (a source), so a client's upload costs no lookup.
    caller = callers.caller_of(event) if request["source"] is not None else None
    settings = get_settings()
    job = batch_jobs.create_job(
        table(settings.batch_jobs_table),
        s3(),
        settings.artifacts_bucket,
        request,
        owner=callers.key_id_of(event),
        is_operator=caller is not None and caller.is_operator,
        start_split=_start_split,
    )
    logger.info("Batch job created", extra={"job_id": job["job_id"], "status": job["status"]})
    metrics.add_metric(name=Metric.BATCH_JOBS_STARTED, unit=MetricUnit.Count, value=1)
    return Response(
        status_code=202,
        content_type=content_types.APPLICATION_JSON,
        body=job,
        headers={"Location": f"/predict/jobs/{job['job_id']}"},
    )


@app.get("/predict/jobs")
@tracer.capture_method
def list_jobs() -> dict:
    event = app.current_event
    settings = get_settings()
    return batch_jobs.list_jobs(
        table(settings.batch_jobs_table),
        s3(),
        settings.artifacts_bucket,
        owner=callers.key_id_of(event),
        limit=bodies.parse_limit(event.get_query_string_value("limit")),
        cursor=event.get_query_string_value("cursor"),
    )


@app.get("/predict/jobs/<job_id>")
@tracer.capture_method
def get_job(job_id: str) -> dict:
    caller = callers.caller_of(app.current_event)
    settings = get_settings()
    return batch_jobs.get_job(
        table(settings.batch_jobs_table),
        s3(),
        settings.artifacts_bucket,
        job_id,
        owner=None if caller.is_operator else caller.key_id,
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
