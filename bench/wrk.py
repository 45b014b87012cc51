"""Driving ``wrk``: one Lua script for every row, results read back as JSON."""

from __future__ import annotations

import json
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from procs import MIB, pin_prefix

COOKIE = "__Host-gatehold"
MARK = "WRKJSON "

LUA = r"""
-- args: path, number of ids (0: the path as is), token file ("-": no cookie)
local path, ids, tokens, turn = "/", 0, {}, 0

function init(args)
  path = args[1]
  ids = tonumber(args[2])
  if args[3] ~= "-" then
    for line in io.lines(args[3]) do
      if #line > 0 then tokens[#tokens + 1] = "%(cookie)s=" .. line end
    end
  end
  math.randomseed(os.time())
end

function request()
  local target = path
  if ids > 0 then target = path .. math.random(1, ids) end
  if #tokens > 0 then  -- round robin, so every session takes its turn
    turn = turn %% #tokens + 1
    return wrk.format("GET", target, {Cookie = tokens[turn]})
  end
  return wrk.format("GET", target)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%(mark)s{"requests":%%d,"duration_us":%%d,"bytes":%%d,"connect":%%d,"read":%%d,' ..
    '"write":%%d,"status":%%d,"timeout":%%d,"p50_us":%%d,"p99_us":%%d,"mean_us":%%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(99), latency.mean))
end
"""


@dataclass(frozen=True)
class WrkResult:
    """One wrk run, summarised."""

    requests: int
    seconds: float
    bytes: int
    errors: int
    """Responses with status >= 400 plus socket errors (connect, read, write, timeout)."""
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def mib_per_s(self) -> float:
        return self.bytes / MIB / self.seconds if self.seconds else 0.0


def write_script(folder: Path) -> Path:
    path = folder / "bench.lua"
    path.write_text(LUA % {"cookie": COOKIE, "mark": MARK})
    return path


def run_wrk(
    script: Path,
    base_url: str,
    *,
    path: str,
    ids: int,
    tokens: Path | None,
    connections: int,
    seconds: float,
    cpus: str,
    pin: bool = True,
    threads: int = 1,
) -> WrkResult:
    """Run wrk once against ``base_url`` and return its summary."""
    argv: Sequence[str] = [
        *pin_prefix(cpus, pin),
        "wrk",
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        base_url,
        "--",
        path,
        str(ids),
        str(tokens) if tokens is not None else "-",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        if line.startswith(MARK):
            data = json.loads(line[len(MARK) :])
            errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
            return WrkResult(
                requests=data["requests"],
                seconds=data["duration_us"] / 1e6,
                bytes=data["bytes"],
                errors=errors,
                p50_ms=data["p50_us"] / 1000,
                p99_ms=data["p99_us"] / 1000,
            )
    raise RuntimeError(f"wrk gave no summary (exit {done.returncode}):\n{done.stderr[-2000:]}")


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")
