"""The benchmark's setup keeps working as the CLI evolves.

`make bench` is not part of the suite (it needs minutes and idle cores), but the part
that prepares Gatehold for it — settings, rules, a tenant, a person, a minted session —
runs the real `gatehold` commands and breaks silently when one of them changes.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_bench_prepares_a_gateway_and_a_session(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import gatehold_env
    finally:
        sys.path.remove(str(REPO / "bench"))
    setup = gatehold_env.prepare(
        tmp_path, upstream_url="http://127.0.0.1:9", port=18999, many_sessions=3
    )
    assert setup.config.exists()
    assert len(setup.token) >= 40
    assert setup.tokens_file.read_text().strip() == setup.token
    assert setup.many_tokens_file is not None
    assert len(setup.many_tokens_file.read_text().split()) == 3
