"""The one email address check: a strict RFC 5322 ``addr-spec``, nothing around it.

Every place that takes an address from outside (the magic-link form, ``gatehold users
add``, an OIDC provider's email claim) goes through ``normalize_email``. It accepts a
dot-atom local part and a DNS host name, in ASCII, and nothing else: no display name
(``Eve <victim@acme.test>``), no angle brackets, comments, quoted local parts, spaces
or line breaks, no second ``@``, no address literal, no raw Unicode (internationalized
domains must come in their ``xn--`` form, and must decode). An address that could be
read two ways — by a mail server, a browser, an upstream app — is refused rather than
repaired, as request targets are.
"""

from __future__ import annotations

import re

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_TLD = re.compile(r"[a-z]{2,63}|xn--[a-z0-9-]{1,59}")
MAX_LENGTH = 254
"""RFC 5321's limit on a forward path, less its angle brackets."""


def normalize_email(value: str) -> str | None:
    """``value`` lower-cased if it is exactly one plain address, else ``None``."""
    if not value.isascii() or len(value) > MAX_LENGTH or value.count("@") != 1:
        return None
    local, domain = value.split("@")
    if len(local) > 64 or not _LOCAL.fullmatch(local):
        return None
    domain = domain.lower()
    if not _valid_domain(domain):
        return None
    return f"{local.lower()}@{domain}"


def _valid_domain(domain: str) -> bool:
    labels = domain.split(".")
    if len(labels) < 2 or not _TLD.fullmatch(labels[-1]):
        return False
    return all(_LABEL.fullmatch(label) and _valid_a_label(label) for label in labels)


def _valid_a_label(label: str) -> bool:
    """A label with the IDNA prefix must decode and encode back to itself.

    ``xn--a`` (a control character) or ``xn--fa-hia`` (which maps to ``fass``) would be
    read differently by different software; other ``??--`` labels are reserved.
    """
    if label[2:4] != "--":
        return True
    if not label.startswith("xn--"):
        return False
    try:
        return label.encode("ascii").decode("idna").encode("idna") == label.encode("ascii")
    except UnicodeError:
        return False


def is_email(value: str) -> bool:
    """Whether ``value`` is exactly one plain address (see ``normalize_email``)."""
    return normalize_email(value) is not None
