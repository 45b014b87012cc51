"""``/registry`` in the admin API: set, move, show, remove, import; refusals are 4xx."""

from __future__ import annotations

from pathlib import Path

from gateway.app import ENGINE
from gateway.store import registry as registry_store
from tests.support.admin_api import api_rows, as_person
from tests.support.stack import running_stack

SUPER = "admin@example.test"
CAROL = "carol@acme.test"


async def test_owners_are_set_moved_shown_and_removed_by_whoever_may(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        engine = stack.app[ENGINE]
        admin = await as_person(stack, SUPER)
        carol = await as_person(stack, CAROL)  # administers acme only

        made = await admin.call("PUT", "/registry/report/r-1", {"tenant": "acme"})
        assert made.status == 200, made.body
        assert made.body == {
            "resource_type": "report",
            "object_id": "r-1",
            "before": None,
            "after": "acme",
        }
        shown = await carol.get("/registry/report/r-1")
        assert shown.status == 200 and shown.body["tenant"] == "acme"
        await admin.call("PUT", "/registry/report/r-2", {"tenant": "globex"})

        # Carol sees and touches nothing of globex, and hands nothing to it.
        assert (await carol.get("/registry/report/r-2")).status == 404
        for method, path, body in (
            ("PUT", "/registry/report/r-2", {"tenant": "acme"}),
            ("DELETE", "/registry/report/r-2", None),
            ("PUT", "/registry/report/r-1", {"tenant": "globex"}),
        ):
            refused = await carol.call(method, path, body)
            assert refused.status == 403, (method, path, refused.body)
            assert refused.content_type.startswith("application/problem+json")
        assert await registry_store.get_owner(engine, "report", "r-1") == "acme"
        assert await registry_store.get_owner(engine, "report", "r-2") == "globex"

        moved = await admin.call("PUT", "/registry/report/r-1", {"tenant": "globex"})
        assert (moved.body["before"], moved.body["after"]) == ("acme", "globex")
        removed = await admin.call("DELETE", "/registry/report/r-1")
        assert removed.status == 200 and removed.body["after"] is None
        assert (await admin.get("/registry/report/r-1")).status == 404
        (row,) = await api_rows(stack, removed.request_id)
        assert (row["actor"], row["decision"]) == (SUPER, "allow")


async def test_bad_input_is_answered_4xx_with_what_is_wrong(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        admin = await as_person(stack, SUPER)
        refusals = [
            ("PUT", "/registry/invoice/1", {"tenant": "acme"}, 422, "not read from the registry"),
            ("PUT", "/registry/report/bad%20id", {"tenant": "acme"}, 422, "is not a report id"),
            ("PUT", "/registry/report/r-1", {"tenant": "umbrella"}, 404, "no tenant"),
            ("PUT", "/registry/report/r-1", {"tenant": ""}, 422, "body: tenant"),
            ("PUT", "/registry/report/r-1", {"tenant": "acme", "x": 1}, 422, "body: x"),
            ("DELETE", "/registry/report/r-404", None, 404, "no owner"),
            ("POST", "/registry/import", {"csv": "type,id\nreport,r-1,acme"}, 422, "header"),
        ]
        for method, path, body, status, says in refusals:
            refused = await admin.call(method, path, body)
            assert refused.status == status, (path, body, refused.body)
            assert says in refused.body["detail"], refused.body
        not_json = await admin.call("PUT", "/registry/report/r-1", data="tenant=acme")
        assert not_json.status == 415

        problems = await admin.call(
            "POST",
            "/registry/import",
            {"csv": "resource_type,object_id,tenant\nreport,r-1,acme\nreport,r 2,acme\n"},
        )
        assert problems.status == 422
        assert [p["line"] for p in problems.body["problems"]] == [3]
        assert await registry_store.get_owner(stack.app[ENGINE], "report", "r-1") is None
        imported = await admin.call(
            "POST", "/registry/import", {"csv": "resource_type,object_id,tenant\nreport,r-1,acme"}
        )
        assert imported.status == 200, imported.body
        assert [c["after"] for c in imported.body["changes"]] == ["acme"]


async def test_the_openapi_document_describes_the_registry(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        document = await (await stack.client.get("/.gatehold/api/openapi.json")).json()
        owner = document["paths"]["/.gatehold/api/registry/{resource_type}/{object_id}"]
        assert set(owner) == {"get", "put", "delete"}
        assert "403" in owner["put"]["responses"] and "404" in owner["delete"]["responses"]
        assert "post" in document["paths"]["/.gatehold/api/registry/import"]
