"""The local API behind ``make serve``: API Gateway and Lambda emulated from ``template.yaml``.

``LocalApi`` starts, in this order: S3 and DynamoDB (an in-process moto server, unless
``AWS_ENDPOINT_URL`` names other endpoints), the template's buckets and tables, a pool of worker
processes per function (``LocalLambda``), a Lambda Invoke endpoint for asynchronous invocations
(exported as ``AWS_ENDPOINT_URL_LAMBDA``), one warm worker per API function, S3 notifications by
polling, SQS event source mappings (``SqsPoller``), and the API on loopback. ``stop()`` undoes all of it, worker processes and environment
variables included, so tests can start and stop it freely.

Like Lambda's sandboxes, each worker runs one event at a time and belongs to one function: the
functions' environment variables and module state live in their workers, never in the server.
"""

import logging
import os
import threading
import urllib.request
from pathlib import Path

import boto3
from botocore.exceptions import ClientError

from infra.api_keys import new_key_value, register_local_keys
from infra.local_api.gateway import INTEGRATION_TIMEOUT_S, Gateway, KeyGrant
from infra.local_api.lambda_runtime import (
    DEFAULT_CONCURRENCY,
    QUEUE_WAIT_S,
    ASYNC_RETRY_DELAYS_S,
    LambdaInvokeApi,
    LocalLambda,
    S3Notifications,
    Schedules,
    SqsPoller,
)
from infra.local_api.sandbox import IDLE_S
from infra.local_api.server import ApiServer
from infra.moto_server import MOTO_CREDENTIALS
from infra.template import Template

logger = logging.getLogger("local_api")


class LocalApi:
    def __init__(
        self,
        template_path: str | Path = "template.yaml",
        *,
        host: str = "127.0.0.1",
        port: int = 3000,
        api_key: str | None = None,
        extra_api_keys: tuple[str, ...] = (),
        operator_api_key: str | None = None,
        extra_operator_api_keys: tuple[str, ...] = (),
        parameters: dict[str, str] | None = None,
        integration_timeout_s: float = INTEGRATION_TIMEOUT_S,
        s3_poll_interval_s: float = 1.0,
        sqs_visibility_timeout_s: float | None = None,
        schedule_interval_s: float = 0.0,
        bootstrap_data: str | Path | None = None,
        default_concurrency: int = DEFAULT_CONCURRENCY,
        queue_wait_s: float = QUEUE_WAIT_S,
        prewarm: bool = True,
        worker_idle_s: float | None = IDLE_S,
        async_retry_delays_s: tuple[float, ...] = ASYNC_RETRY_DELAYS_S,
    ):
        """``default_concurrency``: workers per function where the template reserves none
        (``ReservedConcurrentExecutions``). ``queue_wait_s``: how long a request waits for a busy
        function's free worker before it gets 429. ``prewarm``: start one worker per API function
        before serving, so the first requests are warm, and keep it. ``worker_idle_s``: how long an
        idle worker lives before it is stopped (None: until the server stops).
        ``async_retry_delays_s``: the waits before the retries of a failed asynchronous event (Lambda's
        1 and 2 minutes by default), after which it goes to the function's dead-letter queue."""
        self.region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.parameters = dict(parameters or {})
        self.template = Template(template_path, self.parameters, region=self.region)
        self.host = host
        self.port = port
        # Client keys and operator keys; each has its own buckets and quota, by its plan's figures.
        self.api_key = api_key or new_key_value()
        self.api_keys = {self.api_key, *extra_api_keys}
        self.operator_api_key = operator_api_key or new_key_value()
        self.operator_api_keys = {self.operator_api_key, *extra_operator_api_keys}
        self.key_grants: dict[str, KeyGrant] = {}
        self.integration_timeout_s = integration_timeout_s
        self.s3_poll_interval_s = s3_poll_interval_s
        # Event source mappings receive with the queue's visibility timeout unless this overrides it
        # (tests: a failed or killed chunk comes back in seconds, not minutes).
        self.sqs_visibility_timeout_s = sqs_visibility_timeout_s
        self.schedule_interval_s = schedule_interval_s  # 0: scheduled functions run only when invoked
        self.bootstrap_data = Path(bootstrap_data) if bootstrap_data else None
        self.default_concurrency = default_concurrency
        self.queue_wait_s = queue_wait_s
        self.prewarm = prewarm
        self.worker_idle_s = worker_idle_s
        self.async_retry_delays_s = async_retry_delays_s
        self._saved_environment: dict[str, str | None] = {}
        self._moto = None
        self._started: list = []

    @property
    def uses_moto(self) -> bool:
        return self._moto is not None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _setenv(self, values: dict[str, str], override: bool = True) -> None:
        for key, value in values.items():
            if not override and key in os.environ:
                continue
            self._saved_environment.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def start(self) -> "LocalApi":
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self._setenv({"AWS_DEFAULT_REGION": self.region}, override=False)
        if not os.environ.get("AWS_ENDPOINT_URL"):
            from moto.server import ThreadedMotoServer  # only when moto serves; never on a real endpoint

            self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            self._moto.start()
            host, port = self._moto.get_host_and_port()
            self._setenv(MOTO_CREDENTIALS, override=False)
            self._setenv({"AWS_ENDPOINT_URL": f"http://{host}:{port}"})
        self.storage_endpoint = os.environ["AWS_ENDPOINT_URL"]
        create_storage(self.template, self.region)
        self.key_grants = self._register_keys()
        if self.bootstrap_data is not None:
            self._bootstrap()

        api_functions = [route.function_id for route in self.template.routes]
        self.runtime = LocalLambda(
            self.template,
            self.region,
            self.parameters,
            default_concurrency=self.default_concurrency,
            queue_wait_s=self.queue_wait_s,
            keep_warm=api_functions if self.prewarm else (),
            idle_s=self.worker_idle_s,
            async_retry_delays_s=self.async_retry_delays_s,
        )
        self._started.append(self.runtime.close)
        self.lambda_api = LambdaInvokeApi(self.runtime, host="127.0.0.1")
        self._started.append(self._stop_lambda_api)
        self._lambda_thread = _serve_in_thread(self.lambda_api, "lambda-invoke-api")
        self._setenv({"AWS_ENDPOINT_URL_LAMBDA": self.lambda_api.url})
        if self.prewarm:  # workers copy the environment when they start: after the endpoints are set
            self.runtime.prewarm(api_functions)

        self.notifications = S3Notifications(self.runtime, self.s3_poll_interval_s)
        self.notifications.start()
        self._started.append(self.notifications.stop)
        self.sqs = SqsPoller(self.runtime, visibility_timeout_s=self.sqs_visibility_timeout_s)
        self.sqs.start()
        self._started.append(self.sqs.stop)
        self.schedules = Schedules(self.runtime, self.schedule_interval_s)
        self.schedules.start()
        self._started.append(self.schedules.stop)

        gateway = Gateway(
            self.template, self.runtime, self.key_grants, integration_timeout_s=self.integration_timeout_s
        )
        self.server = ApiServer(gateway, self.host, self.port)
        self.port = self.server.port
        self.server.start()
        self._started.append(self.server.stop)

    def _register_keys(self) -> dict[str, KeyGrant]:
        """Each key's id and usage plan. With moto, the keys and the template's plans are created in
        its API Gateway, so the functions find a caller's role as in AWS (GetUsagePlans by key id).
        On another endpoint nothing is created there: every key gets a local id and the clients'
        figures, and the functions see clients only."""
        keys = {"client": sorted(self.api_keys), "operator": sorted(self.operator_api_keys)}
        plans = {"client": self.template.client_plan, "operator": self.template.operator_plan}
        if self.uses_moto and all(plans.values()):
            registered = register_local_keys(self.template, self.region, keys)
            return {value: KeyGrant(key.key_id, plans[key.role]) for value, key in registered.items()}
        if self.template.operator_plan is None and self.template.usage_plans:
            logger.info("the template has no operators' plan: every key is a client's")
        return {
            value: KeyGrant(f"local-{role}-{index}", plans[role] or self.template.client_plan)
            for role, values in keys.items()
            for index, value in enumerate(values)
        }

    def _bootstrap(self) -> None:
        """The base datasets and the baseline model in S3, the baseline in the registry and
        current (what ``infra.bootstrap`` does for a deployed stack), so retraining, rollback to
        the baseline and the gate work locally as they do in AWS."""
        if not {"ModelsTable", "ArtifactsBucket"} <= set(self.template.resources):
            return  # a template without the registry (the tests' fixture template)
        from infra.bootstrap import bootstrap  # imports the classifier package: only when needed

        models = self.template.physical_name("ModelsTable")
        bucket = self.template.physical_name("ArtifactsBucket")
        data = self.bootstrap_data if (self.bootstrap_data / "cifar10-train.zip").is_file() else None
        if data is None:
            logger.warning(
                "no cifar10-train.zip in %s: retraining needs the base datasets", self.bootstrap_data
            )
        bootstrap(boto3.client("s3"), bucket, boto3.resource("dynamodb").Table(models), data, log=logger.info)

    def _stop_lambda_api(self) -> None:
        self.lambda_api.shutdown()
        self.lambda_api.server_close()
        self._lambda_thread.join(timeout=10)

    def stop(self) -> None:
        """Stop everything started, newest first, and put the environment back as it was."""
        while self._started:
            self._started.pop()()
        if self._moto is not None:
            # moto's backends are global to the process: without a reset, the next LocalApi started
            # in this process (the next test module) would see this one's objects and items
            reset = urllib.request.Request(f"{self.storage_endpoint}/moto-api/reset", method="POST")
            with urllib.request.urlopen(reset, timeout=10):  # nosec B310  # our own loopback server
                pass
            self._moto.stop()
            self._moto = None
        for key, value in self._saved_environment.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_environment.clear()

    def __enter__(self) -> "LocalApi":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _serve_in_thread(server: LambdaInvokeApi, name: str) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    return thread


def create_storage(template: Template, region: str) -> None:
    """The template's buckets (versioned, as declared), queues (redrive policies) and tables (key
    schemas, indexes), where they do not exist yet."""
    s3 = boto3.client("s3", region_name=region)
    for logical_id, name in template.buckets.items():
        try:
            if region == "us-east-1":
                s3.create_bucket(Bucket=name)
            else:
                s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
        except ClientError as error:
            if error.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
        versioning = template.resolve(template.resources[logical_id].get("Properties") or {}).get(
            "VersioningConfiguration"
        )
        if versioning:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration=versioning)
    sqs = boto3.client("sqs", region_name=region)
    for arguments in template.queues.values():  # dead-letter queues first
        sqs.create_queue(**arguments)
    dynamodb = boto3.client("dynamodb", region_name=region)
    for arguments in template.tables.values():
        try:
            dynamodb.create_table(**arguments)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceInUseException":
                raise
