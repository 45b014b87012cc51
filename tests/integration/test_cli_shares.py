"""``gatehold share create|list|revoke``, run as a real subprocess against a real store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.integration.test_cli import config, gatehold

__all__ = ["config"]  # the fixture, shared with the other command tests


def test_a_link_is_minted_by_who_may_download_listed_and_revoked(config: Path) -> None:
    for email, role in (("alice@acme.test", "standard"), ("rita@acme.test", "readonly")):
        added = gatehold("users", "add", email, "--tenant", "acme", "--role", role, config=config)
        assert added.returncode == 0, added.stderr
    made = gatehold(
        "share", "create", "/files/1", "--for", "Bob@Partner.test", "--as", "alice@acme.test",
        "--expires", "2h", config=config,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    url = made.stdout.strip()
    assert url.startswith("http://127.0.0.1:8080/.gatehold/share/") and len(url) > 60
    assert "for bob@partner.test" in made.stderr and "shown only now" in made.stderr

    for minter, path, expires, why in (
        ("rita@acme.test", "/files/1", "1h", "may not download"),
        ("alice@acme.test", "/files/2", "1h", "may not download"),
        ("nobody@acme.test", "/files/1", "1h", "no active user"),
        ("alice@acme.test", "/files/1", "25h", "--expires"),
    ):
        refused = gatehold(
            "share", "create", path, "--for", "bob@partner.test", "--as", minter,
            "--expires", expires, config=config,
        )  # fmt: skip
        assert refused.returncode == 2 and why in refused.stderr, (minter, refused.stderr)

    listed = gatehold("share", "list", config=config)
    assert listed.returncode == 0
    (line,) = listed.stdout.splitlines()
    share_id, path, *_ = line.split("\t")
    assert path == "/files/1" and "for bob@partner.test\tby alice@acme.test" in line
    assert url not in listed.stdout, "the link is never shown again"

    revoked = gatehold("share", "revoke", share_id, config=config)
    assert revoked.returncode == 0 and f"share link {share_id} revoked" in revoked.stdout
    assert gatehold("share", "list", config=config).stdout == ""
    assert gatehold("share", "revoke", "999", config=config).returncode == 2

    with sqlite3.connect(config.parent / "gatehold.db") as db:
        kinds = [k for (k,) in db.execute("SELECT kind FROM audit_log WHERE kind LIKE 'share-%'")]
    assert kinds.count("share-created") == 1 and kinds.count("share-revoked") == 1
    assert kinds.count("share-refused") == 2, "refused by the decision: rita, and globex's file"
