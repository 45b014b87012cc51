"""Compare the gateway with the reference model on many random requests (``make fuzz``).

    python -m tests.fuzz.run_model --requests 100000 [--seed N] [--per-world 100]

Prints how many requests were compared (and how many the model allowed), every
disagreement (request, person, rules, expected, got) and the run time; exits 1 if
there was any disagreement.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

from tests.fuzz.harness import model_bench
from tests.fuzz.worlds import random_world


async def compare(requests: int, seed: int, per_world: int) -> int:
    rng = random.Random(seed)
    started = time.monotonic()
    disagreements = 0
    worlds = 0
    with tempfile.TemporaryDirectory(prefix="gatehold-model-") as data_dir:
        async with model_bench(Path(data_dir)) as bench:
            while bench.compared < requests:
                world = random_world(rng, min(per_world, requests - bench.compared))
                for found in await bench.run(world):
                    disagreements += 1
                    print(found.report(), flush=True)
                worlds += 1
                if worlds % 50 == 0:
                    print(f"... {bench.compared} requests, {disagreements} disagreements, "
                          f"{time.monotonic() - started:.0f}s", flush=True)  # fmt: skip
            compared, allowed, open_ = bench.compared, bench.allowed, bench.unspecified
    elapsed = time.monotonic() - started
    print(
        f"model comparison: {compared} requests in {worlds} rule sets (seed {seed}): "
        f"{allowed} allowed and {compared - allowed - open_} refused by the model "
        f"({open_} left open by the documents, checked for consistency only), "
        f"{disagreements} disagreements, {elapsed:.0f}s ({compared / elapsed:.0f} req/s)"
    )
    return 1 if disagreements else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--per-world", type=int, default=100)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    sys.exit(asyncio.run(compare(args.requests, seed, args.per_world)))


if __name__ == "__main__":
    main()
