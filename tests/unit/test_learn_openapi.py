"""OpenAPI 2 and 3 documents: templates, typed path parameters, ids in queries and bodies."""

from __future__ import annotations

import json
from typing import Any

from gateway.learn.evidence import Endpoint, IdField
from gateway.learn.openapi import name_reads_as_id, parse_document, read_spec, resource_of

OAS3 = """
openapi: 3.0.3
info: {title: Shop, version: "1.2"}
servers: [{url: "https://shop.example/api/v1"}]
paths:
  /orders:
    get:
      summary: List orders
      parameters:
        - {name: customer_id, in: query, schema: {type: integer}}
        - {name: page, in: query, schema: {type: integer}}
        - {name: "filter[x]", in: query, schema: {type: string}}
    post:
      requestBody:
        content:
          application/json:
            schema: {$ref: "#/components/schemas/NewOrder"}
  /orders/{orderId}:
    parameters:
      - {name: orderId, in: path, required: true, schema: {type: string, format: uuid}}
    get: {summary: One order}
    delete: {}
    options: {}
  /orders/{orderId}/invoice.{ext}:
    get:
      parameters:
        - {name: orderId, in: path, schema: {type: string, format: uuid}}
        - {name: ext, in: path, schema: {type: string}}
  /notes:
    post:
      requestBody:
        content:
          application/x-www-form-urlencoded:
            schema:
              properties:
                order_id: {type: integer}
                text: {type: string}
components:
  schemas:
    NewOrder:
      type: object
      properties:
        customer_id: {type: integer}
        coupon: {type: string}
        lines:
          type: array
          items: {$ref: "#/components/schemas/Line"}
        relatedOrderId: {type: string, format: uuid}
        parent: {$ref: "#/components/schemas/NewOrder"}
    Line:
      properties:
        product_id: {type: integer}
        id: {type: integer}
        qty: {type: integer}
"""


def spec(text: str) -> dict[str, Endpoint]:
    data = parse_document(text, source="spec")
    assert isinstance(data, dict), data
    return {e.template: e for e in read_spec(data, source="spec").endpoints}


def test_openapi_3_templates_types_and_base_path() -> None:
    found = spec(OAS3)
    assert set(found) == {
        "/api/v1/orders",
        "/api/v1/orders/{orderId:uuid}",
        "/api/v1/orders/{orderId:uuid}/invoice.{ext}",
        "/api/v1/notes",
    }
    one = found["/api/v1/orders/{orderId:uuid}"]
    assert set(one.methods) == {"GET", "DELETE"}, "OPTIONS is not routed"
    assert one.methods["GET"].summary == "One order"


def test_openapi_3_query_and_body_ids() -> None:
    data = parse_document(OAS3, source="spec")
    assert isinstance(data, dict)
    read = read_spec(data, source="spec")
    assert read.problems == [
        "#/components/schemas/NewOrder refers to itself: ids under /parent are not proposed",
        "spec: OPTIONS /orders/{orderId}: not routed",
    ]
    orders = spec(OAS3)["/api/v1/orders"]
    assert orders.query["customer_id"].declared_id
    assert not orders.query["page"].declared_id
    assert orders.skipped_names == ["filter[x]"]
    assert orders.methods["POST"].body_ids == [
        IdField("/customer_id", "customer", "int"),
        IdField("/lines/*/product_id", "product", "int"),
        IdField("/lines/*/id", "line", "int"),
        IdField("/relatedOrderId", "related_order", "uuid"),
    ], "a schema that refers to itself (/parent) is read once: its ids are for a person to add"


def test_openapi_3_form_ids() -> None:
    notes = spec(OAS3)["/api/v1/notes"]
    assert notes.methods["POST"].form_ids == [IdField("order_id", "order", "int")]


SWAGGER: dict[str, Any] = {
    "swagger": "2.0",
    "basePath": "/",
    "info": {"title": "Pets", "version": "1"},
    "paths": {
        "/pets/{petId}": {
            "get": {"parameters": [{"name": "petId", "in": "path", "type": "integer"}]},
            "put": {
                "parameters": [
                    {"name": "petId", "in": "path", "type": "integer"},
                    {"name": "body", "in": "body", "schema": {"$ref": "#/definitions/Pet"}},
                ]
            },
        },
        "/pets/{a}-{b}": {"get": {}},
        "pets": {"get": {}},
        "/pets/{id}/toys/{id}": {"get": {}},
        "/upload": {
            "post": {"parameters": [{"name": "owner_id", "in": "formData", "type": "integer"}]}
        },
        "/status/{codes}": {"get": {"parameters": [{"name": "codes", "in": "path"}]}},
        "/bytes/{n}": {"get": {"parameters": [{"name": "n", "in": "path", "type": "int"}]}},
    },
    "definitions": {"Pet": {"properties": {"owner_id": {"type": "integer"}, "name": {}}}},
}


def test_swagger_2_paths_body_and_form_ids() -> None:
    data = parse_document(json.dumps(SWAGGER), source="swagger.json")
    assert isinstance(data, dict)
    read = read_spec(data, source="swagger.json")
    found = {e.template: e for e in read.endpoints}
    assert set(found) == {"/pets/{petId:int}", "/upload", "/status/{codes}", "/bytes/{n:int}"}
    assert found["/pets/{petId:int}"].methods["PUT"].body_ids == [
        IdField("/owner_id", "owner", "int")
    ]
    assert found["/upload"].methods["POST"].form_ids == [IdField("owner_id", "owner", "int")]
    assert read.problems == [
        "swagger.json: /pets/{a}-{b}: two parameters in one segment cannot be a rules template",
        "swagger.json: pets: a path must start with '/'",
        "swagger.json: /pets/{id}/toys/{id}: parameter 'id' appears twice",
    ]


def test_documents_that_are_not_openapi() -> None:
    assert parse_document("{not json", source="x") == (
        "x: neither JSON nor YAML: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)"
    )
    assert parse_document("- a\n- b\n", source="x") == (
        "x: not an OpenAPI document (no mapping at the top)"
    )
    assert "no 'swagger" in str(parse_document("title: x\n", source="x"))
    assert parse_document("openapi: 3.1.0\n", source="x") == "x: the document has no 'paths'"
    assert "neither JSON nor YAML" in str(parse_document("a: [\n", source="x"))
    assert parse_document("[" * 100_000, source="x") == "x: nested too deeply to read"
    deep = "{" + '"a": {' * 100_000
    assert parse_document(deep, source="x") == "x: nested too deeply to read"


def test_a_reference_cycle_and_a_foreign_ref_end() -> None:
    doc = {
        "openapi": "3.0.0",
        "paths": {
            "/a": {
                "post": {
                    "requestBody": {
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/A"}}
                        }
                    }
                },
                "put": {"requestBody": {"$ref": "other.yaml#/Body"}},
            }
        },
        "components": {"schemas": {"A": {"properties": {"a": {"$ref": "#/components/schemas/A"}}}}},
    }
    read = read_spec(doc, source="s")
    assert read.endpoints[0].methods["POST"].body_ids == []
    assert sorted(read.problems) == [
        "#/components/schemas/A refers to itself: ids under /a are not proposed",
        "unread $ref other.yaml#/Body",
    ]


def test_id_names() -> None:
    assert all(
        map(name_reads_as_id, ["id", "invoice_id", "invoiceId", "invoice-id", "ids", "uuid"])
    )
    assert not any(map(name_reads_as_id, ["paid", "valid", "idea", "width", "page"]))
    assert resource_of("invoice_id", "x") == "invoice"
    assert resource_of("relatedInvoiceId", "x") == "related_invoice"
    assert resource_of("id", "thing") == "thing"


def test_server_variables_and_openapi_3_1_type_lists() -> None:
    doc = {
        "openapi": "3.1.0",
        "servers": [{"url": "https://{host}/{base}", "variables": {
            "host": {"default": "api.example"}, "base": {"default": "v3"}}}],
        "paths": {"/pets/{id}": {"get": {"parameters": [
            {"name": "id", "in": "path", "schema": {"type": ["integer", "null"]}}]}}},
    }  # fmt: skip
    (endpoint,) = read_spec(doc, source="s").endpoints
    assert endpoint.template == "/v3/pets/{id:int}"
