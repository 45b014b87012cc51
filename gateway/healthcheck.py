"""``gatehold health``: ask this host's gateway whether it is alive or ready.

A container's health check runs inside the container, so it must find the listener
the settings name, not a port written into the image: the address comes from
``server.host``/``server.port`` (liveness, ``/.gatehold/health``) or
``server.admin_port`` (readiness, ``/ready``), after ``GATEHOLD_*`` overrides. The
answer is one line and a verdict, never a traceback: Docker shows the line in
``docker inspect`` and counts only the exit status.

``python -m gateway.healthcheck [--config FILE] [--ready]`` is the same check as
``gatehold health`` without loading the whole command line: a container runs it every
few seconds, and importing only the settings costs a fifth of the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.config.settings import ServerSettings, load_settings
from gateway.errors import ConfigError

LIVENESS_PATH = "/.gatehold/health"
READINESS_PATH = "/ready"
WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104
"""A listener on every address is asked on the matching loopback."""


@dataclass(frozen=True, slots=True)
class Verdict:
    healthy: bool
    line: str
    """What was asked and what answered, on one line."""


def health_url(server: ServerSettings, *, ready: bool) -> str | Verdict:
    """The URL to ask, or an unhealthy verdict when the settings serve no such page."""
    if ready and not server.admin_port:
        return Verdict(
            False,
            "server.admin_port is not set: /ready is served only on the admin listener; "
            "set it, or ask liveness without --ready",
        )
    host = WILDCARDS.get(server.host, server.host)
    if ":" in host:
        host = f"[{host}]"
    if ready:
        return f"http://{host}:{server.admin_port}{READINESS_PATH}"
    return f"http://{host}:{server.port}{LIVENESS_PATH}"


def ask(url: str, *, timeout: float) -> Verdict:
    """GET ``url`` directly (never through an HTTP proxy of the environment)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as answer:
            return Verdict(True, f"{url} answered {answer.status}{_status_of(answer.read())}")
    except urllib.error.HTTPError as error:
        return Verdict(False, f"{url} answered {error.code}{_status_of(error.read())}")
    except urllib.error.URLError as error:
        if isinstance(error.reason, TimeoutError):
            return Verdict(False, f"{url} did not answer within {timeout:g} s")
        return Verdict(False, f"nothing answers at {url} ({_why(error.reason)})")
    except TimeoutError:
        return Verdict(False, f"{url} did not answer within {timeout:g} s")
    except OSError as error:  # reset while reading, or the like
        return Verdict(False, f"{url} could not be asked ({_why(error)})")


def check(server: ServerSettings, *, ready: bool, timeout: float) -> Verdict:
    url = health_url(server, ready=ready)
    return url if isinstance(url, Verdict) else ask(url, timeout=timeout)


def _status_of(body: bytes) -> str:
    """`` ready`` or ``: store: not answering; ...`` from a health or readiness page."""
    try:
        page = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(page, dict):
        return ""
    reasons = page.get("reasons")
    if isinstance(reasons, list) and reasons:
        return ": " + "; ".join(str(reason) for reason in reasons)
    status = page.get("status")
    return f" {status}" if isinstance(status, str) else ""


def _why(reason: object) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return str(reason)


def report(config_path: Path | None, *, ready: bool, timeout: float) -> int:
    """Check the gateway ``config_path`` describes, print one line, return the exit
    status: 0 healthy, 1 not (never 2: a health check's 2 means something else)."""
    try:
        settings = load_settings(config_path, env=os.environ, cwd=Path.cwd())
    except ConfigError as error:
        first, *more = error.problems or ["not valid"]
        extra = f" (and {len(more)} more; run gatehold check)" if more else ""
        print(f"unhealthy: settings: {first}{extra}", file=sys.stderr)
        return 1
    verdict = check(settings.server, ready=ready, timeout=timeout)
    if not verdict.healthy:
        print(f"unhealthy: {verdict.line}", file=sys.stderr)
        return 1
    print(f"healthy: {verdict.line}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.healthcheck", description="gatehold health, light"
    )
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--ready", action="store_true")
    parser.add_argument("--timeout", type=float, default=4.0)
    args = parser.parse_args(argv)
    if not 0.1 <= args.timeout <= 60:
        parser.error("--timeout must be between 0.1 and 60 seconds")
    return report(args.config, ready=args.ready, timeout=args.timeout)


if __name__ == "__main__":
    sys.exit(main())
