"""The values an OIDC sign-in produces on its way through the gateway."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LinkRequest:
    """Who asked, while signed in, to tie the account they sign in with next to themselves."""

    user_id: int
    session_hash: str


@dataclass(frozen=True, slots=True)
class Identified:
    """What a provider vouched for, after every check passed."""

    provider: str
    issuer: str
    subject: str
    email: str
    groups: tuple[str, ...]
    auth_time: float
    rd: str
    step_up: bool
    email_verified: bool = False
    """Only a literal ``true`` claim; a missing or odd one is not a verification."""
    link: LinkRequest | None = None


@dataclass(frozen=True, slots=True)
class Refused:
    """A login that failed: a reason code for the page and the audit, and who it was."""

    reason: str
    provider: str
    actor: str = "unknown"
    shown: str = ""
    """The code the page shows, when ``reason`` would tell whether an account exists (I9)."""


@dataclass(frozen=True, slots=True)
class OidcSignIn:
    """A person to sign in, after provisioning."""

    user_id: int
    email: str
    rd: str
    auth_time: float
    memberships_changed: bool
    linked_via: str = ""
    """How a new (issuer, subject) was tied to the person; empty for a returning one."""
