"""One resource served by two upstreams: an owner learned from one must never answer for the other.

The resource's lookup URL is ``{upstream}/internal/owners/{id}``, so the owner of id 5
depends on which upstream the route goes to. East says acme owns 5, west says globex.
A cached answer (found or "not found") and a lookup still in flight are keyed on the
lookup actually made, so each upstream is asked about its own objects.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.support.scripted_upstream import Scripted, scripted_upstream
from tests.support.stack import Stack, running_stack

API = {"Accept": "application/json"}

RULES = """
version: 1
upstreams:
  east: {{url: "{east}"}}
  west: {{url: "{west}"}}
roles:
  standard: {{can: [read, write]}}
resources:
  thing:
    id_type: int
    owner: {{http: "GET {{upstream}}/internal/owners/{{id}}", tenant_field: /tenant}}
    cache: 60s
    negative_cache: 60s
routes:
  - name: east-thing
    match: {{path: "/east/things/{{id:int}}", methods: [GET]}}
    upstream: east
    resource: {{type: thing, id: path.id}}
  - name: west-thing
    match: {{path: "/west/things/{{id:int}}", methods: [GET]}}
    upstream: west
    resource: {{type: thing, id: path.id}}
"""


@asynccontextmanager
async def two_upstreams(
    tmp_path: Path, *, delay: float = 0.0
) -> AsyncIterator[tuple[Stack, Scripted, Scripted]]:
    east_owners = {"5": "acme", "7": "globex"}
    west_owners = {"5": "globex", "6": "acme"}
    async with (
        scripted_upstream("east", owners=east_owners, delay=delay) as east,
        scripted_upstream("west", owners=west_owners, delay=delay) as west,
        running_stack(tmp_path, rules_text=RULES.format(east=east.url, west=west.url)) as stack,
    ):
        yield stack, east, west


async def _refused_unseen(stack: Stack, upstream: Scripted, response: object) -> None:
    """A 404 tenant-foreign/object-not-found refusal that never reached ``upstream``."""
    from aiohttp import ClientResponse

    assert isinstance(response, ClientResponse)
    assert response.status == 404
    assert (await response.json())["type"].endswith("/object-not-found")
    request_id = response.headers["X-Request-Id"]
    assert upstream.hit_count(request_id) == 0
    rows = await stack.audit_rows(request_id)
    assert rows[0]["decision"] == "deny"
    assert rows[0]["reason"] in ("tenant-foreign", "object-not-found")


async def test_an_owner_cached_from_one_upstream_does_not_answer_for_another(
    tmp_path: Path,
) -> None:
    async with two_upstreams(tmp_path) as (stack, east, west):
        alice = stack.cookie("alice@acme.test") | API
        mine = await stack.client.get("/east/things/5", headers=alice)
        assert mine.status == 200, "east says acme owns 5"
        assert east.hit_count(mine.headers["X-Request-Id"]) == 1
        theirs = await stack.client.get("/west/things/5", headers=alice)
        await _refused_unseen(stack, west, theirs)
        assert (await stack.audit_rows(theirs.headers["X-Request-Id"]))[0][
            "reason"
        ] == "tenant-foreign"
        assert west.lookups == ["5"], "west was asked about its own object 5"
        assert west.total_hits == 0


async def test_the_rightful_owner_is_not_locked_out_by_the_other_upstreams_answer(
    tmp_path: Path,
) -> None:
    async with two_upstreams(tmp_path) as (stack, east, west):
        alice = stack.cookie("alice@acme.test") | API
        bob = stack.cookie("bob@globex.test") | API
        assert (await stack.client.get("/east/things/5", headers=alice)).status == 200
        response = await stack.client.get("/west/things/5", headers=bob)
        assert response.status == 200, "west says globex owns 5"
        assert (await response.json())["served_by"] == "west"
        assert east.lookups == ["5"] and west.lookups == ["5"]


async def test_a_cached_not_found_from_one_upstream_does_not_answer_for_another(
    tmp_path: Path,
) -> None:
    async with two_upstreams(tmp_path) as (stack, east, west):
        alice = stack.cookie("alice@acme.test") | API
        missing = await stack.client.get("/east/things/6", headers=alice)
        await _refused_unseen(stack, east, missing)
        found = await stack.client.get("/west/things/6", headers=alice)
        assert found.status == 200, "west knows 6 and acme owns it"
        foreign = await stack.client.get("/west/things/7", headers=alice)
        await _refused_unseen(stack, west, foreign)
        assert (await stack.client.get("/east/things/7", headers=alice)).status == 404


async def test_lookups_in_flight_are_shared_only_for_the_same_lookup(tmp_path: Path) -> None:
    async with two_upstreams(tmp_path, delay=0.3) as (stack, east, west):
        alice = stack.cookie("alice@acme.test") | API
        east_a, west_a, east_b, west_b = await asyncio.gather(
            stack.client.get("/east/things/5", headers=alice),
            stack.client.get("/west/things/5", headers=alice),
            stack.client.get("/east/things/5", headers=alice),
            stack.client.get("/west/things/5", headers=alice),
        )
        assert east_a.status == east_b.status == 200
        await _refused_unseen(stack, west, west_a)
        await _refused_unseen(stack, west, west_b)
        assert east.lookups == ["5"], "the two east requests shared one lookup"
        assert west.lookups == ["5"], "the two west requests shared one lookup"
