"""The enumeration defence slows, then blocks, a principal guessing object ids."""

from __future__ import annotations

from gateway.enumeration import EnumerationGuard
from gateway.model import (
    AuthMethod,
    Decision,
    Membership,
    NotFound,
    ObjectRef,
    Principal,
    Reason,
    ResolvedRef,
)

ALICE = Principal("1", "alice@acme.test", (Membership("acme", "standard"),), AuthMethod.SESSION, 0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def denial(object_id: str, reason: Reason = Reason.TENANT_FOREIGN) -> Decision:
    ref = ObjectRef("invoice", object_id, "path.invoice_id")
    return Decision(False, reason, objects=(ResolvedRef(ref, NotFound()),))


def guard(clock: Clock) -> EnumerationGuard:
    return EnumerationGuard(window=60, slow_after=3, block_after=6, block_for=900, clock=clock)


def test_distinct_denials_slow_down_then_block_once() -> None:
    clock = Clock()
    enumeration = guard(clock)
    verdicts = [enumeration.observe(ALICE, denial(str(i))) for i in range(1, 8)]
    assert [v.delay > 0 for v in verdicts[:5]] == [False, False, False, True, True]
    assert [v.newly_blocked for v in verdicts] == [False] * 5 + [True, False]
    assert enumeration.blocked(ALICE)


def test_repeating_one_id_is_not_enumeration() -> None:
    enumeration = guard(Clock())
    for _ in range(20):
        enumeration.observe(ALICE, denial("8"))
    assert not enumeration.blocked(ALICE)


def test_other_denials_do_not_count() -> None:
    enumeration = guard(Clock())
    for i in range(20):
        enumeration.observe(ALICE, denial(str(i), Reason.ROLE_FORBIDDEN))
    assert not enumeration.blocked(ALICE)


def test_denials_outside_the_window_are_forgotten_and_blocks_expire() -> None:
    clock = Clock()
    enumeration = guard(clock)
    for i in range(5):
        enumeration.observe(ALICE, denial(str(i)))
        clock.now += 20
    assert not enumeration.blocked(ALICE), "spread over 100 s, only 3 fall in the window"
    for i in range(10, 16):
        enumeration.observe(ALICE, denial(str(i)))
    assert enumeration.blocked(ALICE)
    clock.now += 901
    assert not enumeration.blocked(ALICE)
