"""``gatehold export nginx|caddy|traefik``: a front-proxy config from the rules."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import click

from gateway.config.loader import load_rules
from gateway.config.settings import load_settings
from gateway.errors import ConfigError
from gateway.export_caddy import caddy_config
from gateway.export_nginx import nginx_config
from gateway.export_plan import ExportPlan, build_plan
from gateway.export_traefik import traefik_config

RENDERERS: dict[str, Callable[[ExportPlan, bool], str]] = {
    "nginx": lambda plan, standalone: nginx_config(plan, standalone=standalone),
    "caddy": lambda plan, standalone: caddy_config(plan, standalone=standalone),
    "traefik": lambda plan, _: traefik_config(plan),
}


@click.command(name="export")
@click.argument("proxy", type=click.Choice(sorted(RENDERERS)))
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Settings file (default: $GATEHOLD_CONFIG, then ./gatehold.yaml).",
)
@click.option(
    "--listen",
    default="127.0.0.1:8000",
    show_default=True,
    help="host:port the front proxy listens on.",
)
@click.option(
    "--gatehold-url",
    default=None,
    help="Where the front proxy reaches Gatehold "
    "(default: http://server.host:server.port of the settings).",
)
@click.option(
    "--standalone",
    is_flag=True,
    help="A whole config for a private instance "
    "(nginx: main and events blocks, paths under the prefix; Caddy: no admin "
    "endpoint, no automatic HTTPS).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write here instead of standard output.",
)
def export_command(
    proxy: str,
    config_path: Path | None,
    listen: str,
    gatehold_url: str | None,
    standalone: bool,
    output: Path | None,
) -> None:
    """Write a front-proxy config for PROXY from the rules: forward-auth for the routes
    that allow it, Gatehold's full proxy for those that need the body or the answer,
    and /.gatehold/ to Gatehold."""
    try:
        settings = load_settings(config_path, env=os.environ, cwd=Path.cwd())
        ruleset = load_rules(settings.rules_path, env=settings.rules_env)
    except ConfigError as error:
        for problem in error.problems:
            click.echo(f"error: {problem}", err=True)
        sys.exit(2)
    url = gatehold_url or f"http://{settings.server.host}:{settings.server.port}"
    plan = build_plan(
        ruleset,
        gatehold_url=url,
        listen=listen,
        apps_read_method_override=settings.forward_auth.apps_read_method_override,
    )
    text = RENDERERS[proxy](plan, standalone)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
    click.echo(summary(proxy, plan), err=True)


def summary(proxy: str, plan: ExportPlan) -> str:
    """Which routes (and methods) go which way, and why."""
    asked = sorted({r.name for r in plan.forward_auth_routes})
    full = [r for r in plan.routes if not r.forward_auth]
    lines = [
        f"{proxy}: forward-auth for {len(asked)} routes, Gatehold's full proxy for "
        f"{len(full)} routes or methods of a route (and everything no route names)"
    ]
    for route in full:
        methods = ",".join(route.methods) if route.methods else "any method"
        lines.append(f"  {route.name} ({methods}): {'; '.join(route.needs)}")
    return "\n".join(lines)
