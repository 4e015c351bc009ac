"""API keys and their roles: a key's usage plan is its role (clients' plan or operators' plan).

Two uses:

- ``register_local_keys``: the local API registers its keys in the API Gateway the storage endpoint
  serves (moto, or LocalStack), in the template's usage plans, so the functions look up a caller's
  role exactly as they do in AWS (``classifier.api.callers``: GetUsagePlans with the key id);
- ``python -m infra.api_keys add --role operator --name alice --stack cifar10`` (``make api-key``):
  add a key of either kind to a deployed stack, in one command, and print its value.
"""

import argparse
import hashlib
import secrets
from dataclasses import dataclass

import boto3

from infra.template import Template

ROLES = ("client", "operator")
PLAN_SUFFIX = {"client": "-clients", "operator": "-operators"}  # UsagePlanName: ${AWS::StackName}<suffix>


@dataclass(frozen=True)
class RegisteredKey:
    key_id: str  # what API Gateway puts in the request context (identity.apiKeyId): the records' owner
    role: str
    plan: str  # usage plan name


def new_key_value() -> str:
    """A key value like API Gateway's own (40 characters)."""
    return secrets.token_hex(20)


def register_local_keys(
    template: Template, region: str, keys: dict[str, list[str]]
) -> dict[str, RegisteredKey]:
    """Create the template's usage plans and ``keys`` (role -> values) in the current endpoint's API
    Gateway; return value -> registered key."""
    apigateway = boto3.client("apigateway", region_name=region)
    plans = {"client": template.client_plan, "operator": template.operator_plan}
    plan_ids = {}
    for role, plan in plans.items():
        if plan is not None:
            plan_ids[role] = apigateway.create_usage_plan(name=plan.name)["id"]
    registered = {}
    for role, values in keys.items():
        if role not in plan_ids:
            raise ValueError(f"The template has no usage plan for {role} keys.")
        for value in values:
            # The gateway checks the header itself; API Gateway only has to know the key's id and plan,
            # and refuses values under 20 characters, so it gets a digest of the value.
            digest = hashlib.sha256(value.encode()).hexdigest()[:40]
            created = apigateway.create_api_key(
                name=f"local-{role}-{len(registered)}", value=digest, enabled=True
            )
            apigateway.create_usage_plan_key(
                usagePlanId=plan_ids[role], keyId=created["id"], keyType="API_KEY"
            )
            registered[value] = RegisteredKey(key_id=created["id"], role=role, plan=plans[role].name)
    return registered


def add_key(stack: str, role: str, name: str, region: str | None = None) -> tuple[str, str]:
    """Create an enabled key named ``name`` in a deployed stack's plan for ``role``; (id, value)."""
    apigateway = boto3.client("apigateway", region_name=region)
    plan_name = stack + PLAN_SUFFIX[role]
    plans = [
        plan for page in apigateway.get_paginator("get_usage_plans").paginate() for plan in page["items"]
    ]
    plan = next((plan for plan in plans if plan["name"] == plan_name), None)
    if plan is None:
        raise SystemExit(f"No usage plan {plan_name!r}: is {stack!r} the stack's name?")
    key = apigateway.create_api_key(name=name, enabled=True, value=new_key_value())
    apigateway.create_usage_plan_key(usagePlanId=plan["id"], keyId=key["id"], keyType="API_KEY")
    return key["id"], key["value"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Add an API key of a role to a deployed stack.")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="create a key in the role's usage plan and print its value")
    add.add_argument("--role", choices=ROLES, required=True)
    add.add_argument("--name", required=True, help="who or what the key is for")
    add.add_argument("--stack", required=True, help="the stack name (samconfig.toml's stack_name)")
    add.add_argument("--region", default=None)
    args = parser.parse_args(argv)
    key_id, value = add_key(args.stack, args.role, args.name, args.region)
    print(f"{args.role} key {args.name!r}: id {key_id} (the owner of its records)\nx-api-key: {value}")


if __name__ == "__main__":
    main()
