"""Any OpenAPI document gives a draft that loads, or says why it has none."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.config.loader import check_rules_text
from gateway.learn.run import Learned, LearnFailed, LearnOptions, TextSource, learn

LITERALS = st.sampled_from(
    ["api", "v1", "pets", "a b", "café", "x.json", "a:b", "~", "*", "", "yes", "-", "%41"]
)
PARAMS = st.sampled_from(["id", "petId", "pet-id", "id:int", "rest", "1x", "a.b", "_", "é"])
SUFFIXES = st.sampled_from(["", ".json", "-x", ":cancel"])
TYPES = st.sampled_from(
    [{"type": "integer"}, {"type": "string", "format": "uuid"}, {"type": "string"}, {},
     {"type": ["integer", "null"]}, {"type": "int"}]
)  # fmt: skip
SEGMENT = st.one_of(
    LITERALS.map(lambda text: (text, None)),
    st.tuples(PARAMS, SUFFIXES, TYPES).map(lambda p: (f"{{{p[0]}}}{p[1]}", (p[0], p[2]))),
)
BODY = st.sampled_from(
    [None, {"properties": {"owner_id": {"type": "integer"}, "items": {"type": "array",
     "items": {"properties": {"id": {"type": "string", "format": "uuid"}}}}}},
     {"properties": {"x~/y_id": {"type": "integer"}}}, {"$ref": "#/nowhere"}]
)  # fmt: skip
OPERATION = st.tuples(
    st.sampled_from(["get", "put", "post", "delete", "patch", "head", "options", "trace"]), BODY
)
PATH = st.tuples(st.lists(SEGMENT, min_size=0, max_size=4), st.lists(OPERATION, max_size=3))


def document(paths: list[tuple[list[tuple[str, object]], list[tuple[str, object]]]]) -> str:
    doc: dict[str, object] = {"openapi": "3.0.0", "paths": {}}
    for segments, operations in paths:
        path = "/" + "/".join(text for text, _ in segments)
        params = [
            {"name": p[0], "in": "path", "schema": p[1]}
            for _, p in segments
            if isinstance(p, tuple)
        ]
        item: dict[str, object] = {"parameters": params}
        for method, body in operations:
            operation: dict[str, object] = {}
            if body is not None:
                content = {"application/json": {"schema": body}}
                operation["requestBody"] = {"content": content}
            item[method] = operation
        doc["paths"][path] = item  # type: ignore[index]
    return json.dumps(doc)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(PATH, min_size=1, max_size=6))
def test_any_document_gives_a_draft_that_loads(paths: list) -> None:  # type: ignore[type-arg]
    result = learn([], [TextSource("api.json", document(paths))], LearnOptions())
    if isinstance(result, LearnFailed):
        assert result.problems[0].startswith("nothing to learn"), result.problems
        return
    assert isinstance(result, Learned)
    ruleset, problems = check_rules_text(result.text, source="draft", env={})
    assert ruleset is not None, problems
