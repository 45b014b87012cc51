"""Create many live sessions for one user straight through the store API.

Calls ``gateway.store.sessions.create_session`` (the function ``gatehold session mint``
ends in) against the gateway's own database, before the gateway starts, and writes one
cookie token per line. Much faster than one CLI process per session.

    python bench/mint_sessions.py --config gatehold.yaml --email bench@acme.test \\
        --count 10000 --out tokens.txt
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

from gateway.config.settings import load_settings
from gateway.model import AuthMethod
from gateway.store import sessions as session_store
from gateway.store import users as user_store
from gateway.store.engine import open_engine
from gateway.store.migrate import migrate


async def mint(config: Path, email: str, count: int, out: Path) -> float:
    """Create ``count`` sessions; returns the seconds it took."""
    settings = load_settings(config, env=os.environ, cwd=Path.cwd())
    engine = open_engine(settings.store_dsn)
    try:
        await migrate(engine)
        user = await user_store.get_user_by_email(engine, email)
        if user is None:
            raise SystemExit(f"no user {email!r}; add one with `gatehold users add`")
        started = time.perf_counter()
        tokens: list[str] = []
        for _ in range(count):
            now = time.time()
            token, _id_hash = await session_store.create_session(
                engine,
                user_id=user.id,
                auth_method=AuthMethod.CLI_MINT.value,
                auth_time=now,
                idle_timeout=settings.session_idle_timeout,
                absolute_timeout=settings.session_absolute_timeout,
                client_ip="bench",
                user_agent="bench/mint_sessions.py",
                now=now,
            )
            tokens.append(token)
        elapsed = time.perf_counter() - started
    finally:
        await engine.dispose()
    out.write_text("".join(f"{token}\n" for token in tokens))
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--email", required=True)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    elapsed = asyncio.run(mint(args.config, args.email, args.count, args.out))
    print(f"minted {args.count} sessions in {elapsed:.1f} s")


if __name__ == "__main__":
    main()
