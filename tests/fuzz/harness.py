"""Drive a real gateway with a model's worlds and report every disagreement.

One in-process gateway (``tests/support/stack.py``: the production app and runner, a
real SQLite store) serves every world: each world's rules are activated live through
the gateway's own reload (``LiveRules.reload``, as ``SIGHUP`` does), its people are
created in the store with fresh sessions, and its owners are served by a recording
upstream on a loopback port that answers the gateway's owner lookups and counts every
other request by the gateway's ``X-Request-Id`` and by the client's ``X-Fuzz-Seq``.
Requests go over raw keep-alive sockets, the request-target byte for byte.

A request agrees with the model when: allowed ⇔ it reached the upstream (exactly once,
with the method sent and the canonical target the model computed); a refusal's status
is one the model allows; and its audit record says the same decision.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import bindparam, text

from gateway.app import ENGINE, with_rules
from gateway.config.loader import load_rules_text
from gateway.live import LIVE
from gateway.model import Membership
from gateway.store import api_keys as key_store
from gateway.store import tenants as tenant_store
from gateway.store import users as user_store
from tests.fuzz.reference_model import Person, Role, Route, Rules, Verdict, judge
from tests.fuzz.worlds import PUBLIC_HOST, TENANTS, World
from tests.support.stack import Stack, running_stack

SETTINGS: dict[str, Any] = {
    # Random requests collect denials on many ids; the enumeration defence would
    # (rightly) slow and block the fuzzing callers, which is not what is compared here.
    "policy": {"enumeration": {"slow_after": 10**9, "block_after": 10**9 + 1}},
    "limits": {"in_flight_per_principal": 10_000, "connections_per_client": 10_000},
}
CONNECTIONS = 4


# ---------------------------------------------------------------- the recording upstream


@dataclass
class Recorder:
    """What reached the app, and the owners it answers lookups from."""

    owners: dict[tuple[str, str], str] = field(default_factory=dict)
    id_types: dict[str, str] = field(default_factory=dict)
    seen: dict[str, list[tuple[str, str, str, str]]] = field(default_factory=dict)
    """X-Fuzz-Seq → [(method, raw target, X-Request-Id, X-Gatehold-Tenant)] of each arrival."""
    url: str = ""


RECORDER = web.AppKey("recorder", Recorder)


async def _owner(request: web.Request) -> web.Response:
    recorder = request.app[RECORDER]
    kind, object_id = request.match_info["kind"], request.match_info["id"]
    if recorder.id_types.get(kind) == "int":  # as the app reads its ids
        object_id = str(int(object_id)) if object_id.isdigit() else object_id
    elif recorder.id_types.get(kind) == "uuid":
        object_id = object_id.lower()
    tenant = recorder.owners.get((kind, object_id))
    if tenant is None:
        return web.json_response({"error": "no such object"}, status=404)
    return web.json_response({"tenant": tenant})


async def _record(request: web.Request) -> web.Response:
    recorder = request.app[RECORDER]
    seq = request.headers.get("X-Fuzz-Seq", "-")
    headers = request.headers
    arrival = (
        request.method,
        request.raw_path,
        headers.get("X-Request-Id", "-"),
        headers.get("X-Gatehold-Tenant", "-"),
    )
    recorder.seen.setdefault(seq, []).append(arrival)
    return web.json_response({"app": "recorded"})


@asynccontextmanager
async def recording_upstream() -> AsyncIterator[Recorder]:
    recorder = Recorder()
    app = web.Application()
    app[RECORDER] = recorder
    app.router.add_get("/internal/owners/{kind}/{id}", _owner)
    app.router.add_route("*", "/{tail:.*}", _record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    recorder.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield recorder
    finally:
        await runner.cleanup()


# ---------------------------------------------------------------- rules as YAML


def rules_yaml(rules: Rules, upstream_url: str) -> str:
    """The rule set in the gateway's format (SPEC §3)."""
    roles = {
        name: {
            "can": sorted(role.can),
            **({"scope": "global"} if role.everywhere else {}),
            **({"mfa": "required"} if role.mfa else {}),
        }
        for name, role in rules.roles.items()
    }
    resources = {
        kind: {
            "id_type": id_type,
            "owner": {
                "http": f"GET {{upstream}}/internal/owners/{kind}/{{id}}",
                "tenant_field": "/tenant",
            },
            "cache": "0s",
            "negative_cache": "0s",
        }
        for kind, id_type in rules.id_types.items()
    }
    routes = []
    for route in rules.routes:
        entry: dict[str, Any] = {"name": route.name, "match": {"path": route.template}}
        if route.methods is not None:
            entry["match"]["methods"] = sorted(route.methods)
        entry["upstream"] = "app"
        if route.action:
            entry["action"] = route.action
        if route.public:
            entry["public"] = True
        if route.tenant_param:
            entry["tenant"] = f"path.{route.tenant_param}"
        if route.resource:
            entry["resource"] = {"type": route.resource[0], "id": f"path.{route.resource[1]}"}
        if route.query_ids:
            entry["query_ids"] = [{"type": k, "param": p} for k, p in route.query_ids]
        if route.step_up is not None:
            entry["step_up"] = f"{int(route.step_up)}s"
        if route.mfa:
            entry["mfa"] = "required"
        routes.append(entry)
    document: dict[str, Any] = {
        "version": 1,
        "upstreams": {"app": {"url": upstream_url}},
        "roles": roles,
        "resources": resources,
        "routes": routes,
    }
    if rules.mfa_tenants:
        document["mfa"] = {"tenants": sorted(rules.mfa_tenants)}
    return json.dumps(document)  # JSON is YAML


# ---------------------------------------------------------------- raw keep-alive client


@dataclass
class Reply:
    status: int
    request_id: str
    body: bytes


class RawConnection:
    """HTTP/1.1 over one socket, reopened when the server closes it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None

    async def send(self, method: str, target: str, headers: dict[str, str]) -> Reply:
        """One exchange; once more on a new socket if a kept-alive one was closed first."""
        fresh = self._streams is None
        try:
            return await self._exchange(method, target, headers)
        except (asyncio.IncompleteReadError, ConnectionError):
            await self.close()
            if fresh:
                raise
            return await self._exchange(method, target, headers)

    async def _exchange(self, method: str, target: str, headers: dict[str, str]) -> Reply:
        if self._streams is None:
            self._streams = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self._streams
        lines = [f"{method} ".encode() + target.encode() + b" HTTP/1.1"]
        lines += [f"{k}: {v}".encode() for k, v in headers.items()]
        writer.write(b"\r\n".join([*lines, b"", b""]))
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=60)
        status_line, *fields = head.decode("latin-1").split("\r\n")
        found = {}
        for line in fields:
            name, _, value = line.partition(":")
            if name:
                found[name.strip().lower()] = value.strip()
        status = int(status_line.split(" ")[1])
        body = b""
        if method != "HEAD" and status not in (204, 304):
            if "content-length" in found:
                body = await reader.readexactly(int(found["content-length"]))
            elif found.get("transfer-encoding", "").lower() == "chunked":
                body = await _dechunk(reader)
            else:
                body = await reader.read()
                found["connection"] = "close"
        if found.get("connection", "").lower() == "close":
            await self.close()
        return Reply(status, found.get("x-request-id", ""), body)


async def _dechunk(reader: asyncio.StreamReader) -> bytes:
    out = b""
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return out
        out += await reader.readexactly(size)
        await reader.readexactly(2)


# ---------------------------------------------------------------- comparing


@dataclass
class Disagreement:
    method: str
    target: str
    person: Person | None
    expected: Verdict
    got: str
    rules: str

    def report(self) -> str:
        return (
            f"DISAGREEMENT {self.method} {self.target}\n"
            f"  person:   {self.person}\n"
            f"  expected: {'allow' if self.expected.allowed else 'deny'} "
            f"{sorted(self.expected.statuses)} ({self.expected.why})\n"
            f"  got:      {self.got}\n"
            f"  rules:    {self.rules}"
        )


class ModelBench:
    """One gateway and one recording upstream, compared with the model world by world."""

    def __init__(self, stack: Stack, recorder: Recorder) -> None:
        self.stack = stack
        self.recorder = recorder
        self.compared = 0
        self.allowed = 0
        self.unspecified = 0
        """Requests the documents do not decide: only checked to be consistent."""
        self._people = itertools.count()
        self._seq = itertools.count()
        self._connections = [RawConnection(stack.client.port or 0) for _ in range(CONNECTIONS)]

    async def close(self) -> None:
        for connection in self._connections:
            await connection.close()

    async def activate(self, rules_text: str) -> None:
        app, settings = self.stack.app, self.stack.settings

        def load() -> Any:
            return load_rules_text(rules_text, source="model world", env={})

        def rebuild(gateway: Any, ruleset: Any) -> Any:
            return with_rules(gateway, settings, ruleset, app[ENGINE])

        assert await app[LIVE].reload("model world", load, rebuild), rules_text

    async def _credential(self, person: Person) -> tuple[str, str]:
        """The header that identifies ``person``: a fresh session, or an API key."""
        engine = self.stack.app[ENGINE]
        if person.api_key:
            ((tenant, role),) = person.memberships
            _, key = await key_store.create_key(
                engine, tenant=tenant, role=role, label="model", ttl=86400, now=time.time()
            )
            return "Authorization", f"Bearer {key}"
        email = f"p{next(self._people)}@model.test"
        grants = [Membership(tenant, role) for tenant, role in person.memberships]
        await user_store.add_user(engine, email, memberships=grants)
        token = await self.stack.mint(
            email, auth_age=person.auth_age, mfa=person.mfa, tenant=person.active
        )
        return "Cookie", f"__Host-gatehold={token}"

    async def run(self, world: World) -> list[Disagreement]:
        """Every request of ``world`` through the gateway; the disagreements found."""
        text_rules = rules_yaml(world.rules, self.recorder.url)
        self.recorder.owners = dict(world.owners)
        self.recorder.id_types = dict(world.rules.id_types)
        await self.activate(text_rules)
        credentials = [await self._credential(person) for person in world.people]
        queue = list(enumerate(world.requests))
        replies: dict[int, tuple[str, Reply]] = {}

        async def worker(connection: RawConnection) -> None:
            while queue:
                index, (who, method, target) = queue.pop()
                seq = str(next(self._seq))
                headers = {"Host": PUBLIC_HOST, "Accept": "application/json"}
                headers["X-Fuzz-Seq"] = seq
                if who is not None:
                    name, value = credentials[who]
                    headers[name] = value
                if method not in ("GET", "HEAD"):
                    headers["Content-Length"] = "0"
                replies[index] = (seq, await connection.send(method, target, headers))

        await asyncio.gather(*(worker(c) for c in self._connections))
        decisions = await self._audited([reply.request_id for _, reply in replies.values()])
        found = []
        for index, (who, method, target) in enumerate(world.requests):
            person = None if who is None else world.people[who]
            expected = judge(
                world.rules, person, world.owners, method, target, public_host=PUBLIC_HOST
            )
            seq, reply = replies[index]
            got = self._disagreement(expected, method, seq, reply, decisions)
            self.compared += 1
            self.allowed += expected.allowed is True
            self.unspecified += expected.allowed is None
            if got:
                found.append(Disagreement(method, target, person, expected, got, text_rules))
        return found

    def _disagreement(
        self, expected: Verdict, method: str, seq: str, reply: Reply, decisions: dict[str, str]
    ) -> str:
        arrivals = self.recorder.seen.pop(seq, [])
        audited = decisions.get(reply.request_id, "no audit record")
        said = f"status {reply.status}, {len(arrivals)} upstream hit(s) {arrivals}, audit {audited}"
        if expected.allowed is None:  # either answer, but one answer everywhere
            forwarded = len(arrivals) == 1 and reply.status == 200 and audited.startswith("allow")
            refused = not arrivals and reply.status >= 400 and audited.startswith("deny")
            return "" if forwarded or refused else said
        if expected.allowed:
            if len(arrivals) != 1 or arrivals[0][:3] != (method, expected.target, reply.request_id):
                return said
            if expected.tenant is not None and arrivals[0][3] != expected.tenant:
                return f"{said}; the app was told tenant {arrivals[0][3]}, not {expected.tenant}"
            path = (expected.target or "").partition("?")[0]
            if audited != f"allow role-allowed {path}" and audited != f"allow public-route {path}":
                return said
            return "" if reply.status == 200 else said
        if arrivals or reply.status not in expected.statuses:
            return said
        return "" if audited.startswith("deny") else said

    async def _audited(self, request_ids: list[str]) -> dict[str, str]:
        """``decision reason`` of each request's audit record (a request refused by
        ingress has a ``rejected`` event instead; the outcome row is not looked at)."""
        await self.stack.settled()
        found: dict[str, str] = {}
        query = text(
            "SELECT request_id, kind, decision, reason, path FROM audit_log "
            "WHERE request_id IN :ids"
        ).bindparams(bindparam("ids", expanding=True))
        async with self.stack.app[ENGINE].connect() as conn:
            for start in range(0, len(request_ids), 200):
                chunk = [r for r in request_ids[start : start + 200] if r]
                if not chunk:
                    continue
                rows = await conn.execute(query, {"ids": chunk})
                for row in rows:
                    if row.kind == "request":
                        found[row.request_id] = f"{row.decision} {row.reason} {row.path}"
                    elif row.kind == "rejected":  # refused before it had a route
                        found[row.request_id] = f"deny {row.reason} (rejected)"
        return found


@asynccontextmanager
async def model_bench(data_dir: Path) -> AsyncIterator[ModelBench]:
    """A gateway in front of a recording upstream, ready to compare worlds."""
    async with recording_upstream() as recorder:
        nothing_yet = Rules(
            {"none": Role(frozenset({"read"}))}, {}, (Route("none", "/", public=True),)
        )
        first = rules_yaml(nothing_yet, recorder.url)
        async with running_stack(data_dir, rules_text=first, **SETTINGS) as stack:
            engine = stack.app[ENGINE]
            for tenant in TENANTS:
                await tenant_store.create_tenant(
                    engine, tenant, display_name=tenant, now=time.time()
                )
            bench = ModelBench(stack, recorder)
            try:
                yield bench
            finally:
                await bench.close()
