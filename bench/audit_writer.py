"""Durable audit records per second through the group-commit writer.

Each run opens a fresh SQLite file (WAL, synchronous=FULL, as the gateway does), keys the
chain and writes a checkpoint a second (as the gateway does), starts
``--producers`` tasks that each call ``AuditWriter.begin`` in a loop (every call waits for
its batch's fsync, as a request does before it is forwarded), and prints records/s with
the mean and largest batch. ``--dsn`` points it at PostgreSQL instead.

Request ids are made as the gateway makes them. ``--prefill N`` first appends N
records, so the run measures a log that has grown for a while rather than an empty
one; ``--random-ids`` uses purely random ids instead, to show what time-ordered ids
save once the log is large.

    python bench/audit_writer.py                      # default matrix
    python bench/audit_writer.py --records 50000 --producers 1000
    python bench/audit_writer.py --producers 50 --records 10000 --prefill 300000
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time
from pathlib import Path

from gateway.audit import AuditWriter
from gateway.audit_checkpoints import CheckpointWriter
from gateway.audit_keys import AuditKey
from gateway.ingress import new_request_id
from gateway.model import AuditEntry
from gateway.store.engine import open_engine
from gateway.store.migrate import migrate

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is optional
    uvloop = None


def sample(n: int, *, random_ids: bool = False) -> AuditEntry:
    """An entry the size of a real request record."""
    return AuditEntry(
        kind="request",
        request_id=secrets.token_hex(16) if random_ids else new_request_id(),
        actor="alice@acme.example",
        tenant="acme",
        route="invoice-read",
        decision="allow",
        reason="role-allowed",
        method="GET",
        path=f"/api/invoices/{n}",
        data={
            "roles": ["standard"],
            "granted_by": ["standard"],
            "auth_method": "session",
            "session": "f" * 64,
            "client": "203.0.113.9",
            "scheme": "https",
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            "query": "",
            "action": "read",
            "resource_type": "invoice",
            "resource_id": str(n),
            "objects": [
                {"type": "invoice", "id": str(n), "source": "path.invoice_id", "owner": "acme"}
            ],
            "upstream": "ledger",
            "sensitive": False,
            "explain": ["invoice belongs to acme", "standard may read in acme"],
        },
    )


async def run(
    dsn: str,
    records: int,
    producers: int,
    max_batch: int,
    *,
    checkpoints: Path,
    prefill: int = 0,
    random_ids: bool = False,
) -> dict[str, float]:
    engine = open_engine(dsn)
    await migrate(engine)
    key = AuditKey.from_secret(secrets.token_hex(32).encode())
    writer = AuditWriter(  # keyed and checkpointed once a second, as the gateway writes
        engine,
        key=key,
        max_batch=max_batch,
        checkpoints=CheckpointWriter(checkpoints, key),
        checkpoint_every=1.0,
    )
    await writer.start()
    if prefill:
        await _append(writer, prefill, 1000, random_ids=random_ids)
    before = writer.entries_committed, writer.batches_committed
    started = time.perf_counter()
    sizes = await _append(writer, records, producers, random_ids=random_ids)
    elapsed = time.perf_counter() - started
    committed = writer.entries_committed - before[0]
    batches = writer.batches_committed - before[1]
    await writer.close()
    await engine.dispose()
    return {
        "records": committed,
        "seconds": elapsed,
        "per_second": committed / elapsed,
        "batches": batches,
        "mean_batch": committed / batches,
        "max_batch": max(sizes),
        "per_batch_ms": elapsed / batches * 1000,
    }


async def _append(
    writer: AuditWriter, records: int, producers: int, *, random_ids: bool
) -> list[int]:
    """``records`` entries from ``producers`` concurrent tasks; returns the batch sizes seen."""
    sizes: list[int] = []
    counter = iter(range(records))

    async def produce() -> None:
        for n in counter:
            await writer.begin(sample(n, random_ids=random_ids))
            sizes.append(writer.last_batch_size)

    await asyncio.gather(*(produce() for _ in range(producers)))
    return sizes


async def main(args: argparse.Namespace) -> None:
    matrix = (
        [(args.records, args.producers)]
        if args.producers
        else [(5_000, 50), (20_000, 200), (50_000, 1000)]
    )
    loop = "uvloop" if uvloop is not None and not args.no_uvloop else "asyncio"
    ids = "random" if args.random_ids else "time-ordered"
    grown = f", after {args.prefill:,} records" if args.prefill else ""
    print(f"audit writer, {loop}, max_batch={args.max_batch}, {ids} request ids{grown}")
    print(
        f"{'records':>8} {'producers':>9} {'seconds':>8} {'records/s':>10} "
        f"{'batches':>8} {'mean batch':>10} {'max batch':>9} {'ms/batch':>8}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        for i, (records, producers) in enumerate(matrix):
            dsn = args.dsn or f"sqlite:///{Path(scratch) / f'bench-{i}.db'}"
            r = await run(
                dsn,
                records,
                producers,
                args.max_batch,
                checkpoints=Path(scratch) / f"checkpoints-{i}.jsonl",
                prefill=args.prefill,
                random_ids=args.random_ids,
            )
            print(
                f"{int(r['records']):>8} {producers:>9} {r['seconds']:>8.2f} "
                f"{r['per_second']:>10,.0f} {int(r['batches']):>8} {r['mean_batch']:>10.1f} "
                f"{int(r['max_batch']):>9} {r['per_batch_ms']:>8.2f}"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--producers", type=int, default=0, help="one run; default: a matrix")
    parser.add_argument("--max-batch", type=int, default=1024)
    parser.add_argument("--dsn", default="", help="default: a fresh SQLite file per run")
    parser.add_argument("--no-uvloop", action="store_true")
    parser.add_argument("--prefill", type=int, default=0, help="records appended before timing")
    parser.add_argument("--random-ids", action="store_true", help="random, not time-ordered")
    arguments = parser.parse_args()
    if uvloop is not None and not arguments.no_uvloop:
        uvloop.install()
    asyncio.run(main(arguments))
