"""Workers starting together on an empty data folder all end up with the same keys.

Each round forks several real processes that wait at a barrier and then load-or-create
every key file the gateway makes (assertion signing key, CSRF key, OIDC flow key),
exactly as ``app.py`` does. Every process must get the same key as the others and as
the file, none may fail or read a partly written file, and no temporary file may stay.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import stat
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from gateway.assertion import AssertionSigner
from gateway.auth.keys import (
    ASSERTION_KEY,
    SECRET_FILES,
    load_or_create_key_file,
    load_or_create_secret,
)
from gateway.errors import ConfigError

WORKERS = 6
ROUNDS = 15


def start_worker(keys: Path, barrier: Barrier, out: Connection) -> None:
    """What one worker does at start: every key file, created if missing."""
    try:
        barrier.wait(10)
        signer = AssertionSigner.load_or_create(
            keys / ASSERTION_KEY, issuer="http://gatehold.test", ttl_seconds=60
        )
        held = {ASSERTION_KEY: signer.kid}
        for name in SECRET_FILES:
            held[name] = hashlib.sha256(load_or_create_secret(keys / name)).hexdigest()
        out.send(held)
    except BaseException as error:  # report it to the test, whatever it is
        out.send(repr(error))
    finally:
        out.close()


def race(keys: Path) -> list[dict[str, str] | str]:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(WORKERS)
    pipes = [context.Pipe(duplex=False) for _ in range(WORKERS)]
    processes = [
        context.Process(target=start_worker, args=(keys, barrier, sender)) for _, sender in pipes
    ]
    for process in processes:
        process.start()
    results = [receiver.recv() for receiver, _ in pipes]
    for process in processes:
        process.join(20)
        assert process.exitcode == 0
    return results


def test_concurrent_workers_on_an_empty_data_folder_share_every_key(tmp_path: Path) -> None:
    for round_number in range(ROUNDS):
        keys = tmp_path / f"round-{round_number}" / "keys"
        results = race(keys)
        failures = [r for r in results if isinstance(r, str)]
        assert failures == [], f"round {round_number}: a worker failed to start"
        assert all(r == results[0] for r in results), f"round {round_number}: keys differ"
        held = results[0]
        assert isinstance(held, dict)
        signer = AssertionSigner.load_or_create(
            keys / ASSERTION_KEY, issuer="http://gatehold.test", ttl_seconds=60
        )
        assert held[ASSERTION_KEY] == signer.kid
        for name in SECRET_FILES:
            assert held[name] == hashlib.sha256((keys / name).read_bytes()).hexdigest()
        names = sorted(p.name for p in keys.iterdir())
        assert names == sorted([ASSERTION_KEY, *SECRET_FILES]), "a temporary file was left"
        for path in keys.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_a_key_file_left_empty_is_refused_not_used(tmp_path: Path) -> None:
    (tmp_path / "csrf.key").write_bytes(b"")
    with pytest.raises(ConfigError, match="csrf.key"):
        load_or_create_secret(tmp_path / "csrf.key")
    (tmp_path / ASSERTION_KEY).write_bytes(b"")
    with pytest.raises(ConfigError, match=ASSERTION_KEY):
        AssertionSigner.load_or_create(
            tmp_path / ASSERTION_KEY, issuer="http://gatehold.test", ttl_seconds=60
        )


def test_an_existing_key_file_is_read_and_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "other.key"
    first = load_or_create_key_file(path, lambda: os.urandom(32))
    again = load_or_create_key_file(path, lambda: b"would replace it")
    assert first == again == path.read_bytes()
