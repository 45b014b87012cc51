"""The decision: may this principal do this action to these objects, in this tenant, now?

Pure: no I/O, no aiohttp. Every input the verdict depends on is an argument, so the
whole decision is testable in a table. The only way to an allowing ``Decision`` is an
explicit grant below; every other path ends in a denial (I1, I4b).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from gateway.model import (
    GLOBAL_TENANT,
    MACHINE_METHODS,
    Anonymous,
    Decision,
    MatchResult,
    Membership,
    MethodNotAllowed,
    NoRoute,
    NotFound,
    Owned,
    Principal,
    Reason,
    Rejection,
    ResolvedRef,
    ResolverFailed,
    RoleDef,
    Route,
    RouteMatch,
    action_for,
)
from gateway.tenant_ids import is_tenant_id


@dataclass(frozen=True, slots=True)
class Grant:
    """Roles that allow an action in one tenant, or why none does."""

    roles: tuple[str, ...]
    member: bool
    """Whether the principal holds any role that reaches the tenant at all."""


def refused(rejection: Rejection) -> Decision:
    """The denial of a request refused before routing (its body could not be read as the
    app will read it): whatever route it names, public or not, it goes no further."""
    return _deny(rejection.reason, rejection.detail)


EXPLAINED_OBJECTS = 20
"""Objects named one by one in a decision's reason chain; the rest are summed up."""


@dataclass(frozen=True, slots=True)
class _Screened:
    """A request that passed every check made before owners are known."""

    principal: Principal
    match: RouteMatch
    action: str
    steps: list[str]


class Policy:
    """Judges requests against the RBAC matrix of one rule set."""

    def __init__(self, roles: Mapping[str, RoleDef], *, mfa_tenants: Iterable[str] = ()) -> None:
        self._roles = dict(roles)
        self._mfa_tenants = frozenset(mfa_tenants)

    @property
    def roles(self) -> Mapping[str, RoleDef]:
        """The roles this rule set defines, by name (read-only): who administers, for the API."""
        return MappingProxyType(self._roles)

    def decide(
        self,
        *,
        principal: Principal | Anonymous | Rejection,
        match: MatchResult,
        method: str,
        objects: Sequence[ResolvedRef] | Rejection = (),
        now: float,
        websocket: bool = False,
        blocked: bool = False,
    ) -> Decision:
        """The verdict for one request; ``objects`` are the resolved ids or why they are unread."""
        early = self._screen(principal, match, method, websocket=websocket, blocked=blocked)
        if isinstance(early, Decision):
            return early
        if isinstance(objects, Rejection):
            return _deny(objects.reason, *early.steps, objects.detail, action=early.action)
        return self._judge_tenants(
            early.principal, early.match, early.action, objects, now, early.steps
        )

    def screen(
        self,
        *,
        principal: Principal | Anonymous | Rejection,
        match: MatchResult,
        method: str,
        websocket: bool = False,
        blocked: bool = False,
    ) -> Decision | None:
        """The verdict when it does not depend on who owns the objects, else ``None``.

        The pipeline asks this first and looks owners up only on ``None``: a request
        that no owner could make allowed costs no lookup. ``decide`` starts with the
        very same checks, so both give one answer.
        """
        early = self._screen(principal, match, method, websocket=websocket, blocked=blocked)
        return early if isinstance(early, Decision) else None

    def _screen(
        self,
        principal: Principal | Anonymous | Rejection,
        match: MatchResult,
        method: str,
        *,
        websocket: bool,
        blocked: bool,
    ) -> Decision | _Screened:
        match match:
            case NoRoute():
                return _deny(Reason.ROUTE_NOT_FOUND, "no route matches this path")
            case MethodNotAllowed(allowed=allowed):
                verbs = ", ".join(sorted(allowed))
                return _deny(Reason.METHOD_NOT_ALLOWED, f"the route allows only {verbs}")
            case RouteMatch():
                return self._screen_route(
                    principal, match, method, websocket=websocket, blocked=blocked
                )

    def _screen_route(
        self,
        principal: Principal | Anonymous | Rejection,
        match: RouteMatch,
        method: str,
        *,
        websocket: bool,
        blocked: bool,
    ) -> Decision | _Screened:
        route = match.route
        action = action_for(route, method)
        steps = [f"route {route.name!r} matched {method} {route.pattern}", f"action {action!r}"]
        if websocket and not route.websocket:
            return _deny(Reason.METHOD_NOT_ALLOWED, *steps, "this route does not take WebSockets")
        if route.public:
            return Decision(True, Reason.PUBLIC_ROUTE, action=action, explain=(*steps, "public"))
        if isinstance(principal, Rejection):
            return _deny(principal.reason, *steps, principal.detail, action=action)
        if not isinstance(principal, Principal):
            return _deny(Reason.AUTH_REQUIRED, *steps, "nobody is signed in", action=action)
        steps.append(f"principal {principal.email}")
        if blocked:
            return _deny(Reason.ENUMERATION_BLOCKED, *steps, "too many denied ids", action=action)
        if route.ids and not self.allows_anywhere(principal, action):
            # Whoever owns the objects, no role could allow this: refuse without asking,
            # with one answer for own, foreign and missing objects alike (I3).
            held = ", ".join(sorted({m.role for m in principal.memberships})) or "no role"
            steps.append(f"holds {held}; none allows {action!r} in any tenant")
            return _deny(Reason.ROLE_FORBIDDEN, *steps, action=action)
        return _Screened(principal, match, action, steps)

    def allows_anywhere(self, principal: Principal, action: str) -> bool:
        """Whether any role ``principal`` holds, in any tenant, allows ``action`` at all."""
        for membership in principal.memberships:
            role = self._roles.get(membership.role)
            if role is not None and action in role.can:
                return True
        return False

    def _judge_tenants(
        self,
        principal: Principal,
        match: RouteMatch,
        action: str,
        objects: Sequence[ResolvedRef],
        now: float,
        steps: list[str],
    ) -> Decision:
        route = match.route
        tenants: list[str] = []
        for index, resolved in enumerate(objects):
            ref, answer = resolved.ref, resolved.answer
            match answer:
                case ResolverFailed(detail=detail):
                    steps.append(f"{ref.type} {ref.id} ({ref.source}): owner unknown, {detail}")
                    return _deny(Reason.RESOLVER_FAILED, *steps, action=action, objects=objects)
                case NotFound():
                    steps.append(f"{ref.type} {ref.id} ({ref.source}) does not exist")
                    return _deny(Reason.OBJECT_NOT_FOUND, *steps, action=action, objects=objects)
                case Owned(tenant=tenant):
                    if index < EXPLAINED_OBJECTS:
                        steps.append(f"{ref.type} {ref.id} ({ref.source}) is owned by {tenant!r}")
                    tenants.append(tenant)
        if len(objects) > EXPLAINED_OBJECTS:
            owners = ", ".join(repr(t) for t in dict.fromkeys(tenants[EXPLAINED_OBJECTS:]))
            steps.append(f"{len(objects) - EXPLAINED_OBJECTS} more objects, owned by {owners}")
        context = _context_tenant(principal, match, tenants)
        if context is None:
            steps.append("no tenant selected and none named by the request")
            return _deny(Reason.TENANT_UNSELECTED, *steps, action=action, objects=objects)
        if route.tenant_param is not None and not is_tenant_id(context):
            steps.append(f"the path names {context!r}, which is not a tenant id")
            return _deny(Reason.TENANT_FOREIGN, *steps, action=action, objects=objects)
        granted: list[str] = []
        for tenant in dict.fromkeys([context, *tenants]):
            grant = self.grant(principal, tenant, action)
            if not grant.roles:
                reason = Reason.ROLE_FORBIDDEN if grant.member else Reason.TENANT_FOREIGN
                held = ", ".join(principal.roles_in(tenant)) or "no role"
                steps.append(f"holds {held} in {tenant!r}; none allows {action!r}")
                return _deny(reason, *steps, action=action, tenant=tenant, objects=objects)
            steps.append(f"{', '.join(grant.roles)} in {tenant!r} allows {action!r}")
            granted.extend(grant.roles)
        if not self._second_factor_shown(principal, route, granted, [context, *tenants], steps):
            return _deny(Reason.MFA_REQUIRED, *steps, action=action, tenant=context)
        if route.step_up_seconds is not None and now - principal.auth_time > route.step_up_seconds:
            steps.append(f"last sign-in is older than {route.step_up_seconds:.0f}s")
            return _deny(Reason.STEP_UP_REQUIRED, *steps, action=action, tenant=context)
        return Decision(
            True,
            Reason.ROLE_ALLOWED,
            action=action,
            tenant=context,
            roles=tuple(dict.fromkeys(granted)),
            explain=tuple(steps),
            objects=tuple(objects),
        )

    def _second_factor_shown(
        self,
        principal: Principal,
        route: Route,
        granted: list[str],
        tenants: list[str],
        steps: list[str],
    ) -> bool:
        """``False`` when the request needs a second factor its caller has not shown."""
        demands = self._mfa_demands(principal, route, granted, tenants)
        if not demands:
            return True
        steps.extend(demands)
        if principal.auth_method in MACHINE_METHODS:
            steps.append(f"a {principal.auth_method} credential cannot show a second factor")
            return False
        if principal.mfa_time is None:
            steps.append("no second factor was shown in this session")
            return False
        steps.append("a second factor was shown in this session")
        return True

    def _mfa_demands(
        self, principal: Principal, route: Route, granted: list[str], tenants: list[str]
    ) -> list[str]:
        """Why this request needs a second factor (empty: it does not).

        A route's ``mfa`` binds every caller, so a machine credential is refused there;
        a role's or tenant's binds people (machines act in a tenant by their key's grant,
        and cannot sign in with a second factor at all).
        """
        demands = [f"route {route.name!r} requires a second factor"] if route.mfa_required else []
        if principal.auth_method in MACHINE_METHODS:
            return demands
        for name in dict.fromkeys(granted):
            if (role := self._roles.get(name)) is not None and role.mfa_required:
                demands.append(f"role {name!r} requires a second factor")
        for tenant in dict.fromkeys(tenants):
            if tenant in self._mfa_tenants:
                demands.append(f"tenant {tenant!r} requires a second factor")
        return demands

    def shared_file_needs_mfa(self, route: Route, tenant: str | None) -> bool:
        """Whether the recipient of a share link must have shown a second factor: the
        route requires one, or the file's tenant does (a link grants no role, so no
        role's requirement applies; the minter's own request met theirs)."""
        return route.mfa_required or (tenant is not None and tenant in self._mfa_tenants)

    def requires_mfa(self, memberships: Iterable[Membership]) -> bool:
        """Whether a person holding ``memberships`` is asked for a second factor at sign-in:
        one of them is in an MFA tenant (a global grant reaches every tenant, MFA ones
        too), or grants a role with ``mfa: required``."""
        for membership in memberships:
            if membership.tenant in self._mfa_tenants:
                return True
            if membership.tenant == GLOBAL_TENANT and self._mfa_tenants:
                return True
            role = self._roles.get(membership.role)
            if role is not None and role.mfa_required:
                return True
        return False

    def grant(self, principal: Principal, tenant: str, action: str) -> Grant:
        """Roles of ``principal`` that allow ``action`` in ``tenant`` (global-scope roles count)."""
        allowing: list[str] = []
        member = False
        for membership in principal.memberships:
            role = self._roles.get(membership.role)
            if role is None:
                continue  # a role the rules no longer define grants nothing
            if membership.tenant != tenant and not role.scope_global:
                continue
            member = True
            if action in role.can:
                allowing.append(role.name)
        return Grant(tuple(allowing), member)


def _context_tenant(principal: Principal, match: RouteMatch, owners: list[str]) -> str | None:
    """The tenant the request acts in: named in the path, else the object's, else the active one."""
    route: Route = match.route
    if route.tenant_param is not None:
        return match.params.get(route.tenant_param)
    if owners:
        return owners[0]
    return principal.active_tenant


def _deny(
    reason: Reason,
    *steps: str,
    action: str | None = None,
    tenant: str | None = None,
    objects: Sequence[ResolvedRef] = (),
) -> Decision:
    return Decision(
        False,
        reason,
        action=action,
        tenant=tenant,
        explain=(*steps, f"denied: {reason}"),
        objects=tuple(objects),
    )
