"""``shared/openapi.yaml`` is a valid OpenAPI document and describes exactly the template's routes."""

from pathlib import Path

import yaml
from openapi_spec_validator import validate

from infra.template import Template

REPO = Path(__file__).resolve().parents[2]
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def openapi() -> dict:
    return yaml.safe_load((REPO / "shared" / "openapi.yaml").read_text(encoding="utf-8"))


def test_the_document_is_valid_openapi():
    validate(openapi())


def test_the_document_and_the_template_have_the_same_routes():
    documented = {
        (method.upper(), path)
        for path, operations in openapi()["paths"].items()
        for method in operations
        if method in HTTP_METHODS
    }
    deployed = {(route.method, route.path) for route in Template(REPO / "template.yaml").routes}

    assert documented == deployed


def test_every_operation_needs_the_api_key_but_the_consoles_page_and_assets():
    documented = {
        (method.upper(), path): operation.get("security") != []
        for path, operations in openapi()["paths"].items()
        for method, operation in operations.items()
    }
    deployed = {
        (route.method, route.path): route.api_key_required
        for route in Template(REPO / "template.yaml").routes
    }

    assert documented == deployed
    assert {route for route, needs_key in deployed.items() if not needs_key} == {
        ("GET", "/"),
        ("GET", "/console/{proxy+}"),
    }


def test_every_operation_documents_403_and_429():
    document = openapi()
    assert document["security"] == [{"ApiKey": []}]
    assert document["components"]["securitySchemes"]["ApiKey"] == {
        **document["components"]["securitySchemes"]["ApiKey"],
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
    }
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert {"403", "429"} <= set(operation["responses"]), f"{method.upper()} {path}"
