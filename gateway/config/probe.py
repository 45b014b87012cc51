"""``rules check --probe``: ask every owner resolver once, before the rules go live.

A resolver that cannot answer makes every request naming its objects a refusal, so a
missing database file, a typo in the query or an app that is not listening is found
here rather than by the first caller. Each SQL resolver runs its query with a probe
id (a value of the resource's ``id_type``; no such row is fine), each HTTP resolver is
called once for each upstream it serves (any answer but a 5xx is fine). Every probe
has a timeout; nothing is written (SQLite is opened read-only, the query rolled back).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import aiohttp
from sqlalchemy import text
from sqlalchemy.engine import make_url

from gateway.idtypes import check as id_fits
from gateway.model import HttpOwner, ResourceDef, RuleSet, SqlOwner
from gateway.ownership import read_only_engine, resolve_dsn

DEFAULT_TIMEOUT = 5.0
_PROBE_IDS = ("1", "00000000-0000-0000-0000-000000000000", "gatehold-probe", "a", "0")


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """How one resolver answered its probe."""

    resource: str
    target: str
    """What was asked: ``sql <dsn>`` or ``GET <url>``."""
    problem: str | None
    """``None`` when it answered as a resolver should."""

    def __str__(self) -> str:
        verdict = "ok" if self.problem is None else f"FAILED: {self.problem}"
        return f"resource {self.resource!r}: {self.target}: {verdict}"


def probe_id(id_type: str) -> str | None:
    """A value of ``id_type`` to look up; ``None`` if no sample fits a ``regex:`` type."""
    return next((value for value in _PROBE_IDS if id_fits(value, id_type)), None)


async def probe_resolvers(
    ruleset: RuleSet, *, base_dir: Path | None, timeout: float = DEFAULT_TIMEOUT
) -> list[ProbeResult]:
    """Probe every SQL and HTTP resolver of ``ruleset``; registries need no probe."""
    probes = []
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout), cookie_jar=aiohttp.DummyCookieJar()
    ) as http:
        for resource in ruleset.resources.values():
            match resource.owner:
                case SqlOwner() as owner:
                    probes.append(_probe_sql(resource, owner, base_dir, timeout))
                case HttpOwner() as owner:
                    probes += [
                        _probe_http(http, resource, owner, url)
                        for url in _http_urls(ruleset, resource, owner)
                    ]
                case _:
                    pass
        return list(await asyncio.gather(*probes))


def _http_urls(ruleset: RuleSet, resource: ResourceDef, owner: HttpOwner) -> list[str]:
    """The lookup URL for each upstream the resource is looked up on."""
    if owner.upstream is not None:
        names = [owner.upstream]
    else:
        names = list(
            dict.fromkeys(
                route.upstream
                for route in ruleset.routes
                if any(spec.type == resource.name for spec in route.ids)
            )
        )
    object_id = probe_id(resource.id_type) or "gatehold-probe"
    return [
        owner.url.replace("{upstream}", ruleset.upstreams[name].url).replace(
            "{id}", quote(object_id, safe="")
        )
        for name in names
        if name in ruleset.upstreams
    ]


async def _probe_http(
    http: aiohttp.ClientSession, resource: ResourceDef, owner: HttpOwner, url: str
) -> ProbeResult:
    target = f"{owner.method} {url}"
    try:
        async with http.request(owner.method, url, allow_redirects=False) as response:
            status = response.status
    except TimeoutError:
        return ProbeResult(resource.name, target, "no answer within the timeout")
    except aiohttp.ClientError as error:
        return ProbeResult(resource.name, target, f"cannot connect: {error}")
    if status >= 500:
        return ProbeResult(resource.name, target, f"answered {status}")
    return ProbeResult(resource.name, target, None)


async def _probe_sql(
    resource: ResourceDef, owner: SqlOwner, base_dir: Path | None, timeout: float
) -> ProbeResult:
    dsn = resolve_dsn(owner.dsn, base_dir)
    target = f"sql {make_url(dsn).render_as_string(hide_password=True)}"
    url = make_url(dsn)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        return ProbeResult(resource.name, target, f"no database file {url.database}")
    object_id = probe_id(resource.id_type)
    value: int | str | None = None
    if object_id is not None:
        value = int(object_id) if resource.id_type == "int" else object_id
    engine = read_only_engine(owner.dsn, base_dir)
    try:
        async with asyncio.timeout(timeout), engine.connect() as conn:
            if value is None:
                await conn.execute(text("SELECT 1"))
            else:
                await conn.execute(text(owner.query), {"id": value})
            await conn.rollback()
    except TimeoutError:
        return ProbeResult(resource.name, target, "no answer within the timeout")
    except Exception as error:  # any failure is what the probe is for: report, not raise
        return ProbeResult(resource.name, target, _first_line(error))
    finally:
        await engine.dispose()
    return ProbeResult(resource.name, target, None)


def _first_line(error: BaseException) -> str:
    message = str(getattr(error, "orig", None) or error).strip().splitlines()
    return f"{type(error).__name__}: {message[0] if message else 'failed'}"
