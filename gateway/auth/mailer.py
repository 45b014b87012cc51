"""Outgoing mail: SMTP (aiosmtplib: plain, STARTTLS or TLS) or an outbox folder.

The outbox is the embedded default: each message is one ``.eml`` file and is echoed to
the console, so a demo needs no mail server.
"""

from __future__ import annotations

import logging
import ssl
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

import aiosmtplib

from gateway.config.settings import MailSettings

log = logging.getLogger("gatehold.mail")


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


class OutboxMailer:
    """Writes each message to ``<folder>/<time>-<n>.eml`` and prints it."""

    def __init__(self, folder: Path, *, echo: bool = True) -> None:
        self._folder = folder
        self._echo = echo
        self._count = 0

    async def send(self, message: EmailMessage) -> None:
        self._folder.mkdir(parents=True, exist_ok=True)
        self._count += 1
        path = self._folder / f"{time.time():.6f}-{self._count}.eml"
        path.write_bytes(message.as_bytes())
        if self._echo:
            print(f"\n--- mail to {message['To']} ({path.name}) ---\n{message.get_content()}")


class SmtpMailer:
    """Sends through an SMTP server."""

    def __init__(self, settings: MailSettings, *, ca_file: Path | None = None) -> None:
        self._settings = settings
        # Certificates are always verified; ``ca_file`` adds a private CA.
        self._tls = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)

    async def send(self, message: EmailMessage) -> None:
        s = self._settings
        await aiosmtplib.send(
            message,
            hostname=s.host,
            port=s.port,
            username=s.username,
            password=s.password,
            use_tls=s.security == "tls",
            start_tls=s.security == "starttls",
            tls_context=self._tls if s.security != "plain" else None,
            timeout=15,
        )


def build_mailer(settings: MailSettings, outbox: Path, *, ca_file: Path | None = None) -> Mailer:
    if settings.mode == "smtp":
        return SmtpMailer(settings, ca_file=ca_file)
    return OutboxMailer(outbox)


def login_message(*, sender: str, to: str, link: str, minutes: int) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = "Your sign-in link"
    message.set_content(
        f"Use this link to sign in. It works once and expires in {minutes} minutes.\n\n"
        f"{link}\n\nIf you did not ask for it, ignore this message.\n"
    )
    return message


def invite_message(
    *, sender: str, to: str, link: str, inviter: str, tenants: str, valid_for: float, login_url: str
) -> EmailMessage:
    """An invitation: who invited the person, to which tenants, and a link that signs in.

    The subject is fixed: names chosen by admins go in the body only, never in a header.
    """
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = "You are invited to sign in"
    message.set_content(
        f"{inviter} invited you to {tenants}.\n\n"
        f"Use this link to sign in. It works once and expires in {_span(valid_for)}.\n\n"
        f"{link}\n\n"
        f"Once it has expired, ask for a new link with this address at {login_url}\n"
        "If you did not expect this invitation, ignore this message.\n"
    )
    return message


def _span(seconds: float) -> str:
    """``3 days``, ``12 hours`` or ``30 minutes``: the largest unit that fits."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return "1 minute"
