"""Which new passwords are accepted: NIST SP 800-63B §5.1.1.2, as a value, no exceptions.

Length over composition: at least ``min_length`` characters (Unicode NFKC first, so a
full-width ``ｐａｓｓｗｏｒｄ`` is ``password``), at most ``max_length``, any characters
including spaces and emoji, no "one digit and one symbol" rules and no expiry. A
password is refused when it is common or guessable: the zxcvbn estimator (its shipped
frequency lists of leaked passwords, names and words) scores it below ``min_score``, or
its match sequence is mostly an entry of zxcvbn's ``passwords`` list, or it contains
the person's email name or the site's name (both also given to zxcvbn as user inputs,
so variants of them score low too).

zxcvbn is fed at most its own limit of 72 characters (the rest only adds guesses)
and runs in the caller's thread: it keeps its user inputs in module state, so two
threads evaluating at once would mix them up; one check costs a few milliseconds.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from gateway.config.settings import PasswordSettings

ZXCVBN_MAX_LENGTH = 72
SHORTEST_NAME = 3
COMMON_SHARE = 0.5
"""A password whose matches in the common-password list cover more than this share of
it is one of them with a little decoration (``password2024!``)."""
_NAME_PARTS = re.compile(r"[._+\-]+")


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a new password may be used; if not, why (codes) and what to do (messages)."""

    reasons: tuple[str, ...] = ()
    """Stable codes for the audit: ``password-too-short``, ``password-too-long``,
    ``password-common``, ``password-contains-name``, ``password-weak``."""
    messages: tuple[str, ...] = ()
    """Sentences for the person choosing it, zxcvbn's advice among them."""

    @property
    def ok(self) -> bool:
        return not self.reasons


def normalize(password: str) -> str:
    """The form a password is checked, hashed and verified in (NFKC, SP 800-63B)."""
    return unicodedata.normalize("NFKC", password)


def site_names(configured: Iterable[str], public_url: str) -> tuple[str, ...]:
    """Words no password may contain: ``configured``, the public host's labels (not its
    top-level domain nor ``www``) and ``gatehold``; lower-case, three letters or more."""
    host = (urlsplit(public_url).hostname or "").lower()
    labels = host.split(".")
    if len(labels) > 1 and not host.replace(".", "").isdigit():
        labels = labels[:-1]
    elif host.replace(".", "").isdigit():
        labels = []  # an IP address names nothing
    words = [*configured, *labels, "gatehold"]
    return tuple(
        dict.fromkeys(
            w.strip().lower() for w in words if len(w.strip()) >= SHORTEST_NAME and w != "www"
        )
    )


def email_names(email: str) -> tuple[str, ...]:
    """The email's local part and its pieces (``john.smith`` → john.smith, john, smith)."""
    local = email.rsplit("@", 1)[0].strip().lower()
    pieces = [local, *_NAME_PARTS.split(local)]
    return tuple(dict.fromkeys(p for p in pieces if len(p) >= SHORTEST_NAME))


class PasswordPolicy:
    """Checks a new password against the settings; ``check`` returns a ``Verdict``."""

    def __init__(self, settings: PasswordSettings, *, public_url: str) -> None:
        self.min_length = settings.min_length
        self.max_length = settings.max_length
        self.min_score = settings.min_score
        self.site_names = site_names(settings.site_names, public_url)

    def check(self, password: str, *, email: str) -> Verdict:
        if len(password) > 4 * self.max_length:  # not worth normalizing
            return self._too_long()
        candidate = normalize(password)
        if len(candidate) > self.max_length:
            return self._too_long()
        if len(candidate) < self.min_length:
            return Verdict(
                ("password-too-short",),
                (
                    f"Use at least {self.min_length} characters. Several unrelated words "
                    "make a long password that is easy to remember.",
                ),
            )
        names = (*email_names(email), *self.site_names)
        found = [name for name in names if name in candidate.casefold()]
        if found:
            return Verdict(
                ("password-contains-name",),
                (
                    f"Leave out “{found[0]}”: a password must not contain your email "
                    "name or the name of this site.",
                ),
            )
        return self._estimate(candidate, names)

    def _estimate(self, candidate: str, names: Sequence[str]) -> Verdict:
        # Imported on first use: its word lists take 12 MiB of every process that
        # imports it, and only a gateway with local passwords turned on checks one.
        from zxcvbn import zxcvbn  # type: ignore[import-untyped]  # ships no types

        result: dict[str, Any] = zxcvbn(candidate[:ZXCVBN_MAX_LENGTH], user_inputs=list(names))
        advice = _advice(result)
        if _mostly_common(result["sequence"], min(len(candidate), ZXCVBN_MAX_LENGTH)):
            first = "This is one of the passwords attackers try first (a list of common passwords)."
            return Verdict(("password-common",), (first, *advice))
        if int(result["score"]) < self.min_score:
            first = "This password would be too easy to guess."
            return Verdict(("password-weak",), (first, *advice))
        return Verdict()

    def _too_long(self) -> Verdict:
        return Verdict(("password-too-long",), (f"Use at most {self.max_length} characters.",))


def _mostly_common(sequence: Sequence[dict[str, Any]], length: int) -> bool:
    covered = sum(
        len(match["token"])
        for match in sequence
        if match.get("pattern") == "dictionary" and match.get("dictionary_name") == "passwords"
    )
    return length > 0 and covered / length > COMMON_SHARE


def _advice(result: dict[str, Any]) -> tuple[str, ...]:
    feedback = result.get("feedback") or {}
    lines = [feedback.get("warning") or "", *(feedback.get("suggestions") or [])]
    return tuple(line for line in lines if line)
