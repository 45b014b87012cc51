"""The OpenAPI 3.1 document of the admin API, written from the route table and its models.

Nothing here repeats a schema: bodies come from the pydantic models (JSON Schema 2020-12,
which OpenAPI 3.1 uses as is), parameters from the path templates and query models,
statuses from each ``Operation``.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from gateway import __version__
from gateway.api.operations import PREFIX, Api, Empty, Operation, Problem
from gateway.api.serve import CSRF_HEADER, TITLES

PARAMETER = re.compile(r"{(\w+)}")
REF = "#/components/schemas/{model}"


def openapi_document(api: Api) -> dict[str, Any]:
    """The whole document for ``api``'s operations."""
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(Problem, "serialization")]
    for op in api.operations:
        if op.body is not None:
            wanted.append((op.body, "validation"))
        if op.response is not None:
            wanted.append((op.response, "serialization"))
    refs, definitions = models_json_schema(wanted, ref_template=REF)
    schemas = {key[0].__name__ + ":" + key[1]: value for key, value in refs.items()}
    paths: dict[str, dict[str, Any]] = {}
    for op in api.operations:
        paths.setdefault(PREFIX + op.path, {})[op.method.lower()] = _operation(op, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Gatehold admin API",
            "version": __version__,
            "description": (
                "Authenticate with the session cookie (state changes also need the "
                f"{CSRF_HEADER} header with the token GET {PREFIX}/me returns) or an admin "
                "API key as `Authorization: Bearer ghk_…`. Errors are application/problem+json."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "__Host-gatehold"},
                "adminKey": {"type": "http", "scheme": "bearer"},
            },
        },
        "security": [{"session": []}, {"adminKey": []}],
    }


def _operation(op: Operation, schemas: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = {
        "operationId": op.name,
        "summary": op.summary,
        "responses": {str(status): _response(op, status, schemas) for status in op.statuses()},
    }
    parameters = _path_parameters(op) + _query_parameters(op.query)
    if op.changes:
        parameters.append(
            {
                "name": CSRF_HEADER,
                "in": "header",
                "required": False,
                "description": "Required with the session cookie: the csrf_token of GET /me"
                + (" (or of GET /shares, open to every signed-in person)." if op.people else "."),
                "schema": {"type": "string"},
            }
        )
    if parameters:
        document["parameters"] = parameters
    if op.body is not None:
        document["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schemas[f"{op.body.__name__}:validation"]}},
        }
    return document


def _response(op: Operation, status: int, schemas: dict[str, Any]) -> dict[str, Any]:
    if status != op.status:
        problem = schemas["Problem:serialization"]
        return {
            "description": TITLES.get(status, "Error"),
            "content": {"application/problem+json": {"schema": problem}},
        }
    if op.streams:
        return {
            "description": "; ".join(f"{media}: {what}" for media, what in op.streams.items()),
            "content": {media: {"schema": {"type": "string"}} for media in op.streams},
        }
    if op.response is None:
        return {"description": "Done"}
    return {
        "description": op.summary,
        "content": {
            "application/json": {"schema": schemas[f"{op.response.__name__}:serialization"]}
        },
    }


def _path_parameters(op: Operation) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 1}
            if name in op.integers
            else {"type": "string"},
        }
        for name in PARAMETER.findall(op.path)
    ]


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    if model is Empty:
        return []
    schema = model.model_json_schema(by_alias=True, ref_template=REF)
    required = set(schema.get("required", []))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": _optional(prop),
        }
        for name, prop in schema.get("properties", {}).items()
    ]


def _optional(prop: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema: an optional one is left out, never sent as null."""
    shown = {k: v for k, v in prop.items() if k not in ("title", "default")}
    branches = [b for b in shown.pop("anyOf", []) if b.get("type") != "null"]
    if len(branches) == 1:
        shown.update(branches[0])
    elif branches:
        shown["anyOf"] = branches
    return shown
