"""Recovery codes: 50 random bits, hashed at rest, forgiving to type, each used once."""

from __future__ import annotations

import asyncio
import math
import re

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.auth.recovery_codes import (
    ALPHABET,
    COUNT,
    LENGTH,
    RecoveryCodes,
    code_hash,
    new_code,
    normalized,
)
from gateway.store import tables
from gateway.store.factors import factors_of
from gateway.store.users import add_user

NOW = 1_800_000_000.0


def test_a_code_has_at_least_50_bits_from_an_unambiguous_alphabet() -> None:
    assert LENGTH * math.log2(len(set(ALPHABET))) >= 50
    assert not set("ilou") & set(ALPHABET)
    codes = {new_code() for _ in range(200)}
    assert len(codes) == 200
    assert all(re.fullmatch(rf"[{ALPHABET}]{{5}}-[{ALPHABET}]{{5}}", code) for code in codes)


@pytest.mark.parametrize(
    "typed",
    ["ab3de-fg7hj", "AB3DE-FG7HJ", " ab3de fg7hj ", "ab3defg7hj", "ab-3d-ef-g7-hj"],
    ids=["as shown", "upper case", "spaces", "no dash", "extra dashes"],
)
def test_typing_forgives_case_spaces_and_dashes(typed: str) -> None:
    assert normalized(typed) == "ab3defg7hj"


def test_letters_read_as_digits_are_taken_as_the_digits() -> None:
    assert normalized("ab0de-f11hj") == normalized("abOde-fIlhj") == "ab0def11hj"


@pytest.mark.parametrize(
    "typed", ["", "ab3de-fg7h", "ab3de-fg7hjk", "ab3de-fg7h!", "ab3de-fg7hu"], ids=str
)
def test_what_cannot_be_a_code_is_refused_before_the_store(typed: str) -> None:
    assert normalized(typed) is None


async def test_a_code_works_once_and_the_count_goes_down(engine: AsyncEngine) -> None:
    user = await add_user(engine, "ann@acme.test", memberships=[])
    codes = await RecoveryCodes(engine, clock=lambda: NOW).make(user)
    assert len(codes) == COUNT == len(set(codes))
    recovery = RecoveryCodes(engine, clock=lambda: NOW)
    assert await recovery.use(user, codes[3].upper().replace("-", " ")) == COUNT - 1
    assert await recovery.use(user, codes[3]) is None, "a used code must be refused"
    assert await recovery.use(user, codes[4]) == COUNT - 2
    assert (await factors_of(engine, user)).recovery_codes_left == COUNT - 2


async def test_only_hashes_are_stored(engine: AsyncEngine) -> None:
    user = await add_user(engine, "bo@acme.test", memberships=[])
    codes = await RecoveryCodes(engine, clock=lambda: NOW).make(user)
    async with engine.connect() as conn:
        stored = [row.code_hash for row in await conn.execute(select(tables.recovery_codes))]
    plain = [code.replace("-", "") for code in codes]
    assert sorted(stored) == sorted(code_hash(p) for p in plain)
    assert not any(p in "".join(stored) for p in plain)


async def test_a_new_set_replaces_the_old_and_codes_are_per_person(engine: AsyncEngine) -> None:
    user = await add_user(engine, "cy@acme.test", memberships=[])
    other = await add_user(engine, "di@acme.test", memberships=[])
    recovery = RecoveryCodes(engine, clock=lambda: NOW)
    old = await recovery.make(user)
    new = await recovery.make(user)
    assert await recovery.use(user, old[0]) is None, "an old set stops working"
    assert await recovery.use(other, new[0]) is None, "someone else's code is refused"
    assert await recovery.use(user, new[0]) == COUNT - 1


async def test_concurrent_uses_of_one_code_let_exactly_one_through(engine: AsyncEngine) -> None:
    user = await add_user(engine, "ed@acme.test", memberships=[])
    recovery = RecoveryCodes(engine, clock=lambda: NOW)
    code = (await recovery.make(user))[0]
    results = await asyncio.gather(*(recovery.use(user, code) for _ in range(6)))
    assert sorted(results, key=lambda left: left is None) == [COUNT - 1] + [None] * 5
