"""What every front end of the admin service (JSON API, browser UI) hands it.

One place builds the ``AdminContext`` of a call inside a running gateway, so the API
and the UI cannot drift apart in what a change does (which sessions end, which mail
goes out, which settings apply).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.admin.service import Admin, AdminContext
from gateway.auth.magic_link import Invitation
from gateway.auth.mailer import Mailer
from gateway.config.settings import Settings
from gateway.context import Gateway


@dataclass(frozen=True, slots=True)
class ServiceParts:
    """What the admin service needs beyond the gateway: the settings (the rules lifecycle
    reads who manages the rules) and the mail that invites and access decisions send."""

    settings: Settings
    mailer: Mailer | None = None
    send_invite: Callable[[Invitation], Awaitable[bool]] | None = None

    def context(self, gw: Gateway, admin: Admin) -> AdminContext:
        """The context ``admin`` acts in, inside the gateway ``gw`` (its rules in force)."""
        return AdminContext.over(
            gw.sessions.engine,
            gw.audit,
            admin,
            gw.policy.roles,
            end_sessions=gw.sessions.revoke_user,
            end_session=gw.sessions.revoke,
            settings=self.settings,
            mailer=self.mailer,
            sender=self.settings.mail.sender,
            send_invite=self.send_invite,
            access_requests=self.settings.access_requests,
            reviews=self.settings.reviews,
        )
