"""Users: the people an admin administers, one person's memberships, state and
sessions, and inviting someone new.

Every change goes through ``gateway.admin.service`` / ``invites`` (which check that the
admin may make it, end the sessions it affects and audit it with before and after); a
refusal is shown on the page it came from, with what was typed kept.
"""

from __future__ import annotations

from aiohttp import web

from admin_ui.pages.people_shown import (
    offered_roles,
    offered_tenants,
    person_path,
    shown,
)
from admin_ui.view import Page, View
from gateway.admin import factors, invites, service
from gateway.admin.service import AdminError
from gateway.model import GLOBAL_TENANT, Membership

MAX_SEARCH = 100
INVITE_FIELDS = ("email", "name", "tenant", "role")


async def users_list(view: View) -> web.StreamResponse:
    """Everyone the admin administers; ``q`` narrows by email or name. An htmx request
    (search as you type) gets only the table."""
    search = view.query("q")[:MAX_SEARCH]
    users = await service.list_users(view.ctx, search=search)
    template = "users_table.html" if view.htmx else "users_list.html"
    return view.page(template, title="Users", users=users, search=search, **shown(view.ctx))


# ---------------------------------------------------------------- one person


def _email(view: View) -> str:
    return view.request.match_info["email"]


async def person(view: View) -> web.StreamResponse:
    return await _person_page(view, _email(view))


async def _person_page(
    view: View,
    email: str,
    *,
    error: AdminError | None = None,
    typed: dict[str, str] | None = None,
) -> web.StreamResponse:
    """The person's page; with ``error``, showing it (with its status) above the forms,
    and the grant form holding what was ``typed``."""
    user = await service.get_user(view.ctx, email)
    if isinstance(user, AdminError):
        return view.refused(user, title="No such person")
    sessions = await service.list_sessions(view.ctx, user.email)
    tenants = await service.list_tenants(view.ctx)
    seen = shown(view.ctx)
    managed = seen["grants"](user)
    enrolled = await factors.factors_of_person(view.ctx, user.email)
    return view.page(
        "users_person.html",
        status=error.status if error is not None else 200,
        title=user.display_name or user.email,
        user=user,
        sessions=[] if isinstance(sessions, AdminError) else sessions,
        roles=offered_roles(view.ctx),
        tenants=offered_tenants(view.ctx, tenants),
        key_tenants=sorted({m.tenant for m in managed if m.tenant != GLOBAL_TENANT}),
        error=error,
        typed=typed or {},
        elsewhere=len(user.memberships) - len(managed),
        factors=None if isinstance(enrolled, AdminError) else enrolled,
        **seen,
    )


async def _after(
    view: View, result: object, notice: str, typed: dict[str, str] | None = None
) -> web.StreamResponse:
    """Back to the person's page: with a notice once done, or showing the refusal."""
    email = _email(view)
    if isinstance(result, AdminError):
        return await _person_page(view, email, error=result, typed=typed)
    return view.see_other(person_path(email), notice=notice)


async def _grant_form(view: View) -> dict[str, str]:
    form = await view.form()
    return {"tenant": form.get("tenant", "").strip(), "role": form.get("role", "").strip()}


async def add_membership(view: View) -> web.StreamResponse:
    typed = await _grant_form(view)
    tenant, role = typed["tenant"], typed["role"]
    result = await service.add_membership(view.ctx, _email(view), tenant, role)
    return await _after(view, result, f"Granted {role} in {tenant}.", typed)


async def change_role(view: View) -> web.StreamResponse:
    typed = await _grant_form(view)
    tenant, role = typed["tenant"], typed["role"]
    result = await service.change_role(view.ctx, _email(view), tenant, role)
    return await _after(view, result, f"The role in {tenant} is now {role}; sessions ended.")


async def remove_membership(view: View) -> web.StreamResponse:
    typed = await _grant_form(view)
    tenant, role = typed["tenant"], typed["role"]
    result = await service.remove_membership(view.ctx, _email(view), tenant, role)
    return await _after(view, result, f"Removed {role} in {tenant}; sessions ended.")


async def deactivate(view: View) -> web.StreamResponse:
    ended = await service.set_user_active(view.ctx, _email(view), False)
    return await _after(view, ended, f"Deactivated; {ended} session(s) ended.")


async def reactivate(view: View) -> web.StreamResponse:
    result = await service.set_user_active(view.ctx, _email(view), True)
    return await _after(view, result, "Reactivated: they can sign in again.")


async def end_sessions(view: View) -> web.StreamResponse:
    """End one session (the form names its id hash) or, without one, all of them."""
    session = (await view.form()).get("session", "").strip() or None
    ended = await service.end_user_sessions(view.ctx, _email(view), session)
    return await _after(view, ended, f"{ended} session(s) ended.")


async def reset_factors(view: View) -> web.StreamResponse:
    """Remove the person's second factors (the password stays); their sessions end."""
    done = await factors.reset_second_factors(view.ctx, _email(view))
    notice = "Second factors removed; sessions ended. The next sign-in sets up a new one."
    return await _after(view, done, notice)


# ---------------------------------------------------------------- invite


async def invite_form(view: View) -> web.StreamResponse:
    return await _invite_page(view, typed=dict.fromkeys(INVITE_FIELDS, ""))


async def _invite_page(
    view: View, *, typed: dict[str, str], error: AdminError | None = None
) -> web.StreamResponse:
    tenants = await service.list_tenants(view.ctx)
    return view.page(
        "users_invite.html",
        status=error.status if error is not None else 200,
        title="Invite someone",
        typed=typed,
        error=error,
        roles=offered_roles(view.ctx),
        tenants=offered_tenants(view.ctx, tenants),
    )


async def invite(view: View) -> web.StreamResponse:
    """Grant the chosen role and mail a sign-in link; the form again, kept, if refused."""
    form = await view.form()
    typed = {name: form.get(name, "").strip() for name in INVITE_FIELDS}
    invited = await invites.invite_user(
        view.ctx,
        typed["email"],
        [Membership(typed["tenant"], typed["role"])],
        display_name=typed["name"],
    )
    if isinstance(invited, AdminError):
        return await _invite_page(view, typed=typed, error=invited)
    notice = f"Invited {invited.email}: a sign-in link is on its way."
    if invited.queued:
        notice = f"Invited {invited.email}: {invites.QUEUED_NOTE}."
    return view.see_other(person_path(invited.email), notice=notice)


PAGES = (
    Page("GET", "/users", users_list),
    Page("GET", "/users/invite", invite_form),
    Page("POST", "/users/invite", invite),
    Page("GET", "/users/{email}", person),
    Page("POST", "/users/{email}/memberships", add_membership),
    Page("POST", "/users/{email}/memberships/role", change_role),
    Page("POST", "/users/{email}/memberships/remove", remove_membership),
    Page("POST", "/users/{email}/deactivate", deactivate),
    Page("POST", "/users/{email}/reactivate", reactivate),
    Page("POST", "/users/{email}/sessions/end", end_sessions),
    Page("POST", "/users/{email}/factors/reset", reset_factors),
)
