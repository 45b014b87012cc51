"""The stages that decide a request, built from the settings and a rule set.

Live traffic (``app.py`` adds the stages that audit, forward and answer), ``rules
simulate`` and impact preview all decide with what ``build_deciders`` returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.auth.api_clients import ApiKeys, BearerTokens
from gateway.auth.sessions import SessionManager
from gateway.clamd import Clamd
from gateway.config.durations import parse_duration
from gateway.config.settings import Settings
from gateway.context import Deciders
from gateway.enumeration import EnumerationGuard
from gateway.identity import Identity
from gateway.ingress import Ingress
from gateway.model import RuleSet
from gateway.objects import ObjectExtractor
from gateway.override import MethodOverrides
from gateway.ownership import Ownership
from gateway.policy import Policy
from gateway.routing import Router
from gateway.store import registry as registry_store
from gateway.uploads import UploadInspector


class StoreRegistry:
    """The ownership registry, backed by the gateway's store."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get_owner(self, resource_type: str, object_id: str) -> str | None:
        return await registry_store.get_owner(self._engine, resource_type, object_id)

    async def set_owner(self, resource_type: str, object_id: str, tenant: str) -> None:
        # Never move an object that already has an owner: a create answered with the
        # Location of someone else's object must not hand it to the caller's tenant.
        await registry_store.set_owner(
            self._engine, resource_type, object_id, tenant, replace=False
        )


def build_deciders(
    settings: Settings,
    ruleset: RuleSet,
    engine: AsyncEngine,
    *,
    resolver_calls: dict[tuple[str, str], int] | None = None,
) -> Deciders:
    """The stages that decide a request, configured once; nothing here touches disk.

    ``rules simulate`` uses these alone; ``build_gateway`` adds the stages that
    audit, forward and answer.
    """
    sessions = SessionManager(
        engine,
        idle_timeout=settings.session_idle_timeout,
        absolute_timeout=settings.session_absolute_timeout,
    )
    api_keys = ApiKeys(engine)
    bearer = BearerTokens(settings.auth.bearer) if settings.auth.bearer else None
    enumeration = settings.policy.enumeration
    limits = settings.limits
    return Deciders(
        ingress=Ingress(
            public_url=settings.server.public_url,
            trusted_proxies=settings.server.trusted_proxies,
        ),
        identity=Identity(sessions=sessions, api_keys=api_keys, bearer=bearer),
        objects=ObjectExtractor(
            body_idle_timeout=limits.body_idle_timeout,
            body_total_timeout=limits.request_total_timeout,
        ),
        uploads=UploadInspector(
            body_idle_timeout=limits.body_idle_timeout,
            body_total_timeout=limits.request_total_timeout,
            scanner=Clamd(
                settings.scanner.clamd_socket, timeout=parse_duration(settings.scanner.timeout)
            ),
        ),
        enumeration=EnumerationGuard(
            window=enumeration.window_seconds,
            slow_after=enumeration.slow_after,
            block_after=enumeration.block_after,
            block_for=enumeration.block_for_seconds,
            engine=engine,
        ),
        sessions=sessions,
        api_keys=api_keys,
        bearer=bearer,
        **rule_deciders(settings, ruleset, engine, resolver_calls=resolver_calls),
    )


class RuleDeciders(TypedDict):
    router: Router
    ownership: Ownership
    policy: Policy
    overrides: MethodOverrides


def rule_deciders(
    settings: Settings,
    ruleset: RuleSet,
    engine: AsyncEngine,
    *,
    resolver_calls: dict[tuple[str, str], int] | None = None,
) -> RuleDeciders:
    """The deciding stages built from the rules file: a reload builds these anew."""
    router = Router(ruleset.routes)
    return RuleDeciders(
        router=router,
        ownership=Ownership(
            resources=ruleset.resources,
            upstreams=ruleset.upstreams,
            registry=StoreRegistry(engine),
            max_ids=settings.policy.max_ids_per_request,
            max_concurrent=settings.policy.max_concurrent_lookups,
            base_dir=Path(settings.base_dir),
            calls=resolver_calls,
        ),
        policy=Policy(ruleset.roles, mfa_tenants=ruleset.mfa_tenants),
        overrides=MethodOverrides(
            router,
            mode=settings.policy.method_override,
            body_idle_timeout=settings.limits.body_idle_timeout,
            body_total_timeout=settings.limits.request_total_timeout,
        ),
    )
