"""``/me`` and ``/users``: who calls, people, their memberships and sessions."""

from __future__ import annotations

from gateway.admin import factors, service
from gateway.admin.service import AdminError
from gateway.api.models import (
    Ended,
    FactorsReset,
    Grant,
    Me,
    NewUser,
    RoleChange,
    Session,
    Sessions,
    User,
    Users,
)
from gateway.api.operations import API, Call, Empty


@API.get("/me", response=Me)
async def me(call: Call[Empty, Empty]) -> Me:
    """Who calls, what they administer, and the CSRF token for state changes."""
    return Me.of(call.ctx.actor, call.csrf_token)


@API.get("/users", response=Users)
async def list_users(call: Call[Empty, Empty]) -> Users:
    """The people the caller administers."""
    return Users(items=[User.of(row, call.ctx.actor) for row in await service.list_users(call.ctx)])


@API.post("/users", body=NewUser, response=User, status=201, errors=(404, 409))
async def add_user(call: Call[NewUser, Empty]) -> User | AdminError:
    """Add a person (or memberships to an existing one; their sessions then end)."""
    body = call.body
    grants = [grant.membership() for grant in body.memberships]
    row = await service.add_user(call.ctx, body.email, grants, superadmin=body.superadmin)
    return row if isinstance(row, AdminError) else User.of(row, call.ctx.actor)


@API.get("/users/{email}", response=User, errors=(404,))
async def read_user(call: Call[Empty, Empty]) -> User | AdminError:
    """One person the caller administers."""
    row = await service.get_user(call.ctx, call.path["email"])
    return row if isinstance(row, AdminError) else User.of(row, call.ctx.actor)


@API.post("/users/{email}/memberships", body=Grant, response=User, status=201, errors=(404, 409))
async def add_membership(call: Call[Grant, Empty]) -> User | AdminError:
    """Grant a role in a tenant (the person's sessions end)."""
    row = await service.add_membership(
        call.ctx, call.path["email"], call.body.tenant, call.body.role
    )
    return row if isinstance(row, AdminError) else User.of(row, call.ctx.actor)


@API.put("/users/{email}/memberships/{tenant}", body=RoleChange, response=User, errors=(404, 409))
async def change_role(call: Call[RoleChange, Empty]) -> User | AdminError:
    """Make a role the person's only role in a tenant (their sessions end)."""
    row = await service.change_role(
        call.ctx, call.path["email"], call.path["tenant"], call.body.role
    )
    return row if isinstance(row, AdminError) else User.of(row, call.ctx.actor)


@API.delete("/users/{email}/memberships/{tenant}/{role}", response=User, errors=(404,))
async def remove_membership(call: Call[Empty, Empty]) -> User | AdminError:
    """Withdraw one role in one tenant (the person's sessions end)."""
    path = call.path
    row = await service.remove_membership(call.ctx, path["email"], path["tenant"], path["role"])
    return row if isinstance(row, AdminError) else User.of(row, call.ctx.actor)


@API.post("/users/{email}/deactivate", response=Ended, errors=(404, 409))
async def deactivate_user(call: Call[Empty, Empty]) -> Ended | AdminError:
    """Deactivate a person: every session ends now."""
    return _ended(await service.set_user_active(call.ctx, call.path["email"], False))


@API.post("/users/{email}/reactivate", response=Ended, errors=(404, 409))
async def reactivate_user(call: Call[Empty, Empty]) -> Ended | AdminError:
    """Let a deactivated person sign in again."""
    return _ended(await service.set_user_active(call.ctx, call.path["email"], True))


@API.get("/users/{email}/sessions", response=Sessions, errors=(404,))
async def list_sessions(call: Call[Empty, Empty]) -> Sessions | AdminError:
    """A person's open sessions, newest first."""
    rows = await service.list_sessions(call.ctx, call.path["email"])
    return rows if isinstance(rows, AdminError) else Sessions(items=[Session.of(r) for r in rows])


@API.delete("/users/{email}/sessions", response=Ended, errors=(404,))
async def end_sessions(call: Call[Empty, Empty]) -> Ended | AdminError:
    """End every session of a person now."""
    return _ended(await service.end_user_sessions(call.ctx, call.path["email"]))


@API.post("/users/{email}/factors/reset", response=FactorsReset, errors=(404,))
async def reset_factors(call: Call[Empty, Empty]) -> FactorsReset | AdminError:
    """Remove a person's second factors (the password stays); their sessions end and
    the next sign-in enrols a new one where the rules require it."""
    done = await factors.reset_second_factors(call.ctx, call.path["email"])
    if isinstance(done, AdminError):
        return done
    return FactorsReset(
        totp=done.removed.totp,
        recovery_codes=done.removed.recovery_codes_left,
        passkeys=done.removed.passkeys,
        password_kept=done.removed.password,
        sessions=done.sessions,
        pending_sign_ins=done.pending,
    )


def _ended(result: int | AdminError) -> Ended | AdminError:
    return result if isinstance(result, AdminError) else Ended(sessions=result)
