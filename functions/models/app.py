"""The control plane: POST /retrain (202 + job id, 409 while one runs, ``Idempotency-Key`` honoured),
GET /retrain/{job_id}, GET /models, GET /models/{version}, POST /models/{version}/promote."""

from classifier.coldstart import gc_paused

with gc_paused():  # the cold start's imports, without the collector: see classifier.coldstart
    import json
    from functools import cache

    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.event_handler import Response, content_types
    from aws_lambda_powertools.logging import correlation_paths
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from classifier import api, http, jobs, registry, storage
    from classifier.aws import TRACED_LIBRARIES, client, s3, table
    from classifier.errors import ConflictError
    from classifier.runtime import BASELINE_DIR
    from classifier.settings import get_settings

logger = Logger()
tracer = Tracer(patch_modules=TRACED_LIBRARIES)
metrics = Metrics()
app = api.make_resolver(logger)
idempotency = IdempotencyConfig(expires_after_seconds=24 * 3600)


@app.post("/retrain")
@tracer.capture_method
def start_retraining() -> Response:
    event = app.current_event
    request = jobs.parse_request(http.parse_json_object(api.body(event) if event.body else b""))
    key = event.headers.get("idempotency-key")
    if key is None:
        job = _start_job(request)
    else:
        try:
            job = _idempotent_start()(request={"idempotency_key": key, **request})
        except IdempotencyAlreadyInProgressError as error:
            raise ConflictError("A request with this Idempotency-Key is still being processed.") from error
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body=job,
                    headers={"Location": f"/retrain/{job['job_id']}"})


def _start_job(request: dict) -> dict:
    request = {k: v for k, v in request.items() if k != "idempotency_key"}
    settings = get_settings()
    job = jobs.create_job(table(settings.jobs_table), request)
    client("lambda").invoke(FunctionName=settings.retrain_function, InvocationType="Event",
                     Payload=json.dumps({"job_id": job["job_id"]}).encode())
    logger.info("Retraining job started", extra={"job_id": job["job_id"], "request": request})
    return job


@cache
def _idempotent_start():
    persistence = DynamoDBPersistenceLayer(table_name=get_settings().idempotency_table)
    return idempotent_function(data_keyword_argument="request", persistence_store=persistence,
                               config=idempotency)(_start_job)


@app.get("/retrain/<job_id>")
@tracer.capture_method
def retraining_job(job_id: str) -> dict:
    return jobs.get_job(table(get_settings().jobs_table), job_id)


@app.get("/models")
@tracer.capture_method
def list_models() -> dict:
    models = table(get_settings().models_table)
    pointer = registry.read_pointer(models)
    versions = registry.list_versions(models)
    baseline = _baseline_card()
    if not any(v["version"] == baseline["version"] for v in versions):
        versions.append(_baseline_entry(baseline))
    current = pointer.version if pointer else baseline["version"]
    for version in versions:
        version["current"] = version["version"] == current
    return {"current_version": current, "versions": versions}


@app.get("/models/<version>")
@tracer.capture_method
def get_model(version: str) -> dict:
    baseline = _baseline_card()
    models = table(get_settings().models_table)
    if version == baseline["version"]:
        entry = _baseline_entry(baseline)
        card = baseline
    else:
        entry = registry.get_version(models, version)
        card_object = s3().get_object(Bucket=get_settings().artifacts_bucket, Key=storage.model_key(version, storage.CARD_NAME))
        card = json.loads(card_object["Body"].read())
    pointer = registry.read_pointer(models)
    return {**entry, "current": version == (pointer.version if pointer else baseline["version"]), "card": card}


@app.post("/models/<version>/promote")
@tracer.capture_method
def promote(version: str) -> dict:
    """Promote a candidate, or roll back to an earlier version. A version the gate rejected needs
    ``{"force": true}``: overriding the gate is deliberate, never an accident."""
    event = app.current_event
    body = http.parse_json_object(api.body(event) if event.body else b"")
    models = table(get_settings().models_table)
    target = registry.get_version(models, version)
    if target["status"] == registry.ModelStatus.REJECTED and body.get("force") is not True:
        raise ConflictError(f"{version} was rejected by the gate ({target.get('reason', 'no reason recorded')}); "
                            'send {"force": true} to promote it anyway.')
    pointer = registry.read_pointer(models)
    previous = pointer.version if pointer else _baseline_card()["version"]
    registry.promote(models, version, expected_current=pointer.version if pointer else None)
    logger.info("Model promoted", extra={"version": version, "previous_version": previous})
    return {"current_version": version, "previous_version": previous}


@cache
def _baseline_card() -> dict:
    return json.loads((BASELINE_DIR / storage.CARD_NAME).read_text())


def _baseline_entry(card: dict) -> dict:
    entry = registry.version_item(card, registry.ModelStatus.BASELINE)
    return {**entry, "tflite_key": "(shipped in the layer)", "card_key": "(shipped in the layer)"}


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    idempotency.register_lambda_context(context)
    return app.resolve(event, context)
