"""Magic-link sign-in (SPEC §4).

The request answer never depends on whether the account exists: the handler only
checks the rate limits and queues the work; looking the person up, storing the token
and sending the mail happen afterwards, in the background. Links are built from the
configured public URL, never from the request's ``Host`` header. A link opens a
confirm page; only the POST from that page consumes the token, so mail scanners that
prefetch links do not burn it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit import AuditWriter, event_entry
from gateway.auth.emails import normalize_email
from gateway.auth.mail_outbox import MailOutbox
from gateway.auth.mailer import Mailer, invite_message, login_message
from gateway.auth.sign_in_limits import SignInLimits, Unavailable
from gateway.config.settings import MagicLinkSettings
from gateway.model import Membership
from gateway.store import login_links
from gateway.store import users as user_store

log = logging.getLogger("gatehold.magic_link")
CONFIRM_PATH = "/.gatehold/login/magic/confirm"
LOGIN_PATH = "/.gatehold/login"


@dataclass(frozen=True, slots=True)
class Invitation:
    """An invite to mail: to whom, from whom, into which tenants, valid how long."""

    email: str
    inviter: str
    """Who invited them, as the mail names them."""
    tenants: tuple[str, ...]
    """The tenants they were invited into, as the mail names them."""
    valid_for: float
    """Seconds the link works."""


@dataclass(frozen=True, slots=True)
class SignIn:
    """A consumed link: who signs in and where they go next."""

    user_id: int
    email: str
    rd: str


def binding_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _address(email: str) -> str:
    address = normalize_email(email)
    if address is None:
        raise ValueError("a magic link needs an address that passed valid_email()")
    return address


class MagicLinks:
    """Issues and redeems sign-in links."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        outbox: MailOutbox,
        audit: AuditWriter,
        settings: MagicLinkSettings,
        ttl: float,
        public_url: str,
        sender: str,
        limits: SignInLimits | None = None,
        clock: Callable[[], float] = time.time,
        guests: Callable[[str, float], Awaitable[bool]] | None = None,
    ) -> None:
        self._engine = engine
        self.outbox = outbox
        self._audit = audit
        self.settings = settings
        self._ttl = ttl
        self._public_url = public_url.rstrip("/")
        self._sender = sender
        self._clock = clock
        self._limits = limits
        self._guests = guests
        """Whether an address without an account may sign in now (a live share link
        names it as its recipient); such a person gets an account with no membership."""
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def public_url(self) -> str:
        """The gateway's public base URL, which links are built from (never the Host)."""
        return self._public_url

    @property
    def mailer(self) -> Mailer:
        """The mailer links go out with (the admin service mails through it too)."""
        return self.outbox.mailer

    @property
    def mail_delayed(self) -> bool:
        """Whether mail is failing for everyone now: links wait in the outbox."""
        return self.outbox.delayed

    @staticmethod
    def valid_email(email: str) -> bool:
        """Exactly one plain address (``gateway.auth.emails``): no display name, no tricks."""
        return normalize_email(email) is not None

    async def admit(self, email: str, *, client_ip: str) -> int | Unavailable:
        """0 if a link may be asked for ``email`` now, else the seconds to wait, or
        ``Unavailable`` when the limits cannot be counted (``sign_in_limits``).

        ``email`` must have passed ``valid_email``; anything else is refused here too.
        Without limits (the admin service's instance, which only invites) nothing is
        admitted.
        """
        address = _address(email)
        if self._limits is None:
            return Unavailable()
        return await self._limits.admit(address, client_ip=client_ip)

    def issue(self, email: str, *, client_ip: str, rd: str, binding: str | None) -> None:
        """Look the address up, store and mail a link, in the background.

        Call it only once the requester has been answered: the answer must not wait for,
        or be slowed by, work that differs between known and unknown addresses.
        """
        task = asyncio.create_task(
            self._issue(_address(email), client_ip=client_ip, rd=rd, binding=binding)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Let queued mails go out."""
        await self.wait_sent()

    async def wait_sent(self, timeout: float = 10.0) -> None:
        """Wait until every queued link has been stored and mailed (or failed)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def _issue(self, email: str, *, client_ip: str, rd: str, binding: str | None) -> None:
        try:
            user = await user_store.get_user_by_email(self._engine, email)
            known = user is not None and user.active
            if not known and not self._signup_grant(email) and not await self._guest(email):
                self._audit.record(event_entry("magic-link-unknown", actor=email, client=client_ip))
                return
            token = await login_links.create_link(
                self._engine,
                email=email,
                rd=rd,
                ttl=self._ttl,
                now=self._clock(),
                client_ip=client_ip,
                binding_hash=binding_hash(binding) if binding else None,
            )
            link = f"{self._public_url}{CONFIRM_PATH}?token={quote(token)}"
            message = login_message(
                sender=self._sender, to=email, link=link, minutes=int(self._ttl // 60)
            )
            expires_at = self._clock() + self._ttl
            sent = await self.outbox.send(message, kind="magic-link", expires_at=expires_at)
            event = "magic-link-sent" if sent else "magic-link-queued"
            self._audit.record(event_entry(event, actor=email, client=client_ip))
        except Exception as error:  # the requester was already answered; log and audit
            log.exception("magic link for %s could not be sent", email)
            self._audit.record(event_entry("magic-link-failed", actor=email, error=repr(error)))

    async def invite(self, invitation: Invitation) -> bool:
        """Store a sign-in link for an invited person and mail it: ``True`` if delivered
        now, ``False`` if it waits in the outbox (the mail server is unreachable). The
        link is bound to no browser: nobody asked."""
        token = await login_links.create_link(
            self._engine,
            email=invitation.email,
            rd="/",
            ttl=invitation.valid_for,
            now=self._clock(),
            client_ip="invite",
            binding_hash=None,
        )
        message = invite_message(
            sender=self._sender,
            to=invitation.email,
            link=f"{self._public_url}{CONFIRM_PATH}?token={quote(token)}",
            inviter=invitation.inviter,
            tenants=", ".join(invitation.tenants),
            valid_for=invitation.valid_for,
            login_url=f"{self._public_url}{LOGIN_PATH}",
        )
        expires_at = self._clock() + invitation.valid_for
        return await self.outbox.send(message, kind="invite", expires_at=expires_at)

    async def _guest(self, email: str) -> bool:
        return self._guests is not None and await self._guests(email, self._clock())

    def _signup_grant(self, email: str) -> Membership | None:
        grant = self.settings.self_signup.get(email.rsplit("@", 1)[-1])
        return Membership(grant.tenant, grant.role) if grant else None

    async def peek(self, token: str) -> str | None:
        """The address a still-working link signs in, without consuming it (the GET)."""
        link = await login_links.peek_link(self._engine, token, self._clock())
        return link.email if link is not None else None

    async def redeem(self, token: str, *, binding: str | None) -> SignIn | str:
        """Consume the link once; a ``SignIn`` or the reason code it failed with."""
        link = await login_links.consume_link(self._engine, token, self._clock())
        if link is None:
            return "link-invalid"
        if link.binding_hash is not None and (
            binding is None or binding_hash(binding) != link.binding_hash
        ):
            return "link-other-browser"
        user = await user_store.get_user_by_email(self._engine, link.email)
        if user is None:
            grant = self._signup_grant(link.email)
            if grant is None and not await self._guest(link.email):
                return "not-invited"
            granted = [grant] if grant is not None else []
            user_id = await user_store.add_user(self._engine, link.email, memberships=granted)
            user = await user_store.get_user(self._engine, user_id)
            if grant is None:
                self._audit.record(event_entry("guest-added", actor=link.email, via="share-link"))
        if user is None or not user.active:
            return "user-inactive"
        return SignIn(user.id, user.email, link.rd)
