"""A backup carries the key that seals authenticator secrets: codes verify after a restore."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.auth.keys import TOTP_KEY, load_or_create_secret
from gateway.auth.totp import Authenticators, SecretSeal
from gateway.store.engine import open_engine
from gateway.store.users import get_user_by_email
from tests.support.audit_trail import gatehold, write_config
from tests.support.stack import running_stack
from tests.support.totp import code_now, enrol


async def test_a_restored_store_still_verifies_authenticator_codes(tmp_path: Path) -> None:
    source, target, backup = tmp_path / "source", tmp_path / "target", tmp_path / "backup"
    source.mkdir()
    target.mkdir()
    async with running_stack(source) as stack:
        secret = await enrol(stack, "alice@acme.test")
    taken = gatehold("backup", str(backup), config=write_config(source))
    assert taken.returncode == 0, taken.stderr
    files = json.loads((backup / "manifest.json").read_text())["files"]
    assert any(f["path"] == f"keys/{TOTP_KEY}" and f["role"] == "key" for f in files)

    restored = gatehold("restore", str(backup), config=write_config(target))
    assert restored.returncode == 0, restored.stdout + restored.stderr
    key = target / "keys" / TOTP_KEY
    assert key.read_bytes() == (source / "keys" / TOTP_KEY).read_bytes()
    engine = open_engine(f"sqlite:///{target / 'gatehold.db'}")
    try:
        alice = await get_user_by_email(engine, "alice@acme.test")
        assert alice is not None
        auth = Authenticators(engine, SecretSeal(load_or_create_secret(key)), issuer="Gatehold")
        assert await auth.verify(alice.id, code_now(secret))
        stranger = Authenticators(engine, SecretSeal(b"k" * 32), issuer="Gatehold")
        assert not await stranger.verify(alice.id, code_now(secret, offset=30)), (
            "without the key file the store alone verifies nothing"
        )
    finally:
        await engine.dispose()
