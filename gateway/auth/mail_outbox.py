"""A durable mail outbox: sign-in links and invitations are not lost when SMTP is down.

Every message is stored first (sealed: it holds a sign-in link, a credential), then
tried at once. Delivered, it is deleted. Undelivered, it stays in the store and a
background sender tries it again with growing pauses (``mail.retry_first`` doubling up
to ``mail.retry_max``), across restarts, until it is delivered or the link inside has
expired (then it is dropped, audited ``mail-expired``). A mail outage is logged once
when it starts and once when it ends (``outage.OutageNotice``), and ``delayed`` tells
the sign-in page to say that mail is late, for every address alike.

Several gateways on one store share the outbox: a message is claimed before each try
(``store.mail_outbox``), so only one of them sends it. Delivery is at least once: a
sender stopped between the mail server's acceptance and the row's deletion leaves the
message to be sent again when its claim runs out.

Audit events: ``mail-queued`` (the first try failed; the message waits), ``mail-failed``
(a later try failed), ``mail-sent`` (delivered after waiting), ``mail-expired`` (dropped
undelivered: the link expired, or the message cannot be unsealed with the key in use).
A message delivered at the first try leaves only its sender's own event
(``magic-link-sent``, ``user-invited``).
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import logging
import secrets
import time
from collections.abc import Callable
from email.message import EmailMessage

from cryptography.fernet import InvalidToken
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit import AuditWriter, event_entry
from gateway.auth.keys import MAIL_KEY, fernet_of, load_or_create_secret
from gateway.auth.mailer import Mailer, build_mailer
from gateway.config.durations import parse_duration
from gateway.config.settings import Settings
from gateway.errors import StoreUnavailable
from gateway.outage import OutageNotice
from gateway.store import mail_outbox as outbox_store
from gateway.store.mail_outbox import QueuedMail
from gateway.store.notify import woken

log = logging.getLogger("gatehold.mail")

LEASE = 60.0
"""Seconds a sender holds a claimed message: longer than one SMTP try (15 s timeout)."""
POLL_CEILING = 30.0
"""The longest pause between two looks for due messages."""


class MailSeal:
    """Seals whole messages with one key (Fernet): ``<data_dir>/keys/mail.key``."""

    def __init__(self, key: bytes) -> None:
        self._fernet = fernet_of(key, "mail sealing")

    def seal(self, message: EmailMessage) -> str:
        return self._fernet.encrypt(message.as_bytes()).decode()

    def open(self, sealed: str) -> EmailMessage | None:
        """The message, or ``None`` if it was sealed with another key or altered."""
        try:
            raw = self._fernet.decrypt(sealed.encode())
        except (InvalidToken, ValueError):
            return None
        return email.message_from_bytes(raw, policy=email.policy.default)


class MailOutbox:
    """Queues messages durably, tries them at once, and retries them in the background."""

    def __init__(
        self,
        engine: AsyncEngine,
        mailer: Mailer,
        audit: AuditWriter,
        seal: MailSeal,
        *,
        retry_first: float,
        retry_max: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self.mailer = mailer
        self._audit = audit
        self._seal = seal
        self._retry_first = retry_first
        self._retry_max = max(retry_max, retry_first)
        self._clock = clock
        self._outage = OutageNotice(
            log,
            "mail cannot be delivered; messages wait in the outbox",
            "mail is delivered again; the outbox is being emptied",
        )
        self._store_outage = OutageNotice(
            log, "the mail outbox cannot read the store", "the mail outbox reads the store again"
        )
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def delayed(self) -> bool:
        """Whether mail delivery is failing now (for everyone: no address is singled out)."""
        return self._outage.ongoing

    async def start(self) -> None:
        self._wake.set()  # messages left from before a restart go out at once
        self._task = asyncio.create_task(self._run(), name="mail-outbox")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def send(self, message: EmailMessage, *, kind: str, expires_at: float) -> bool:
        """Store ``message`` and try it now: ``True`` if delivered, ``False`` if it waits.

        Raises ``StoreUnavailable`` when it cannot be stored (then nothing was sent).
        """
        now = self._clock()
        mail = await outbox_store.enqueue(
            self._engine,
            kind=kind,
            recipient=str(message["To"]),
            sealed=self._seal.seal(message),
            now=now,
            expires_at=expires_at,
            claim=secrets.token_hex(16),
            lease=LEASE,
        )
        return await self._attempt(mail, message)

    async def deliver_due(self) -> int:
        """Try every message that is due now; the number delivered."""
        delivered = 0
        now = self._clock()
        claimed = await outbox_store.claim_due(
            self._engine, now=now, lease=LEASE, claim=secrets.token_hex(16)
        )
        for mail in claimed:
            message = self._seal.open(mail.sealed)
            if mail.expires_at <= self._clock() or message is None:
                await self._drop(mail, "expired" if message is not None else "unreadable")
                continue
            delivered += await self._attempt(mail, message)
        return delivered

    async def _attempt(self, mail: QueuedMail, message: EmailMessage) -> bool:
        try:
            await self.mailer.send(message)
        except Exception as error:  # refused, unreachable, TLS…: try again later
            self._outage.failed(error)
            await self._failed(mail, error)
            return False
        self._outage.worked()
        try:
            await outbox_store.remove(self._engine, mail)
        except StoreUnavailable as error:  # delivered: at worst sent again after the lease
            log.warning(
                "a delivered message stays in the outbox until the store is back: %s", error
            )
        if mail.attempts:
            self._audit.record(
                event_entry(
                    "mail-sent",
                    actor=mail.recipient,
                    mail=mail.kind,
                    attempts=mail.attempts + 1,
                    waited=round(self._clock() - mail.created_at, 1),
                )
            )
        return True

    async def _failed(self, mail: QueuedMail, error: Exception) -> None:
        delay = min(self._retry_max, self._retry_first * 2**mail.attempts)
        described = f"{type(error).__name__}: {error}"
        try:
            await outbox_store.reschedule(
                self._engine, mail, next_attempt=self._clock() + delay, error=described
            )
        except StoreUnavailable as store_error:  # it is tried again when the lease ends
            log.warning("a failed message could not be rescheduled: %s", store_error)
        self._audit.record(
            event_entry(
                "mail-queued" if mail.attempts == 0 else "mail-failed",
                actor=mail.recipient,
                mail=mail.kind,
                attempt=mail.attempts + 1,
                error=described[:300],
                retry_in=round(delay, 1),
            )
        )

    async def _drop(self, mail: QueuedMail, why: str) -> None:
        await outbox_store.remove(self._engine, mail)
        self._audit.record(
            event_entry(
                "mail-expired",
                actor=mail.recipient,
                mail=mail.kind,
                why=why,
                attempts=mail.attempts,
            )
        )

    async def _run(self) -> None:
        interval = min(POLL_CEILING, max(0.05, self._retry_first))
        while True:
            await woken(self._wake, interval)
            self._wake.clear()
            try:
                await self.deliver_due()
            except StoreUnavailable as error:
                self._store_outage.failed(error)
                continue
            except Exception:  # never let the sender die: the next poll tries again
                log.exception("the mail outbox sender failed")
                continue
            self._store_outage.worked()


def build_outbox(settings: Settings, engine: AsyncEngine, audit: AuditWriter) -> MailOutbox:
    """The outbox of ``settings.mail``: its mailer, its key, its retry pauses."""
    mail = settings.mail
    return MailOutbox(
        engine,
        build_mailer(mail, settings.outbox_path, ca_file=settings.mail_ca_path),
        audit,
        MailSeal(load_or_create_secret(settings.data_path / "keys" / MAIL_KEY)),
        retry_first=parse_duration(mail.retry_first),
        retry_max=parse_duration(mail.retry_max),
    )
