"""OpenAPI 2 (Swagger) and 3 documents → endpoints.

A document says what the app serves without a single request: each path and
operation becomes an endpoint, path parameters keep their names and get the type the
document declares (``integer`` → ``int``, ``format: uuid`` → ``uuid``, anything else a
plain segment), and ids are read from the declared parameters and request bodies:

* query parameters named like ids (``id``, ``*_id``, ``*Id``, ``*_ids``) or declared with
  ``format: uuid``;
* JSON request body fields named like ids whose type is ``integer`` or whose format is
  ``uuid`` (or a named id of type ``string``, as a slug), nested objects and arrays
  included (``/lines/*/product_id``), local ``$ref`` followed;
* form fields (``formData``, urlencoded or multipart bodies) named like ids.

Nothing is fetched: ``$ref`` to another file is left unread (and said so).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

import yaml

from gateway.jsonpointer import WILDCARD, PointerError, unparse
from gateway.jsonpointer import parse as parse_pointer
from gateway.learn.cluster import identifier, singular
from gateway.learn.evidence import Endpoint, IdField, MethodSeen, PathParam, QuerySeen

METHODS: Final = ("get", "put", "post", "delete", "patch", "head")
SKIPPED_METHODS: Final = ("options", "trace")
_MAX_DEPTH: Final = 6
_TEMPLATE_PARAM: Final = re.compile(r"\{([^{}/]+)\}")
_JSON_TYPE: Final = re.compile(r"application/(?:[\w.+-]+\+)?json", re.IGNORECASE)
_FORM_TYPES: Final = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass(slots=True)
class SpecRead:
    """The endpoints of a document, and what could not be used."""

    title: str = ""
    version: str = ""
    endpoints: list[Endpoint] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def parse_document(text: str, *, source: str) -> dict[str, Any] | str:
    """The document as a mapping (JSON or YAML), or why it is not one."""
    try:
        data = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except RecursionError:
        return f"{source}: nested too deeply to read"
    except (ValueError, yaml.YAMLError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else "unreadable"
        return f"{source}: neither JSON nor YAML: {first}"
    if not isinstance(data, dict):
        return f"{source}: not an OpenAPI document (no mapping at the top)"
    if not (
        str(data.get("swagger", "")).startswith("2") or str(data.get("openapi", ""))[:1] == "3"
    ):
        return f"{source}: not an OpenAPI document (no 'swagger: \"2.0\"' or 'openapi: 3.x')"
    if not isinstance(data.get("paths"), dict):
        return f"{source}: the document has no 'paths'"
    return data


def name_reads_as_id(name: str) -> bool:
    """``id``, ``invoice_id``, ``invoiceId``, ``invoice-id``, ``invoice_ids``."""
    snake = re.fullmatch(r"(?:.*[_-])?(?:ids?|uuid)", name, re.IGNORECASE)
    return bool(snake or re.fullmatch(r".*[a-z0-9](?:Ids?|Uuid)", name))


def resource_of(name: str, fallback: str) -> str:
    """``invoice_id`` → ``invoice``, ``relatedInvoiceId`` → ``related_invoice``;
    ``id`` → ``fallback``."""
    base = re.sub(r"(?:[_-]?(?:ids?|uuid)|Ids?)$", "", name, flags=re.IGNORECASE)
    base = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", base)
    return identifier(base) if base else fallback


def read_spec(data: Mapping[str, Any], *, source: str) -> SpecRead:
    """Every operation of a parsed document as an endpoint."""
    raw_info = data.get("info")
    info: Mapping[str, Any] = raw_info if isinstance(raw_info, dict) else {}
    read = SpecRead(title=str(info.get("title", "")), version=str(info.get("version", "")))
    refs = _Refs(data, read.problems)
    base = _base_path(data)
    for raw_path, item in data["paths"].items():
        if not isinstance(raw_path, str) or not isinstance(item, dict):
            continue
        item = refs.resolve(item)
        shared = item.get("parameters", [])
        for method in SKIPPED_METHODS:
            if method in item:
                read.problems.append(f"{source}: {method.upper()} {raw_path}: not routed")
        operations = [(m, item[m]) for m in METHODS if isinstance(item.get(m), dict)]
        if not operations:
            continue
        endpoint = _endpoint(base + raw_path if base else raw_path, shared, operations, refs)
        if isinstance(endpoint, str):
            read.problems.append(f"{source}: {raw_path}: {endpoint}")
        else:
            read.endpoints.append(endpoint)
    return read


def _base_path(data: Mapping[str, Any]) -> str:
    if "swagger" in data:
        base = data.get("basePath")
        return base.rstrip("/") if isinstance(base, str) and base.startswith("/") else ""
    servers = data.get("servers")
    if isinstance(servers, list) and servers and isinstance(servers[0], dict):
        url = servers[0].get("url")
        variables = servers[0].get("variables")
        if isinstance(url, str) and isinstance(variables, dict):
            for name, variable in variables.items():
                if isinstance(variable, dict) and isinstance(variable.get("default"), str):
                    url = url.replace(f"{{{name}}}", variable["default"])
        if isinstance(url, str) and "{" not in url:
            path = urlsplit(url).path if "//" in url else url
            return path.rstrip("/") if path.startswith("/") else ""
    return ""


class _Refs:
    """Local ``$ref`` (``#/components/schemas/X``, ``#/definitions/X``)."""

    def __init__(self, document: Mapping[str, Any], problems: list[str]) -> None:
        self.document = document
        self.problems = problems

    def resolve(self, value: Any, seen: frozenset[str] = frozenset()) -> Any:
        while isinstance(value, dict) and isinstance(value.get("$ref"), str):
            ref = value["$ref"]
            if ref in seen or not ref.startswith("#/"):
                if not ref.startswith("#/") and f"unread $ref {ref}" not in self.problems:
                    self.problems.append(f"unread $ref {ref}")
                return {}
            seen = seen | {ref}
            target: Any = self.document
            try:
                tokens = parse_pointer(ref[1:])
            except PointerError:
                return {}
            for token in tokens:
                target = target.get(token) if isinstance(target, dict) else None
            value = target if isinstance(target, dict) else {}
        return value


def _declared_type(param: Mapping[str, Any]) -> tuple[str, str]:
    """(type, format) of a parameter, from 2.0's fields or 3.x's ``schema``."""
    nested = param.get("schema")
    schema: Mapping[str, Any] = nested if isinstance(nested, dict) else param
    return _type_name(schema.get("type")), str(schema.get("format") or "")


def _type_name(declared: Any) -> str:
    """A schema's type; of 3.1's lists (``[integer, "null"]``) the one not null."""
    if isinstance(declared, list):
        declared = next((t for t in declared if t != "null"), "")
    return str(declared or "")


def _id_type(type_: str, format_: str) -> str:
    if type_ in ("integer", "int"):
        return "int"
    if format_ == "uuid":
        return "uuid"
    return ""


def _endpoint(
    path: str, shared: Any, operations: list[tuple[str, Any]], refs: _Refs
) -> Endpoint | str:
    declared: dict[str, str] = {}
    for _method, operation in operations:
        for param in _parameters(shared, operation, refs):
            if param.get("in") == "path" and isinstance(param.get("name"), str):
                declared.setdefault(param["name"], _id_type(*_declared_type(param)))
    template = _template(path, declared)
    if isinstance(template, str) and not template.startswith("/"):
        return template
    text, params = template if isinstance(template, tuple) else (template, [])
    literals = [s for s in text.split("/") if s and "{" not in s]
    fallback = identifier(singular(literals[-1])) if literals else "object"
    endpoint = Endpoint(text, params, query_known=True)
    for method, operation in operations:
        seen = endpoint.method(method.upper())
        seen.sources.add("openapi")
        seen.summary = str(operation.get("summary") or operation.get("operationId") or "")
        for param in _parameters(shared, operation, refs):
            _read_param(param, endpoint, seen, fallback, refs)
        body = refs.resolve(operation.get("requestBody"))
        if isinstance(body, dict) and isinstance(body.get("content"), dict):
            for media, content in body["content"].items():
                schema = content.get("schema") if isinstance(content, dict) else None
                if _JSON_TYPE.fullmatch(str(media).split(";")[0].strip()):
                    _walk(schema, (), seen.body_ids, fallback, refs, 0, frozenset())
                elif str(media).split(";")[0].strip().lower() in _FORM_TYPES:
                    _form_fields(schema, seen.form_ids, fallback, refs)
    return endpoint


def _template(path: str, declared: dict[str, str]) -> tuple[str, list[PathParam]] | str:
    """The rules template for a document path, or why it cannot be one."""
    if not path.startswith("/"):
        return "a path must start with '/'"
    params: list[PathParam] = []
    segments = []
    for segment in path.split("/"):
        names = _TEMPLATE_PARAM.findall(segment)
        if len(names) > 1:
            return "two parameters in one segment cannot be a rules template"
        if "{" in _TEMPLATE_PARAM.sub("", segment) or "}" in _TEMPLATE_PARAM.sub("", segment):
            return "a brace that opens no parameter"
        if names:
            original = names[0]
            name = (
                original
                if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", original)
                else identifier(original)
            )
            if name in {param.name for param in params}:
                return f"parameter {name!r} appears twice"
            type_ = declared.get(original, "")
            typed = f"{name}:{type_}" if type_ else name
            segment = segment.replace(f"{{{original}}}", f"{{{typed}}}")
            params.append(PathParam(name, type_))
        segments.append(segment)
    return "/".join(segments) or "/", params


def _parameters(shared: Any, operation: Mapping[str, Any], refs: _Refs) -> list[dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for group in (shared, operation.get("parameters", [])):
        if not isinstance(group, list):
            continue
        for raw in group:
            param = refs.resolve(raw)
            if isinstance(param, dict) and isinstance(param.get("name"), str):
                found[(str(param.get("in")), param["name"])] = param
    return list(found.values())


def _read_param(
    param: dict[str, Any], endpoint: Endpoint, seen_method: MethodSeen, fallback: str, refs: _Refs
) -> None:
    name, where = param["name"], param.get("in")
    type_, format_ = _declared_type(param)
    if where == "query":
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
            endpoint.skipped_names.append(name)
            return
        seen = endpoint.query.setdefault(name, QuerySeen())
        id_type = _id_type(type_, format_)
        seen.types.add(id_type or None)
        seen.declared_id = name_reads_as_id(name) or format_ == "uuid"
    elif where == "formData" and name_reads_as_id(name):
        id_type = _id_type(type_, format_) or "slug"
        seen_method.form_ids.append(IdField(name, resource_of(name, fallback), id_type))
    elif where == "body":
        _walk(param.get("schema"), (), seen_method.body_ids, fallback, refs, 0, frozenset())


def _walk(
    schema: Any,
    tokens: tuple[str, ...],
    out: list[IdField],
    fallback: str,
    refs: _Refs,
    depth: int,
    seen: frozenset[str],
) -> None:
    """Id fields of a JSON schema, as pointers (``*`` for array elements)."""
    if depth > _MAX_DEPTH or not isinstance(schema, dict):
        return
    if isinstance(schema.get("$ref"), str):
        if schema["$ref"] in seen:
            where = unparse(tokens)
            note = f"{schema['$ref']} refers to itself: ids under {where} are not proposed"
            if note not in refs.problems:
                refs.problems.append(note)
            return
        seen = seen | {schema["$ref"]}
    schema = refs.resolve(schema)
    for combined in ("allOf", "oneOf", "anyOf"):
        for part in schema.get(combined, []) if isinstance(schema.get(combined), list) else []:
            _walk(part, tokens, out, fallback, refs, depth + 1, seen)
    if schema.get("type") == "array" or "items" in schema:
        _walk(schema.get("items"), (*tokens, WILDCARD), out, fallback, refs, depth + 1, seen)
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return
    named = [token for token in tokens if token != WILDCARD]
    here = identifier(singular(named[-1])) if named else fallback
    for name, prop in properties.items():
        resolved = refs.resolve(prop)
        inner = (*tokens, str(name))
        if isinstance(resolved, dict) and name_reads_as_id(str(name)):
            type_, format_ = _type_name(resolved.get("type")), str(resolved.get("format") or "")
            id_type = _id_type(type_, format_) or ("slug" if type_ == "string" else "")
            if id_type:
                out.append(IdField(unparse(inner), resource_of(str(name), here), id_type))
                continue
        _walk(prop, inner, out, fallback, refs, depth + 1, seen)


def _form_fields(schema: Any, out: list[IdField], fallback: str, refs: _Refs) -> None:
    schema = refs.resolve(schema)
    properties = schema.get("properties") if isinstance(schema, dict) else None
    for name, prop in (properties or {}).items():
        if name_reads_as_id(str(name)) and re.fullmatch(r"[A-Za-z0-9_-]+", str(name)):
            prop = refs.resolve(prop)
            type_, format_ = _declared_type(prop if isinstance(prop, dict) else {})
            out.append(
                IdField(
                    str(name), resource_of(str(name), fallback), _id_type(type_, format_) or "slug"
                )
            )
