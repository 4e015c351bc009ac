"""``template.yaml`` as the local tools read it.

The local API, ``make invoke`` and the tests take routes, binary media types, the usage plan,
gateway responses, tables, buckets and function settings from here, so nothing the template
declares is copied elsewhere. CloudFormation intrinsics (``!Ref``, ``!Sub``, ``!GetAtt``,
``!FindInMap``, ``!If`` ...) resolve to local stand-ins: a resource's physical name is its
explicit name property when it has one, otherwise a name derived from its logical id.
"""

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

ACCOUNT_ID = "123456789012"
STACK_NAME = "local"
API_ID = "local"
DEFAULT_FUNCTION_TIMEOUT_S = 3.0  # Lambda's default when neither Globals nor the function set one


class TemplateError(Exception):
    """The template lacks something the local tools need, or uses an intrinsic they cannot resolve."""


# --- YAML with CloudFormation's short-form tags ---------------------------------------------------


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns ``!Ref x`` into ``{"Ref": x}`` and ``!Sub s`` into ``{"Fn::Sub": s}``."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_yaml(path: str | Path) -> dict:
    """A CloudFormation YAML file as plain data, short-form tags turned into long form."""
    with open(path, encoding="utf-8") as stream:
        return yaml.load(stream, Loader=_CfnLoader)  # noqa: S506 (a SafeLoader subclass)


# --- what the template declares, as the local tools use it ---------------------------------------


@dataclass(frozen=True)
class Route:
    method: str  # "POST"
    path: str  # "/predictions/{id}", the API Gateway resource path
    function_id: str  # logical id of the function that serves it
    api_key_required: bool

    @property
    def throttle_key(self) -> str:
        """The key a usage plan's ``ApiStages[].Throttle`` uses for this route: ``/predict/POST``."""
        return f"{self.path}/{self.method}"


@dataclass(frozen=True)
class Throttle:
    rate: float  # tokens (requests) per second
    burst: int  # bucket size


@dataclass(frozen=True)
class Quota:
    limit: int
    period: str  # DAY, WEEK or MONTH


@dataclass(frozen=True)
class UsagePlan:
    """One usage plan of the API: per-route buckets keyed like ``/predict/POST``, the plan-wide
    bucket for routes without one, and the quota. Its keys are one kind of caller."""

    logical_id: str
    name: str  # UsagePlanName, resolved (what OPERATOR_USAGE_PLAN names)
    route_throttles: dict[str, Throttle]
    throttle: Throttle | None
    quota: Quota | None


@dataclass(frozen=True)
class GatewayResponse:
    status_code: int | None
    templates: dict[str, str]
    headers: dict[str, str]


@dataclass(frozen=True)
class S3Trigger:
    function_id: str
    bucket: str  # physical (local) name
    events: tuple[str, ...]
    prefix: str
    suffix: str
    kind: str = "s3"  # "s3": a bucket notification; "eventbridge": an S3 event through EventBridge


@dataclass(frozen=True)
class SqsTrigger:
    """An SQS event source mapping: the local runtime's poller receives from ``queue`` (its local
    name) ``batch_size`` messages at a time, with at most ``max_concurrency`` invocations at once."""

    function_id: str
    queue: str  # physical (local) queue name
    batch_size: int = 10  # Lambda's default for a standard queue
    max_concurrency: int | None = None  # ScalingConfig.MaximumConcurrency; None: unbounded (the pool's limit)
    report_batch_item_failures: bool = False  # FunctionResponseTypes: [ReportBatchItemFailures]


@dataclass(frozen=True)
class Function:
    logical_id: str
    code_dir: Path  # the folder Lambda unpacks to /var/task
    handler: str  # "app.lambda_handler"
    timeout_s: float
    memory_mb: int
    environment: dict[str, str]
    layer_dirs: tuple[Path, ...] = field(default=())
    reserved_concurrency: int | None = None  # ReservedConcurrentExecutions: at most this many at once
    # DeadLetterQueue of Type SQS: the local name of the queue an asynchronous event goes to after
    # it failed on every try
    dead_letter_queue: str | None = None
    # EventInvokeConfig.MaximumRetryAttempts: retries of a failed asynchronous event (Lambda's default 2)
    async_retries: int = 2

    @property
    def module_file(self) -> Path:
        module, _ = self.handler.rsplit(".", 1)
        return self.code_dir / (module.replace(".", "/") + ".py")

    @property
    def handler_name(self) -> str:
        return self.handler.rsplit(".", 1)[1]


_NO_VALUE = object()  # AWS::NoValue: the property is dropped


class Template:
    """A parsed ``template.yaml`` with intrinsics resolved for a local run."""

    def __init__(
        self,
        path: str | Path,
        parameters: dict[str, str] | None = None,
        region: str = "us-east-1",
    ):
        self.path = Path(path).resolve()
        self.root = self.path.parent
        self.region = region
        self.doc = load_yaml(self.path)
        self.resources: dict[str, dict] = self.doc.get("Resources") or {}
        self.parameters = {
            name: str(spec.get("Default", "")) for name, spec in (self.doc.get("Parameters") or {}).items()
        }
        self.parameters.update(parameters or {})
        self._globals = self.doc.get("Globals") or {}

    # ---- intrinsics

    def resolve(self, value: Any) -> Any:
        """``value`` with every intrinsic function replaced by its local value."""
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self._ref(arg)
            if key == "Condition":
                return self.condition(arg)
            if key.startswith("Fn::"):
                return self._fn(key[4:], arg)
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not _NO_VALUE}

    def _fn(self, name: str, arg: Any) -> Any:
        if name == "Sub":
            return self._sub(arg)
        if name == "GetAtt":
            logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            return self.attribute(logical_id, self.resolve(attribute))
        if name == "FindInMap":
            mapping, top, second = (self.resolve(item) for item in arg)
            return self.doc["Mappings"][mapping][str(top)][str(second)]
        if name == "If":
            condition, when_true, when_false = arg
            return self.resolve(when_true if self.condition(condition) else when_false)
        if name == "Equals":
            left, right = (self.resolve(item) for item in arg)
            return str(left) == str(right)
        if name == "Not":
            return not self.resolve(arg[0])
        if name == "And":
            return all(self.resolve(item) for item in arg)
        if name == "Or":
            return any(self.resolve(item) for item in arg)
        if name == "Join":
            separator, items = arg
            return separator.join(str(item) for item in self.resolve(items))
        if name == "Select":
            index, items = arg
            return self.resolve(items)[int(self.resolve(index))]
        if name == "Split":
            separator, text = arg
            return self.resolve(text).split(separator)
        if name == "Base64":
            return self.resolve(arg)
        raise TemplateError(f"Fn::{name} has no local value")

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.doc["Conditions"][name]))

    def _ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::StackName": STACK_NAME,
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{ACCOUNT_ID}:stack/{STACK_NAME}/local",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NotificationARNs": [],
        }
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name.endswith(".Stage") and name[: -len(".Stage")] in self.resources:
            return self.stage_name  # SAM's `!Ref Api.Stage`
        if name in self.resources:
            if self.resources[name].get("Type") == "AWS::SQS::Queue":
                return self.queue_url(name)  # !Ref of a queue is its URL
            return self.physical_name(name)
        raise TemplateError(f"!Ref {name}: no such parameter or resource")

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

        def replace(match: re.Match) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and name.split(".", 1)[0] in self.resources and not name.endswith(".Stage"):
                return str(self.attribute(*name.split(".", 1)))
            return str(self._ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def physical_name(self, logical_id: str) -> str:
        """The name ``!Ref`` gives a resource locally: its explicit name, or one from its logical id."""
        resource = self.resources[logical_id]
        properties = resource.get("Properties") or {}
        kind = resource["Type"]
        for name_property in ("TableName", "BucketName", "FunctionName", "QueueName", "TopicName"):
            if name_property in properties:
                return str(self.resolve(properties[name_property]))
        if kind == "AWS::S3::Bucket":
            return f"{STACK_NAME}-{logical_id.lower()}"  # bucket names are lower case
        if kind == "AWS::Serverless::Api":
            return API_ID
        return logical_id

    def attribute(self, logical_id: str, attribute: str) -> str:
        kind = self.resources[logical_id]["Type"]
        name = self.physical_name(logical_id)
        arn = {
            "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{self.region}:{ACCOUNT_ID}:table/{name}",
            "AWS::S3::Bucket": f"arn:aws:s3:::{name}",
            "AWS::Serverless::Function": f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{name}",
            "AWS::SQS::Queue": f"arn:aws:sqs:{self.region}:{ACCOUNT_ID}:{name}",
        }.get(kind, f"arn:aws:local:{self.region}:{ACCOUNT_ID}:{logical_id}")
        if attribute == "Arn":
            return arn
        if attribute == "QueueName":
            return name
        if attribute == "QueueUrl":
            return self.queue_url(logical_id)
        if attribute == "StreamArn":
            return f"{arn}/stream/local"
        if attribute in ("DomainName", "RegionalDomainName"):
            return f"{name}.s3.{self.region}.amazonaws.com"
        return f"{arn}/{attribute}"

    # ---- the API

    def _of_type(self, kind: str) -> dict[str, dict]:
        return {logical_id: r for logical_id, r in self.resources.items() if r.get("Type") == kind}

    @cached_property
    def api_id(self) -> str:
        apis = self._of_type("AWS::Serverless::Api")
        if not apis:
            raise TemplateError("The template declares no AWS::Serverless::Api")
        return "Api" if "Api" in apis else next(iter(apis))

    @cached_property
    def api(self) -> dict:
        merged = dict(self._globals.get("Api") or {})
        merged.update(self.resources[self.api_id].get("Properties") or {})
        return merged

    @cached_property
    def stage_name(self) -> str:
        return str(self.resolve(self.api.get("StageName", "Prod")))

    @cached_property
    def binary_media_types(self) -> tuple[str, ...]:
        """As API Gateway reads them: ``image~1*`` in the template is ``image/*``."""
        return tuple(str(t).replace("~1", "/") for t in self.resolve(self.api.get("BinaryMediaTypes", [])))

    @cached_property
    def routes(self) -> tuple[Route, ...]:
        default_key_required = bool(self.resolve((self.api.get("Auth") or {}).get("ApiKeyRequired", False)))
        routes = []
        for function_id, resource in self._functions_resources().items():
            for event in (resource.get("Properties", {}).get("Events") or {}).values():
                if event.get("Type") != "Api":
                    continue
                properties = event.get("Properties") or {}
                api_ref = properties.get("RestApiId")
                if api_ref is not None and api_ref != {"Ref": self.api_id}:
                    continue
                key_required = (properties.get("Auth") or {}).get("ApiKeyRequired", default_key_required)
                method = str(properties["Method"]).upper()
                routes.append(Route(method, str(properties["Path"]), function_id, bool(key_required)))
        return tuple(routes)

    @cached_property
    def usage_plans(self) -> dict[str, UsagePlan]:
        """The API's usage plans by name, in template order (the first is the clients')."""
        local_api = self.physical_name(self.api_id)
        plans = {}
        for logical_id, resource in self._of_type("AWS::ApiGateway::UsagePlan").items():
            spec = self.resolve(resource.get("Properties") or {})
            stages = [stage for stage in spec.get("ApiStages", []) if stage.get("ApiId") == local_api]
            if not stages:
                continue
            throttles = {
                key: Throttle(float(value["RateLimit"]), int(value["BurstLimit"]))
                for stage in stages
                for key, value in (stage.get("Throttle") or {}).items()
            }
            plan_throttle, quota = spec.get("Throttle"), spec.get("Quota")
            name = str(spec.get("UsagePlanName") or logical_id)
            plans[name] = UsagePlan(
                logical_id=logical_id,
                name=name,
                route_throttles=throttles,
                throttle=Throttle(float(plan_throttle["RateLimit"]), int(plan_throttle["BurstLimit"]))
                if plan_throttle
                else None,
                quota=Quota(int(quota["Limit"]), str(quota.get("Period", "DAY"))) if quota else None,
            )
        return plans

    @property
    def client_plan(self) -> UsagePlan | None:
        """The plan of keys that are not operators' (the first plan not named by OPERATOR_USAGE_PLAN)."""
        operator = self.operator_plan
        return next((plan for plan in self.usage_plans.values() if plan is not operator), None)

    @property
    def operator_plan(self) -> UsagePlan | None:
        """The plan the functions' ``OPERATOR_USAGE_PLAN`` names, if any."""
        variables = self.resolve(
            ((self._globals.get("Function") or {}).get("Environment") or {}).get("Variables") or {}
        )
        name = variables.get("OPERATOR_USAGE_PLAN")
        return self.usage_plans.get(name) if name else None

    @property
    def route_throttles(self) -> dict[str, Throttle]:
        """The clients' per-key token buckets, keyed like ``/predict/POST``."""
        return self.client_plan.route_throttles if self.client_plan else {}

    @property
    def plan_throttle(self) -> Throttle | None:
        return self.client_plan.throttle if self.client_plan else None

    @property
    def quota(self) -> Quota | None:
        return self.client_plan.quota if self.client_plan else None

    @cached_property
    def stage_throttle(self) -> Throttle | None:
        """The stage's ``/*/*`` method settings: a cap per method across every caller."""
        for setting in self.resolve(self.api.get("MethodSettings", [])):
            if setting.get("ResourcePath") == "/*" and setting.get("HttpMethod") == "*":
                if "ThrottlingRateLimit" in setting:
                    return Throttle(
                        float(setting["ThrottlingRateLimit"]), int(setting["ThrottlingBurstLimit"])
                    )
        return None

    @cached_property
    def gateway_responses(self) -> dict[str, GatewayResponse]:
        responses = {}
        for kind, spec in self.resolve(self.api.get("GatewayResponses") or {}).items():
            status = spec.get("StatusCode")
            headers = (spec.get("ResponseParameters") or {}).get("Headers") or {}
            responses[kind] = GatewayResponse(
                int(status) if status else None,
                dict(spec.get("ResponseTemplates") or {}),
                {name: str(value).strip("'") for name, value in headers.items()},
            )
        return responses

    # ---- functions

    def _functions_resources(self) -> dict[str, dict]:
        return self._of_type("AWS::Serverless::Function")

    @cached_property
    def functions(self) -> dict[str, Function]:
        return {
            logical_id: self._function(logical_id, r) for logical_id, r in self._functions_resources().items()
        }

    def _function(self, logical_id: str, resource: dict) -> Function:
        defaults = self._globals.get("Function") or {}
        properties = {**defaults, **(resource.get("Properties") or {})}
        environment = dict(self.resolve((defaults.get("Environment") or {}).get("Variables") or {}))
        own = (resource.get("Properties") or {}).get("Environment") or {}
        environment.update(self.resolve(own.get("Variables") or {}))
        metadata = resource.get("Metadata") or {}
        if properties.get("PackageType") == "Image":
            # The handler module lives beside the Dockerfile; the CMD (or ImageConfig) names it.
            dockerfile = (
                self.root / metadata.get("DockerContext", ".") / metadata.get("Dockerfile", "Dockerfile")
            )
            code_dir = dockerfile.parent
            command = self.resolve((properties.get("ImageConfig") or {}).get("Command")) or _dockerfile_cmd(
                dockerfile
            )
            handler = command[0]
            context_dir = self.root / metadata.get("DockerContext", ".")
        else:
            code_dir = self.root / str(self.resolve(properties.get("CodeUri", ".")))
            handler = str(self.resolve(properties["Handler"]))
        layer_dirs = []
        if properties.get("PackageType") == "Image":
            # Packages the image copies into the task root import locally from their source folder.
            layer_dirs += [source.parent for source in _dockerfile_copied_packages(dockerfile, context_dir)]
        for layer in self.resolve(properties.get("Layers") or []):
            layer_resource = self.resources.get(str(layer))
            if layer_resource and layer_resource.get("Type") == "AWS::Serverless::LayerVersion":
                layer_dirs.append(self.root / str(layer_resource["Properties"]["ContentUri"]))
        return Function(
            logical_id=logical_id,
            code_dir=code_dir.resolve(),
            handler=handler,
            timeout_s=float(self.resolve(properties.get("Timeout", DEFAULT_FUNCTION_TIMEOUT_S))),
            memory_mb=int(self.resolve(properties.get("MemorySize", 128))),
            environment={key: str(value) for key, value in environment.items()},
            layer_dirs=tuple(path.resolve() for path in layer_dirs),
            reserved_concurrency=_optional_int(self.resolve(properties.get("ReservedConcurrentExecutions"))),
            dead_letter_queue=self._dead_letter_queue(properties),
            async_retries=int(
                self.resolve((properties.get("EventInvokeConfig") or {}).get("MaximumRetryAttempts", 2))
            ),
        )

    def _dead_letter_queue(self, properties: dict) -> str | None:
        target = self.resolve(properties.get("DeadLetterQueue") or {})
        if target.get("Type") != "SQS":
            return None  # none, or an SNS topic, which the local API does not stand in for
        return str(target["TargetArn"]).rsplit(":", 1)[-1]  # an ARN's last field is the name

    def function_by_name(self, name: str) -> Function | None:
        """A function by logical id, local physical name or ARN (what Lambda's Invoke accepts)."""
        name = name.split(":function:", 1)[-1].split(":", 1)[0]
        for logical_id in self.functions:
            if name in (logical_id, self.physical_name(logical_id)):
                return self.functions[logical_id]
        return None

    @cached_property
    def scheduled_functions(self) -> tuple[str, ...]:
        """Functions with a ``Schedule`` event (EventBridge schedules; the local API runs them on an
        interval of its own)."""
        return tuple(
            function_id
            for function_id, resource in self._functions_resources().items()
            if any(
                event.get("Type") == "Schedule"
                for event in (resource.get("Properties", {}).get("Events") or {}).values()
            )
        )

    @cached_property
    def s3_triggers(self) -> tuple[S3Trigger, ...]:
        triggers = []
        for function_id, resource in self._functions_resources().items():
            for event in (resource.get("Properties", {}).get("Events") or {}).values():
                if event.get("Type") == "EventBridgeRule":
                    trigger = self._eventbridge_s3_trigger(function_id, self.resolve(event["Properties"]))
                    triggers += [trigger] if trigger else []
                    continue
                if event.get("Type") != "S3":
                    continue
                properties = self.resolve(event["Properties"])
                rules = {
                    rule["Name"].lower(): rule["Value"]
                    for rule in ((properties.get("Filter") or {}).get("S3Key") or {}).get("Rules", [])
                }
                events = properties.get("Events", [])
                triggers.append(
                    S3Trigger(
                        function_id,
                        str(properties["Bucket"]),
                        tuple([events] if isinstance(events, str) else events),
                        rules.get("prefix", ""),
                        rules.get("suffix", ""),
                    )
                )
        return tuple(triggers)

    @staticmethod
    def _eventbridge_s3_trigger(function_id: str, properties: dict) -> S3Trigger | None:
        """An EventBridge rule on S3 "Object Created" events, as a polling trigger (bucket name and
        key prefix, or a key wildcard ``prefix*suffix``)."""
        pattern = properties.get("Pattern") or {}
        if "aws.s3" not in pattern.get("source", []) or "Object Created" not in pattern.get(
            "detail-type", []
        ):
            return None
        detail = pattern.get("detail") or {}
        (bucket,) = (detail.get("bucket") or {}).get("name", [""])[:1] or ("",)
        key_rule = ((detail.get("object") or {}).get("key") or [{}])[0]
        prefix, suffix = key_rule.get("prefix", ""), ""
        if "wildcard" in key_rule:
            prefix, _, suffix = key_rule["wildcard"].partition("*")
            suffix = suffix.rsplit("*", 1)[-1]
        return S3Trigger(
            function_id, str(bucket), ("s3:ObjectCreated:*",), prefix, suffix, kind="eventbridge"
        )

    @cached_property
    def sqs_triggers(self) -> tuple[SqsTrigger, ...]:
        """Every ``SQS`` event (an event source mapping) of every function."""
        triggers = []
        for function_id, resource in self._functions_resources().items():
            for event in (resource.get("Properties", {}).get("Events") or {}).values():
                if event.get("Type") != "SQS":
                    continue
                properties = self.resolve(event["Properties"])
                queue = str(properties["Queue"]).rsplit(":", 1)[-1]  # an ARN's last field is the name
                scaling = properties.get("ScalingConfig") or {}
                triggers.append(
                    SqsTrigger(
                        function_id,
                        queue,
                        batch_size=int(properties.get("BatchSize", 10)),
                        max_concurrency=_optional_int(scaling.get("MaximumConcurrency")),
                        report_batch_item_failures="ReportBatchItemFailures"
                        in (properties.get("FunctionResponseTypes") or []),
                    )
                )
        return tuple(triggers)

    def queue_url(self, logical_id: str) -> str:
        """A queue's URL as moto (and SQS) name it; the SQS API takes the queue's name from its last part."""
        return f"https://sqs.{self.region}.amazonaws.com/{ACCOUNT_ID}/{self.physical_name(logical_id)}"

    # ---- storage

    @cached_property
    def queues(self) -> dict[str, dict]:
        """``create_queue`` arguments for every SQS queue, keyed by logical id, dead-letter queues
        first (a redrive policy names an existing queue)."""
        queues = {}
        for logical_id, resource in self._of_type("AWS::SQS::Queue").items():
            properties = self.resolve(resource.get("Properties") or {})
            attributes = {
                name: json.dumps(properties[name])
                if isinstance(properties[name], dict)
                else str(properties[name])
                for name in ("VisibilityTimeout", "MessageRetentionPeriod", "RedrivePolicy", "DelaySeconds")
                if name in properties
            }
            queues[logical_id] = {"QueueName": self.physical_name(logical_id), "Attributes": attributes}
        return dict(sorted(queues.items(), key=lambda item: "RedrivePolicy" in item[1]["Attributes"]))

    @cached_property
    def tables(self) -> dict[str, dict]:
        """``create_table`` arguments for every DynamoDB table, keyed by logical id."""
        tables = {}
        for logical_id, resource in self._of_type("AWS::DynamoDB::Table").items():
            properties = self.resolve(resource.get("Properties") or {})
            arguments = {
                "TableName": self.physical_name(logical_id),
                "KeySchema": properties["KeySchema"],
                "AttributeDefinitions": properties["AttributeDefinitions"],
                "BillingMode": "PAY_PER_REQUEST",
            }
            for index_kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
                if properties.get(index_kind):
                    arguments[index_kind] = [
                        {key: value for key, value in index.items() if key != "ProvisionedThroughput"}
                        for index in properties[index_kind]
                    ]
            tables[logical_id] = arguments
        return tables

    @cached_property
    def buckets(self) -> dict[str, str]:
        """Physical (local) bucket names, keyed by logical id."""
        return {logical_id: self.physical_name(logical_id) for logical_id in self._of_type("AWS::S3::Bucket")}


def _optional_int(value: Any) -> int | None:
    return None if value is None or value is _NO_VALUE else int(value)


def dockerfile_copies(dockerfile: Path) -> list[tuple[str, str]]:
    """(source, destination) of every COPY line, sources relative to the build context."""
    copies = []
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        words = line.split()
        if words and words[0].upper() == "COPY":
            arguments = [word for word in words[1:] if not word.startswith("--")]
            copies += [(source, arguments[-1]) for source in arguments[:-1]]
    return copies


def _dockerfile_copied_packages(dockerfile: Path, context_dir: Path) -> list[Path]:
    return [
        (context_dir / source).resolve()
        for source, _ in dockerfile_copies(dockerfile)
        if (context_dir / source / "__init__.py").is_file()
    ]


def _dockerfile_cmd(dockerfile: Path) -> list[str]:
    for line in reversed(dockerfile.read_text(encoding="utf-8").splitlines()):
        if line.strip().upper().startswith("CMD"):
            return json.loads(line.strip()[3:])
    raise TemplateError(f"{dockerfile} has no CMD naming the handler")
