"""The password policy (NIST SP 800-63B): length, common passwords, names, no composition.

The common passwords come from zxcvbn's own shipped frequency list, read here from the
package, never written out by hand.
"""

from __future__ import annotations

import random
import unicodedata

import pytest
from zxcvbn.frequency_lists import FREQUENCY_LISTS  # type: ignore[import-untyped]

from gateway.auth.password_policy import PasswordPolicy, Verdict, email_names, site_names
from gateway.config.settings import PasswordSettings

PUBLIC_URL = "https://portal.acme-logistics.example"
COMMON = [word for word in FREQUENCY_LISTS["passwords"][:200]]
LONG_COMMON = [word for word in FREQUENCY_LISTS["passwords"] if len(word) >= 12][:60]
"""Common passwords that pass the length rule: something else must refuse them."""


def policy(**settings: object) -> PasswordPolicy:
    return PasswordPolicy(PasswordSettings.model_validate(settings), public_url=PUBLIC_URL)


def full_width(text: str) -> str:
    """The full-width form of ASCII letters and digits (NFKC folds it back)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


@pytest.mark.parametrize("common", COMMON)
def test_the_200_most_common_passwords_are_refused(common: str) -> None:
    assert not policy().check(common, email="carol@acme.test").ok


@pytest.mark.parametrize("common", COMMON)
def test_common_passwords_are_refused_even_under_a_short_minimum_length(common: str) -> None:
    """With the length rule at its lowest (8), the list and the score still refuse them."""
    verdict = policy(min_length=8).check(common, email="carol@acme.test")
    assert not verdict.ok
    if len(common) >= 8:
        assert set(verdict.reasons) <= {"password-common", "password-weak"}


@pytest.mark.parametrize("common", LONG_COMMON)
def test_long_common_passwords_are_refused_as_common_or_weak(common: str) -> None:
    verdict = policy().check(common, email="carol@acme.test")
    assert verdict.reasons in (("password-common",), ("password-weak",)), verdict


@pytest.mark.parametrize("common", LONG_COMMON[:20] + ["password1234", "iloveyou2024"])
def test_full_width_spellings_of_a_refused_password_are_refused_too(common: str) -> None:
    wide = full_width(common)
    assert wide != common and unicodedata.normalize("NFKC", wide) == common
    assert not policy().check(common, email="carol@acme.test").ok
    assert not policy().check(wide, email="carol@acme.test").ok


def test_a_decorated_common_password_is_refused_as_common() -> None:
    verdict = policy().check("password2024!", email="carol@acme.test")
    assert verdict.reasons == ("password-common",)
    assert any("common" in message for message in verdict.messages)


def random_passphrase(rng: random.Random) -> str:
    """Five random "words" of letters from several scripts, emoji among them, spaced."""
    alphabets = [
        "abcdefghijklmnopqrstuvwxyz",
        "αβγδεζηθικλμνξοπρστυφχψω",
        "абвгдежзийклмнопрстуфхцчшщыэюя",
        "あいうえおかきくけこさしすせそたちつてと",
        "🦊🐙🌵🍋🚲🎻🧭🪁",
        "äöüßéèçñøå",
    ]
    words = [
        "".join(rng.choice(rng.choice(alphabets)) for _ in range(rng.randint(4, 9)))
        for _ in range(5)
    ]
    return " ".join(words)


def test_long_random_unicode_passphrases_pass() -> None:
    rng = random.Random(20261129)
    checker = policy()
    for _ in range(200):
        phrase = random_passphrase(rng)
        assert checker.check(phrase, email="carol@acme.test") == Verdict(), phrase


@pytest.mark.parametrize(
    "password",
    [
        "correct horse battery staple",
        "Blue kettles argue quietly at dawn",
        "ein Igel 🦔 liest Zeitung im Park",
        "  spaces   count   as   characters  ",
    ],
    ids=["plain words", "a sentence", "emoji and German", "runs of spaces"],
)
def test_passphrases_without_composition_rules_are_accepted(password: str) -> None:
    assert policy().check(password, email="carol@acme.test").ok


def test_128_characters_are_accepted_and_the_maximum_exactly() -> None:
    rng = random.Random(128)
    letters = "abcdefghijklmnopqrstuvwxyz0123456789 -_.,;:!?"
    for length in (128, 256):
        password = "".join(rng.choice(letters) for _ in range(length))
        assert policy().check(password, email="carol@acme.test").ok, length


@pytest.mark.parametrize("extra", [1, 50, 5000])
def test_over_the_maximum_is_refused_with_a_clear_message(extra: int) -> None:
    rng = random.Random(extra)
    password = "".join(rng.choice("abcdefghijklmnop qrstuvwxyz") for _ in range(256 + extra))
    verdict = policy().check(password, email="carol@acme.test")
    assert verdict.reasons == ("password-too-long",)
    assert verdict.messages == ("Use at most 256 characters.",)


def test_too_short_after_normalizing_is_refused_with_advice() -> None:
    verdict = policy().check("x7#Qv!2m", email="carol@acme.test")
    assert verdict.reasons == ("password-too-short",)
    assert "at least 12 characters" in verdict.messages[0]


@pytest.mark.parametrize(
    ("password", "email", "word"),
    [
        ("Carol likes quiet mornings", "carol@acme.test", "carol"),
        ("the SMITH family garden 7", "john.smith@acme.test", "smith"),
        ("my portal of choice 2026 rocks", "x@acme.test", "portal"),
        ("acme-logistics bright harbour", "x@acme.test", "acme-logistics"),
        ("I log into Gatehold daily ok", "x@acme.test", "gatehold"),
        ("ferns and Globex umbrellas 9", "x@acme.test", "globex"),
    ],
    ids=[
        "the email's local part",
        "a piece of a dotted local part, any case",
        "a label of the public host",
        "another label of the public host",
        "the product's name",
        "a configured site name",
    ],
)
def test_names_of_the_person_and_the_site_are_refused(password: str, email: str, word: str) -> None:
    verdict = policy(site_names=["Globex"]).check(password, email=email)
    assert verdict.reasons == ("password-contains-name",)
    assert word in verdict.messages[0]


def test_a_guessable_password_gets_zxcvbns_advice() -> None:
    verdict = policy().check("aaaaaaaaaaaaaaaa", email="carol@acme.test")
    assert verdict.reasons == ("password-weak",)
    assert any("Repeats" in message for message in verdict.messages), verdict.messages


def test_the_minimum_score_is_a_setting() -> None:
    password = "kettle harbour"  # zxcvbn scores it 3 of 4
    assert policy().check(password, email="carol@acme.test").ok
    assert policy(min_score=4).check(password, email="carol@acme.test").reasons == (
        "password-weak",
    )


def test_site_names_leave_out_top_level_domains_www_and_addresses() -> None:
    assert site_names([], "https://www.portal.acme.example") == ("portal", "acme", "gatehold")
    assert site_names(["Ledger", "ab"], "http://127.0.0.1:8080") == ("ledger", "gatehold")
    assert site_names([], "http://localhost:8080") == ("localhost", "gatehold")


def test_email_names_are_the_local_part_and_its_pieces() -> None:
    assert email_names("John.Smith+work@acme.test") == ("john.smith+work", "john", "smith", "work")
    assert email_names("bo@acme.test") == ()
