"""The ``gatehold`` command.

Every command takes ``--config FILE`` (default ``$GATEHOLD_CONFIG``, then
``./gatehold.yaml``). Problems with settings or rules are printed all at once, one
actionable line each, and the command exits with status 2.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, cast

import click
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import access, factors, invites, registry, reviews
from gateway.admin import service as admin
from gateway.admin.service import AdminContext, AdminError, admin_context
from gateway.audit_keys import audit_key
from gateway.auth.emails import normalize_email
from gateway.auth.mint import mint_cookie
from gateway.config.durations import parse_duration
from gateway.config.lints import RulesReport, check_and_lint_file
from gateway.config.probe import DEFAULT_TIMEOUT as DEFAULT_PROBE_TIMEOUT
from gateway.config.probe import probe_resolvers
from gateway.config.rules import rules_json_schema
from gateway.config.settings import Settings, load_settings, resolve_config_path
from gateway.errors import ConfigError, StoreUnavailable
from gateway.model import GLOBAL_TENANT, Membership
from gateway.store.engine import open_engine
from gateway.store.migrate import migrate
from gateway.store.rule_versions import VersionRow
from gateway.store.users import UserRow

if TYPE_CHECKING:
    from gateway.admin.audit_trail import TrailCheck

T = TypeVar("T")
INIT_NEXT_STEPS = (
    "tenants add acme",
    "users add you@example.com --tenant acme --role standard",
    "check --strict",
    "serve",
)
"""What ``gatehold init`` suggests next, each printed as it can be typed."""
F = TypeVar("F", bound=Callable[..., Any])


def config_option(command: F) -> F:
    """``--config FILE`` on every command."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="Settings file (default: $GATEHOLD_CONFIG, then ./gatehold.yaml).",
    )(command)


def settings_from(config_path: Path | None) -> Settings:
    """Load and validate settings, or print every problem and exit 2."""
    try:
        return load_settings(config_path, env=os.environ, cwd=Path.cwd())
    except ConfigError as error:
        fail(error.problems)


def fail(problems: list[str]) -> NoReturn:
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    sys.exit(2)


def run(coroutine: Awaitable[T]) -> T:
    """Run one command's async body; a store outage is a clear message, not a trace."""
    try:
        return asyncio.run(coroutine)  # type: ignore[arg-type]
    except StoreUnavailable as error:
        fail([f"the store is unavailable: {error}"])
    except ConfigError as error:
        fail(error.problems)


async def opened_store(settings: Settings) -> AsyncEngine:
    engine = open_engine(settings.store_dsn)
    await migrate(engine)
    return engine


@click.group()
@click.version_option(package_name="gatehold")
def main() -> None:
    """Gatehold: an identity-aware reverse proxy for apps that check nothing themselves."""


@main.command()
@config_option
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Processes to run.")
@click.option("--worker", "as_worker", is_flag=True, hidden=True)
def serve(config_path: Path | None, workers: int | None, as_worker: bool) -> None:
    """Serve the gateway until stopped."""
    from gateway.rules_sync import initial_rules
    from gateway.runtime import serve as run_server

    settings = settings_from(config_path)
    check_audit_key_or_exit(settings)
    if as_worker:  # started by a `serve --workers N` process, beside it on its port
        one_of = workers or settings.server.workers
        run_server(settings, os.environ, workers=1, reuse_port=True, sync_file=False, one_of=one_of)
        return
    # Stores and activates the file as its mode says; every problem listed, exit 2.
    run(initial_rules(settings, {**os.environ, **settings.rules_env}))
    count = workers or settings.server.workers
    worker = [sys.executable, "-m", "gateway", "serve", "--worker", "--workers", str(count)]
    if config_path is not None:
        worker += ["--config", str(config_path.resolve())]
    run_server(settings, os.environ, workers=count, worker_argv=worker)


@main.command()
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option(
    "--app-port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port of the demo app Ledger (0: any free port).",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path),
    default=Path("var/demo"),
    show_default=True,
)
def demo(port: int, app_port: int, data_dir: Path) -> None:
    """Run Gatehold in front of the bundled demo app "Ledger"."""
    from gateway.demo.run import run_demo

    run_demo(port=port, data_dir=data_dir, app_port=app_port)


@main.command()
@click.option(
    "--dir",
    "folder",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("."),
    show_default=True,
    help="Folder to write gatehold.yaml and rules.yaml in (created if missing).",
)
@click.option(
    "--upstream",
    default=None,
    help="Base URL of your app (default http://127.0.0.1:5000; or edit rules.yaml).",
)
def init(folder: Path, upstream: str | None) -> None:
    """Write a commented starter gatehold.yaml and rules.yaml; never overwrites."""
    from gateway.starter.init import TEMPLATE_UPSTREAM, Refused, write_starter

    written = write_starter(folder, upstream=upstream or TEMPLATE_UPSTREAM)
    if isinstance(written, Refused):
        fail(written.problems)
    from gateway.demo.typed_commands import gatehold_command

    click.echo(f"wrote {written.settings} and {written.rules}")
    click.echo("next: point upstreams.app.url in the rules at your app, add a person and serve:")
    for args in INIT_NEXT_STEPS:
        click.echo(f"  {gatehold_command(args, config=written.settings)}")


def lint_options(command: F) -> F:
    """``--strict``, ``--probe`` and ``--probe-timeout`` of the commands that check rules."""
    command = click.option(
        "--probe-timeout",
        type=click.FloatRange(0.1, 120),
        default=DEFAULT_PROBE_TIMEOUT,
        show_default=True,
        help="Seconds each resolver probe may take.",
    )(command)
    command = click.option(
        "--probe",
        is_flag=True,
        help="Also run every SQL resolver's query and call every HTTP resolver once; "
        "a resolver that fails makes the command exit 1.",
    )(command)
    return click.option("--strict", is_flag=True, help="Treat lint warnings as errors (exit 1).")(
        command
    )


@main.command()
@config_option
@lint_options
def check(config_path: Path | None, strict: bool, probe: bool, probe_timeout: float) -> None:
    """Validate settings and rules; print every problem and lint warning."""
    settings = settings_from(config_path)
    report = check_and_lint_file(settings.rules_path, {**os.environ, **settings.rules_env})
    failed = report_rules(
        report, strict=strict, probe=probe, timeout=probe_timeout, base_dir=settings.base_dir
    )
    if failed:
        sys.exit(1)
    click.echo(f"settings and rules are valid ({settings.rules_path}){warned(report)}")


def report_rules(
    report: RulesReport, *, strict: bool, probe: bool, timeout: float, base_dir: str
) -> bool:
    """Print a rules check: errors exit 2; lints and failed probes print, ``True`` if
    they fail the command (lints only with ``strict``)."""
    if report.ruleset is None:
        fail([str(problem) for problem in report.problems])
    source = report.ruleset.source
    for item in report.lints:
        click.echo(f"{'error' if strict else 'warning'}: {item.located(source)}", err=True)
    failed = strict and bool(report.lints)
    if probe:
        results = run(probe_resolvers(report.ruleset, base_dir=Path(base_dir), timeout=timeout))
        for result in results:
            if result.problem is None:
                click.echo(f"probe: {result}")
            else:
                click.echo(f"error: probe: {result}", err=True)
        failed = failed or any(result.problem is not None for result in results)
        if not results:
            click.echo("probe: no SQL or HTTP resolvers to probe")
    return failed


def warned(report: RulesReport) -> str:
    count = len(report.lints)
    return f" with {count} warning{'s' if count != 1 else ''}" if count else ""


def check_audit_key_or_exit(settings: Settings) -> None:
    """Load (or, on first start, create) the audit key before serving anything."""
    try:
        audit_key(settings, create=True)
    except ConfigError as error:
        fail(error.problems)


@main.command()
@config_option
@click.option(
    "--ready",
    is_flag=True,
    help="Ask /ready on the admin listener (store, rules, audit writer) instead of "
    "/.gatehold/health on the gateway port (the process answers).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.1, 60),
    default=4.0,
    show_default=True,
    help="Seconds to wait for the answer.",
)
def health(config_path: Path | None, ready: bool, timeout: float) -> None:
    """Ask the gateway these settings describe whether it is healthy: exit 0 if so,
    else 1, with one line saying why (a container's health check)."""
    from gateway.healthcheck import report

    sys.exit(report(config_path, ready=ready, timeout=timeout))


@main.command(name="migrate")
@config_option
def migrate_command(config_path: Path | None) -> None:
    """Create or upgrade the store's schema."""
    settings = settings_from(config_path)

    from gateway.admin.audit_trail import opened_store as migrated

    async def body() -> None:
        async with migrated(settings):
            pass

    run(body())
    click.echo("store schema is up to date")


# ---------------------------------------------------------------- rules


class LazyGroup(click.Group):
    """A group some of whose subcommands are built when first asked for: their modules
    are imported by the commands that run them, not by every serving process."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, Callable[[], click.Command]] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        build = self.lazy.get(cmd_name)
        if build is not None and cmd_name not in self.commands:
            self.add_command(build(), cmd_name)
        return super().get_command(ctx, cmd_name)


@main.group(cls=LazyGroup)
def rules() -> None:
    """Check, simulate and describe rule sets."""


@rules.command(name="check")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@config_option
@lint_options
@click.option(
    "--mode",
    type=click.Choice(["proxy", "forward-auth"]),
    default="proxy",
    show_default=True,
    help="forward-auth: also list the routes the decision endpoint /.gatehold/auth "
    "cannot decide (they need the body or the app's answer) and why.",
)
def rules_check(
    file: Path,
    config_path: Path | None,
    strict: bool,
    probe: bool,
    probe_timeout: float,
    mode: str,
) -> None:
    """Validate a rules FILE; report every error with file:line and what to do, and
    lint warnings (exit 2 on errors; 1 on warnings with --strict or a failed probe).

    Relative SQLite DSNs are read from the settings file's folder (--config,
    $GATEHOLD_CONFIG, else ./gatehold.yaml's: the current folder).
    """
    env: dict[str, str] = dict(os.environ)
    base_dir = str(Path.cwd())
    override_read = True
    if config_path is not None or (probe and default_settings_exist()):
        settings = settings_from(config_path)
        env |= settings.rules_env
        base_dir = settings.base_dir
        override_read = settings.forward_auth.apps_read_method_override
    report = check_and_lint_file(file, env)
    failed = report_rules(
        report, strict=strict, probe=probe, timeout=probe_timeout, base_dir=base_dir
    )
    if mode == "forward-auth" and report.ruleset is not None:
        from gateway.forward_auth_fit import describe

        for line in describe(report.ruleset.routes, apps_read_method_override=override_read):
            click.echo(line)
    if failed:
        sys.exit(1)
    click.echo(f"{file}: valid{warned(report)}")


def default_settings_exist() -> bool:
    return resolve_config_path(None, os.environ, Path.cwd()).is_file()


def _learn_command() -> click.Command:
    from gateway.learn.command import learn_command

    return learn_command


def _shadow_command() -> click.Command:
    from gateway.shadow_cli import CliTools, shadow_group

    return shadow_group(CliTools(config_option, settings_from, admin_run, stamp))


cast(LazyGroup, rules).lazy |= {"learn": _learn_command, "shadow": _shadow_command}


@rules.command(name="schema")
def rules_schema() -> None:
    """Print the JSON Schema of the rules format."""
    click.echo(json.dumps(rules_json_schema(), indent=2))


@rules.command(name="simulate")
@config_option
@click.option("--user", "email", default=None, help="Decide as this user.")
@click.option(
    "--api-key",
    "key_id",
    type=int,
    default=None,
    help="Decide as the API key with this id (its tenant and role).",
)
@click.option("--tenant", default=None, help="Active tenant (default: the user's first).")
@click.option(
    "--mfa/--one-factor",
    "mfa",
    default=None,
    help="The user's sign-in showed a second factor, or not (default: as it would have: "
    "yes with one enrolled or asked for by the rules).",
)
@click.option(
    "--version",
    "version_id",
    type=int,
    default=None,
    help="Decide under this rules version (default: the active one; the file's rules "
    "while the store has none).",
)
@click.option("--body", "body_file", type=click.File("rb"), default=None)
@click.option("--content-type", default="application/json", show_default=True)
@click.option(
    "--header",
    "header_lines",
    multiple=True,
    help="A request header, 'Name: value' (repeat); e.g. 'Upgrade: websocket'.",
)
@click.argument("method")
@click.argument("path")
def rules_simulate(
    config_path: Path | None,
    email: str | None,
    key_id: int | None,
    tenant: str | None,
    mfa: bool | None,
    version_id: int | None,
    body_file: Any,
    content_type: str,
    header_lines: tuple[str, ...],
    method: str,
    path: str,
) -> None:
    """Print the decision for METHOD PATH as a user or an API key, with the reason chain.

    Decides as live traffic is decided, and stops before the audit record and the
    upstream: it creates no key and starts no audit writer.
    """
    from gateway.admin.explain import explain, principal_for, principal_for_key
    from gateway.admin.rules import ruleset_of
    from gateway.deciders import build_deciders
    from gateway.observe import simulated

    if (email is None) == (key_id is None):
        fail(["give exactly one of --user EMAIL or --api-key ID"])
    if key_id is not None and tenant is not None:
        fail(["an API key acts in its own tenant; leave out --tenant"])
    if key_id is not None and mfa is not None:
        fail(["an API key never shows a second factor; leave out --mfa/--one-factor"])
    settings = settings_from(config_path)
    body = body_file.read() if body_file else b""
    headers = parsed_headers(header_lines)

    async def body_() -> int:
        engine = await opened_store(settings)
        ruleset = await ruleset_of(engine, settings, version_id)
        if isinstance(ruleset, AdminError):
            await engine.dispose()
            click.echo(f"error: {ruleset.message}", err=True)
            return 2
        deciders = build_deciders(settings, ruleset, engine)
        await deciders.ownership.start()
        try:
            unknown = None if tenant is None else await admin.known_tenant(engine, tenant)
            if unknown is not None:
                click.echo(f"error: {unknown.message}", err=True)
                return 2
            if key_id is not None:
                principal = await principal_for_key(deciders, key_id)
                if isinstance(principal, str):
                    click.echo(f"error: {principal}", err=True)
                    return 2
            else:
                found = await principal_for(deciders, email or "", tenant=tenant, mfa=mfa)
                if found is None:
                    click.echo(f"no user {email!r}; add one with `gatehold users add`", err=True)
                    return 2
                principal = found
            result = await explain(
                deciders,
                principal=principal,
                method=method,
                target=path,
                body=body,
                content_type=content_type,
                headers=headers,
            )
        finally:
            await deciders.ownership.close()
            await engine.dispose()
        verdict = result.decision
        click.echo(f"{simulated(verdict).upper()} {verdict.reason}")
        for step in result.steps:
            click.echo(f"  - {step}")
        return 0 if verdict.allowed else 1

    sys.exit(run(body_()))


def stamp(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@rules.command(name="versions")
@config_option
def rules_versions(config_path: Path | None) -> None:
    """List rules versions, newest first: id, active mark, author, time, hash, comment."""
    from gateway.admin import rules as lifecycle

    settings = settings_from(config_path)

    async def listed(ctx: AdminContext) -> tuple[list[VersionRow], int | None] | AdminError:
        rows = await lifecycle.list_versions(ctx)
        if isinstance(rows, AdminError):
            return rows
        return rows, await lifecycle.active_version_id(ctx)

    rows, active = admin_run(settings, listed)
    for row in rows:
        mark = "*" if row.id == active else " "
        click.echo(
            f"{mark} {row.id}	{row.author}	{stamp(row.created_at)}	"
            f"{row.source_hash[:12]}	{row.comment}"
        )


@rules.command(name="show")
@config_option
@click.argument("version_id", type=int)
def rules_show(config_path: Path | None, version_id: int) -> None:
    """Print the YAML of rules version VERSION_ID."""
    from gateway.admin import rules as lifecycle

    settings = settings_from(config_path)
    version = admin_run(settings, lambda ctx: lifecycle.get_version(ctx, version_id))
    click.echo(version.yaml, nl=not version.yaml.endswith("\n"))


@rules.command(name="diff")
@config_option
@click.argument("a", type=int)
@click.argument("b", type=int)
def rules_diff(config_path: Path | None, a: int, b: int) -> None:
    """A unified diff from rules version A to version B."""
    from gateway.admin import rules as lifecycle

    settings = settings_from(config_path)
    click.echo(admin_run(settings, lambda ctx: lifecycle.diff_versions(ctx, a, b)), nl=False)


@rules.command(name="propose")
@config_option
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--comment", default="", help="Why this version (kept with it).")
def rules_propose(config_path: Path | None, file: Path, comment: str) -> None:
    """Validate FILE and store it as a new, inactive rules version (managed_by: admin)."""
    from gateway.admin import rules as lifecycle

    settings = settings_from(config_path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        fail([f"{file}: cannot read: {error.strerror}"])

    async def propose(
        ctx: AdminContext,
    ) -> tuple[VersionRow | lifecycle.RuleProblems] | AdminError:
        result = await lifecycle.propose_version(ctx, text, comment, source=str(file))
        return result if isinstance(result, AdminError) else (result,)

    (result,) = admin_run(settings, propose)
    if isinstance(result, lifecycle.RuleProblems):
        fail([str(problem) for problem in result.problems])
    click.echo(f"rules version {result.id} stored; activate it with `gatehold rules activate`")


@rules.command(name="activate")
@config_option
@click.argument("version_id", type=int)
@click.option("--comment", default="", help="Why (kept in the audit record).")
def rules_activate(config_path: Path | None, version_id: int, comment: str) -> None:
    """Make VERSION_ID the rules every gateway process runs (within a second)."""
    from gateway.admin import rules as lifecycle

    settings = settings_from(config_path)
    admin_run(settings, lambda ctx: lifecycle.activate_version(ctx, version_id, comment))
    click.echo(f"rules version {version_id} is active")


@rules.command(name="rollback")
@config_option
@click.argument("version_id", type=int)
@click.option("--comment", default="", help="Why (kept in the audit record).")
def rules_rollback(config_path: Path | None, version_id: int, comment: str) -> None:
    """Activate the older rules version VERSION_ID again."""
    from gateway.admin import rules as lifecycle

    settings = settings_from(config_path)
    admin_run(settings, lambda ctx: lifecycle.rollback_version(ctx, version_id, comment))
    click.echo(f"rolled back: rules version {version_id} is active")


@rules.command(name="impact")
@config_option
@click.argument("version_id", type=int)
@click.option("--last", "last_n", type=int, default=200, show_default=True)
def rules_impact(config_path: Path | None, version_id: int, last_n: int) -> None:
    """Replay the last audited requests against VERSION_ID; list each changed decision."""
    from gateway.admin import rules as lifecycle

    settings = settings_from(config_path)
    preview = admin_run(settings, lambda ctx: lifecycle.impact_preview(ctx, version_id, last_n))
    click.echo(
        f"replayed {preview.replayed} requests against version {preview.draft} "
        f"(active: {preview.active}): {len(preview.changes)} would change"
    )
    for change in preview.changes:
        old, new = change.active, change.draft
        click.echo(
            f"{change.request_id}	{change.caller}	{change.method} {change.target}	"
            f"{'ALLOW' if old.allowed else 'DENY'} {old.reason} -> "
            f"{'ALLOW' if new.allowed else 'DENY'} {new.reason}"
        )
    for skipped in preview.skipped:
        click.echo(f"skipped {skipped}")


def parsed_headers(lines: Sequence[str]) -> dict[str, str]:
    """``--header 'Name: value'`` options as a mapping; a line without a colon is an error."""
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            fail([f"--header {line!r}: write it as 'Name: value'"])
        headers[name.strip()] = value.strip()
    return headers


# ---------------------------------------------------------------- admin


def admin_run(settings: Settings, work: Callable[[AdminContext], Awaitable[T | AdminError]]) -> T:
    """Run one admin workflow as the CLI's superadmin; a refusal prints and exits 2."""

    async def body() -> T | AdminError:
        async with admin_context(settings) as ctx:
            return await work(ctx)

    result = run(body())
    if isinstance(result, AdminError):
        fail([result.message])
    return result


# ---------------------------------------------------------------- tenants


@main.group()
def tenants() -> None:
    """Manage tenants: the boundary every membership, key and object belongs to."""


@tenants.command(name="add")
@config_option
@click.argument("tenant_id")
@click.option("--name", "display_name", default="", help="Display name (default: the id).")
def tenants_add(config_path: Path | None, tenant_id: str, display_name: str) -> None:
    """Create a tenant with the id TENANT_ID (lower-case letters, digits, '-')."""
    settings = settings_from(config_path)
    row = admin_run(settings, lambda ctx: admin.create_tenant(ctx, tenant_id, display_name))
    click.echo(f"tenant {row.id} ({row.display_name}) created")


@tenants.command(name="list")
@config_option
def tenants_list(config_path: Path | None) -> None:
    """List tenants."""
    settings = settings_from(config_path)
    for row in admin_run(settings, admin.list_tenants):
        state = "active" if row.active else "deactivated"
        click.echo(f"{row.id}\t{state}\t{row.display_name}")


@tenants.command(name="rename")
@config_option
@click.argument("tenant_id")
@click.argument("display_name")
def tenants_rename(config_path: Path | None, tenant_id: str, display_name: str) -> None:
    """Change a tenant's display name (its id stays)."""
    settings = settings_from(config_path)
    row = admin_run(settings, lambda ctx: admin.rename_tenant(ctx, tenant_id, display_name))
    click.echo(f"tenant {row.id} is now called {row.display_name}")


@tenants.command(name="deactivate")
@config_option
@click.argument("tenant_id")
def tenants_deactivate(config_path: Path | None, tenant_id: str) -> None:
    """Deactivate a tenant: its memberships and keys grant nothing, its members'
    sessions end now."""
    settings = settings_from(config_path)
    ended = admin_run(settings, lambda ctx: admin.deactivate_tenant(ctx, tenant_id))
    click.echo(f"tenant {tenant_id} deactivated; {ended} session(s) ended")


# ---------------------------------------------------------------- users


@main.group()
def users() -> None:
    """Manage users and their memberships."""


@users.command(name="add")
@config_option
@click.argument("email")
@click.option("--tenant", "tenants", multiple=True, help="Tenant (repeat; '*' for global).")
@click.option("--role", "roles", multiple=True, help="Role in the matching --tenant (repeat).")
@click.option("--superadmin", is_flag=True, help="May manage everything in the admin UI.")
@click.option(
    "--sso",
    "sso_provider",
    default=None,
    help="Invite them to sign in with this OIDC provider: its first sign-in with this "
    "verified email becomes theirs.",
)
@click.option(
    "--invite-valid",
    default="14d",
    show_default=True,
    help="How long an --sso invite waits for that first sign-in.",
)
def users_add(
    config_path: Path | None,
    email: str,
    tenants: tuple[str, ...],
    roles: tuple[str, ...],
    superadmin: bool,
    sso_provider: str | None,
    invite_valid: str,
) -> None:
    """Add a user, or add memberships to an existing one: --tenant T --role R, repeatable."""
    if len(tenants) != len(roles):
        fail(["give one --role for every --tenant, in order: --tenant acme --role standard"])
    address = normalize_email(email)
    if address is None:
        fail([f"{email!r} is not a plain email address like name@example.com"])
    settings = settings_from(config_path)
    invite_ttl = sso_invite_ttl(settings, sso_provider, invite_valid)
    memberships = [Membership(t, r) for t, r in zip(tenants, roles, strict=True)]

    async def work(ctx: AdminContext) -> UserRow | AdminError:
        user = await admin.add_user(ctx, address, memberships, superadmin=superadmin)
        if not isinstance(user, AdminError) and sso_provider and invite_ttl is not None:
            refused = await admin.invite_sso(ctx, user, provider=sso_provider, ttl=invite_ttl)
            if refused is not None:
                return refused
        return user

    user = admin_run(settings, work)
    click.echo(f"user {user.email} (id {user.id}) has: " + describe(memberships))
    if sso_provider is not None:
        click.echo(f"invited to sign in with {sso_provider} (valid {invite_valid})")


def sso_invite_ttl(settings: Settings, provider: str | None, valid: str) -> float | None:
    """Seconds an invite through ``provider`` stays valid; exits on a bad provider or time."""
    if provider is None:
        return None
    names = [p.name for p in settings.auth.oidc]
    problems = []
    if provider not in names:
        known = ", ".join(names) or "none (add one under auth.oidc)"
        problems.append(f"no OIDC provider {provider!r}; configured: {known}")
    try:
        ttl = parse_duration(valid)
    except ValueError as error:
        problems.append(f"--invite-valid: {error}")
        ttl = 0.0
    if ttl <= 0 and not problems:
        problems.append("--invite-valid must be a positive duration, e.g. 14d")
    if problems:
        fail(problems)
    return ttl


def describe(memberships: Sequence[Membership]) -> str:
    parts = [
        f"{m.role} in every tenant" if m.tenant == GLOBAL_TENANT else f"{m.role} in {m.tenant}"
        for m in memberships
    ]
    return ", ".join(parts) or "no new memberships"


@users.command(name="invite")
@config_option
@click.argument("email")
@click.option(
    "--grant",
    "grants",
    multiple=True,
    required=True,
    help="A membership ROLE@TENANT to grant (repeat).",
)
@click.option(
    "--valid",
    default="3d",
    show_default=True,
    help="How long the mailed sign-in link works (at most 14d).",
)
@click.option("--by", "inviter", default="", help="Who the mail says invited them.")
def users_invite(
    config_path: Path | None, email: str, grants: tuple[str, ...], valid: str, inviter: str
) -> None:
    """Invite a person by mail: grant memberships and send a sign-in link.

    They are listed as invited until they first sign in. (To invite someone to an SSO
    provider instead, use `users add --sso PROVIDER`.)
    """
    memberships = parsed_grants(grants)
    try:
        valid_for = parse_duration(valid)
    except ValueError as error:
        fail([f"--valid: {error}"])
    settings = settings_from(config_path)
    user = admin_run(
        settings,
        lambda ctx: invites.invite_user(
            ctx, email, memberships, valid_for=valid_for, inviter=inviter
        ),
    )
    mailed = f"{invites.QUEUED_NOTE}" if user.queued else "a sign-in link was mailed"
    click.echo(f"{user.email} invited with: {describe(memberships)}; {mailed}")


def parsed_grants(grants: Sequence[str]) -> list[Membership]:
    """``--grant role@tenant`` options as memberships; a malformed one is an error."""
    memberships = []
    for grant in grants:
        role, at, tenant = grant.rpartition("@")
        if not at or not role or not tenant:
            fail([f"--grant {grant!r}: write it as ROLE@TENANT, e.g. standard@acme"])
        memberships.append(Membership(tenant, role))
    return memberships


@users.command(name="list")
@config_option
def users_list(config_path: Path | None) -> None:
    """List users: state (invited, active, deactivated), last activity, memberships."""
    settings = settings_from(config_path)
    for user in admin_run(settings, admin.list_users):
        flags = " superadmin" if user.superadmin else ""
        seen = "never" if user.last_active is None else when(user.last_active)
        click.echo(
            f"{user.email}\t{user.state}{flags}\tlast active {seen}\t{describe(user.memberships)}"
        )


@users.command(name="deactivate")
@config_option
@click.argument("email")
def users_deactivate(config_path: Path | None, email: str) -> None:
    """Deactivate a user and end all their sessions now."""
    settings = settings_from(config_path)
    ended = admin_run(settings, lambda ctx: admin.set_user_active(ctx, email, False))
    click.echo(f"{email.lower()} deactivated; {ended} session(s) ended")


@users.command(name="reactivate")
@config_option
@click.argument("email")
def users_reactivate(config_path: Path | None, email: str) -> None:
    """Let a deactivated user sign in again (with the memberships they still hold)."""
    settings = settings_from(config_path)
    admin_run(settings, lambda ctx: admin.set_user_active(ctx, email, True))
    click.echo(f"{email.lower()} reactivated")


@users.command(name="reset-factors")
@config_option
@click.argument("email")
def users_reset_factors(config_path: Path | None, email: str) -> None:
    """Remove a user's second factors (authenticator app, recovery codes, passkeys) for a
    lost device; the password stays. Their sessions end now; the next sign-in enrols a
    new second factor where the rules require one."""
    settings = settings_from(config_path)
    done = admin_run(settings, lambda ctx: factors.reset_second_factors(ctx, email))
    removed = done.removed
    click.echo(
        f"{done.email}: removed authenticator app: {'yes' if removed.totp else 'no'}, "
        f"{removed.recovery_codes_left} recovery code(s), {removed.passkeys} passkey(s); "
        f"{done.sessions} session(s) ended" + ("; password kept" if removed.password else "")
    )


def membership_options(command: F) -> F:
    command = click.option("--role", required=True, help="A role the rules define.")(command)
    return click.option("--tenant", required=True, help="A tenant ('*' for global).")(command)


@users.command(name="grant")
@config_option
@click.argument("email")
@membership_options
def users_grant(config_path: Path | None, email: str, tenant: str, role: str) -> None:
    """Add a membership: ROLE in TENANT (their sessions end, to take it up at once)."""
    settings = settings_from(config_path)
    user = admin_run(settings, lambda ctx: admin.add_membership(ctx, email, tenant, role))
    click.echo(f"{user.email} has: {describe(user.memberships)}")


@users.command(name="ungrant")
@config_option
@click.argument("email")
@membership_options
def users_ungrant(config_path: Path | None, email: str, tenant: str, role: str) -> None:
    """Remove a membership; the person's sessions end now."""
    settings = settings_from(config_path)
    user = admin_run(settings, lambda ctx: admin.remove_membership(ctx, email, tenant, role))
    click.echo(f"{user.email} has: {describe(user.memberships) or 'no memberships'}")


@users.command(name="set-role")
@config_option
@click.argument("email")
@membership_options
def users_set_role(config_path: Path | None, email: str, tenant: str, role: str) -> None:
    """Make ROLE the person's only role in TENANT; their sessions end now."""
    settings = settings_from(config_path)
    user = admin_run(settings, lambda ctx: admin.change_role(ctx, email, tenant, role))
    click.echo(f"{user.email} has: {describe(user.memberships)}")


# ---------------------------------------------------------------- sessions


@main.group()
def session() -> None:
    """Sessions for scripts and benchmarks."""


@session.command(name="mint")
@config_option
@click.argument("email")
@click.option("--tenant", default=None, help="Active tenant of the session.")
def session_mint(config_path: Path | None, email: str, tenant: str | None) -> None:
    """Print a session cookie for EMAIL (audited as session-minted)."""
    settings = settings_from(config_path)
    cookie = run(mint_cookie(settings, email, tenant=tenant))
    if cookie is None:
        fail([f"no active user {email!r}; add one with `gatehold users add`"])
    click.echo(cookie)


@main.group(name="sessions")
def sessions_group() -> None:
    """See and end a person's sessions."""


def when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@sessions_group.command(name="list")
@config_option
@click.argument("email")
def sessions_list(config_path: Path | None, email: str) -> None:
    """List EMAIL's open sessions: id (hash prefix), created, last seen, client, method."""
    settings = settings_from(config_path)
    for row in admin_run(settings, lambda ctx: admin.list_sessions(ctx, email)):
        client = f"{row.client_ip} {row.user_agent}".strip()
        click.echo(
            f"{row.id_hash[:12]}\tcreated {when(row.created_at)}\tseen {when(row.last_seen)}"
            f"\t{client}\t{row.auth_method}"
        )


@sessions_group.command(name="end")
@config_option
@click.argument("email")
@click.option("--session", "prefix", default=None, help="One session: its id from `list`.")
def sessions_end(config_path: Path | None, email: str, prefix: str | None) -> None:
    """End one of EMAIL's sessions, or all of them; each is refused on its next request."""
    settings = settings_from(config_path)
    ended = admin_run(settings, lambda ctx: admin.end_user_sessions(ctx, email, prefix))
    click.echo(f"{ended} session(s) of {email.lower()} ended")


# ---------------------------------------------------------------- API keys


@main.group()
def apikey() -> None:
    """Keys for partners' systems: bound to one tenant and role, hashed at rest."""


@apikey.command(name="create")
@config_option
@click.option("--tenant", required=True)
@click.option("--role", required=True)
@click.option("--expires", default="90d", show_default=True, help="Lifetime, e.g. 30d.")
@click.option("--label", default="", help="Who or what uses the key.")
@click.option(
    "--admin",
    "admin_key",
    is_flag=True,
    help="A key for the admin API only (as admin of --tenant; of every tenant for '*'); "
    "the proxy refuses it for upstream traffic.",
)
def apikey_create(
    config_path: Path | None, tenant: str, role: str, expires: str, label: str, admin_key: bool
) -> None:
    """Create a key and print it once; only its hash is stored."""
    settings = settings_from(config_path)
    try:
        ttl = parse_duration(expires)
    except ValueError as error:
        fail([f"--expires: {error}"])
    key_id, key = admin_run(
        settings,
        lambda ctx: admin.create_api_key(
            ctx, tenant=tenant, role=role, label=label, ttl=ttl, admin=admin_key
        ),
    )
    kind = "admin API key" if admin_key else "API key"
    click.echo(f"{kind} {key_id} ({role} in {tenant}); it is shown only now:", err=True)
    click.echo(key)


@apikey.command(name="revoke")
@config_option
@click.argument("key_id", type=int)
def apikey_revoke(config_path: Path | None, key_id: int) -> None:
    """Revoke a key now."""
    settings = settings_from(config_path)
    admin_run(settings, lambda ctx: admin.revoke_api_key(ctx, key_id))
    click.echo(f"API key {key_id} revoked")


@apikey.command(name="list")
@config_option
def apikey_list(config_path: Path | None) -> None:
    """List keys (never the keys themselves): id, role@tenant, state, label, expiry,
    last use (noted at most once a minute)."""
    settings = settings_from(config_path)
    now = time.time()
    for row in admin_run(settings, admin.list_api_keys):
        state = "live" if row.live(now) else ("revoked" if row.revoked_at else "expired")
        expires = datetime.fromtimestamp(row.expires_at, UTC).strftime("%Y-%m-%dT%H:%MZ")
        kind = "\tadmin" if row.admin else ""
        used = "never" if row.last_used_at is None else when(row.last_used_at)
        click.echo(
            f"{row.id}\t{row.role}@{row.tenant}\t{state}{kind}\t{row.label}"
            f"\texpires {expires}\tlast used {used}"
        )


# ---------------------------------------------------------------- ownership registry


@main.group(name="registry")
def registry_group() -> None:
    """The ownership registry: which tenant owns each object of a registry resource."""


def owner_line(change: registry.OwnerChange) -> str:
    return (
        f"{change.resource_type} {change.object_id}: "
        f"{change.before or '(none)'} -> {change.after or '(none)'}"
    )


@registry_group.command(name="show")
@config_option
@click.argument("resource_type")
@click.argument("object_id")
def registry_show(config_path: Path | None, resource_type: str, object_id: str) -> None:
    """Print the tenant that owns RESOURCE_TYPE OBJECT_ID."""
    settings = settings_from(config_path)
    row = admin_run(settings, lambda ctx: registry.show_owner(ctx, resource_type, object_id))
    click.echo(row.tenant)


@registry_group.command(name="set")
@config_option
@click.argument("resource_type")
@click.argument("object_id")
@click.argument("tenant")
def registry_set(config_path: Path | None, resource_type: str, object_id: str, tenant: str) -> None:
    """Record that TENANT owns RESOURCE_TYPE OBJECT_ID (moving it if another did)."""
    settings = settings_from(config_path)
    change = admin_run(
        settings, lambda ctx: registry.set_owner(ctx, resource_type, object_id, tenant)
    )
    click.echo(owner_line(change) if change.changed else f"{tenant} owns it already")


@registry_group.command(name="remove")
@config_option
@click.argument("resource_type")
@click.argument("object_id")
def registry_remove(config_path: Path | None, resource_type: str, object_id: str) -> None:
    """Forget the owner of RESOURCE_TYPE OBJECT_ID (requests naming it are then refused)."""
    settings = settings_from(config_path)
    change = admin_run(settings, lambda ctx: registry.remove_owner(ctx, resource_type, object_id))
    click.echo(owner_line(change))


@registry_group.command(name="import")
@config_option
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
def registry_import(config_path: Path | None, file: Path) -> None:
    """Import a resource_type,object_id,tenant CSV (header first), all or nothing."""
    settings = settings_from(config_path)
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        fail([f"{file}: cannot read it: {error}"])

    async def work(
        ctx: AdminContext,
    ) -> tuple[list[registry.OwnerChange] | AdminError] | AdminError:
        return (await registry.import_csv(ctx, lines),)

    (changes,) = admin_run(settings, work)
    if isinstance(changes, AdminError):  # every problem, one line each
        listed = [f"{file}:{line}: {text}" if line else text for line, text in changes.problems]
        fail(listed or [changes.message])
    for change in changes:
        click.echo(owner_line(change))
    click.echo(f"{len(changes)} owner(s) set or changed", err=True)


# ---------------------------------------------------------------- access requests


@main.group(name="access")
def access_group() -> None:
    """Access requests: people refused at the gateway ask, the tenant's admins decide."""


@access_group.command(name="list")
@config_option
@click.option("--tenant", default=None, help="Only requests into this tenant.")
@click.option("--all", "every_state", is_flag=True, help="Decided requests too.")
def access_list(config_path: Path | None, tenant: str | None, every_state: bool) -> None:
    """List waiting requests: id, state, tenant, who, role asked for, when, what, why."""
    settings = settings_from(config_path)
    state = None if every_state else "pending"
    rows = admin_run(
        settings, lambda ctx: access.list_access_requests(ctx, state=state, tenant=tenant)
    )
    for row in rows:
        why = " ".join(row.why.split())
        click.echo(
            f"{row.id}\t{row.state}\t{row.tenant}\t{row.email}\t{row.role_wanted or '-'}"
            f"\t{when(row.created_at)}\t{row.what}\t{why}"
        )


@access_group.command(name="approve")
@config_option
@click.argument("request_id", type=int)
@click.option("--role", default=None, help="Role to grant (default: the one asked for).")
def access_approve(config_path: Path | None, request_id: int, role: str | None) -> None:
    """Grant the requester the role in the request's tenant; they are mailed."""
    settings = settings_from(config_path)
    row = admin_run(settings, lambda ctx: access.approve_access_request(ctx, request_id, role))
    click.echo(f"request {row.id} approved: {row.email} holds {row.granted_role} in {row.tenant}")


@access_group.command(name="decline")
@config_option
@click.argument("request_id", type=int)
@click.option("--comment", default="", help="Why; the requester is mailed it.")
def access_decline(config_path: Path | None, request_id: int, comment: str) -> None:
    """Decline a request; the requester is mailed."""
    settings = settings_from(config_path)
    row = admin_run(settings, lambda ctx: access.decline_access_request(ctx, request_id, comment))
    click.echo(f"request {row.id} of {row.email} declined")


# ---------------------------------------------------------------- access reviews


@main.group(name="reviews")
def reviews_group() -> None:
    """Access reviews: who holds what in a tenant, who is idle, who reviewed it when."""


def idle_days_option(command: F) -> F:
    return click.option(
        "--idle-days",
        type=int,
        default=None,
        help="Flag members idle longer (default: reviews.idle_days, 90).",
    )(command)


@reviews_group.command(name="show")
@config_option
@click.argument("tenant")
@idle_days_option
def reviews_show(config_path: Path | None, tenant: str, idle_days: int | None) -> None:
    """Members of TENANT: email, roles, last activity, idle flag; then the last attestation."""
    settings = settings_from(config_path)

    async def work(ctx: AdminContext) -> Any:
        rows = await reviews.review_tenant(ctx, tenant, idle_days)
        if isinstance(rows, AdminError):
            return rows
        return rows, await reviews.list_attestations(ctx, tenant)

    rows, attestations = admin_run(settings, work)
    for row in rows:
        seen = "never" if row.last_activity is None else when(row.last_activity)
        flags = ("IDLE" if row.idle else "") + ("" if row.active else " deactivated")
        click.echo(f"{row.email}\t{' '.join(row.roles)}\t{seen}\t{flags.strip()}")
    if attestations:
        last = attestations[0]
        click.echo(f"last reviewed by {last.reviewer} at {when(last.at)}")
    else:
        click.echo("never reviewed")


@reviews_group.command(name="revoke")
@config_option
@click.argument("tenant")
@click.argument("email")
def reviews_revoke(config_path: Path | None, tenant: str, email: str) -> None:
    """Remove every role EMAIL holds in TENANT at once; their sessions end now."""
    settings = settings_from(config_path)
    user = admin_run(settings, lambda ctx: reviews.revoke_member(ctx, tenant, email))
    click.echo(f"{user.email} holds nothing in {tenant} now; has: {describe(user.memberships)}")


@reviews_group.command(name="attest")
@config_option
@click.argument("tenant")
@click.option("--comment", default="", help="What was reviewed, findings.")
def reviews_attest(config_path: Path | None, tenant: str, comment: str) -> None:
    """Record "reviewed by <you> at <now>" for TENANT (audited)."""
    settings = settings_from(config_path)
    row = admin_run(settings, lambda ctx: reviews.attest_review(ctx, tenant, comment))
    click.echo(f"{tenant} reviewed by {row.reviewer} at {when(row.at)}")


@reviews_group.command(name="export")
@config_option
@click.argument("tenant")
@idle_days_option
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="File (default: stdout); not created when the export is refused.",
)
def reviews_export(
    config_path: Path | None, tenant: str, idle_days: int | None, output: Path | None
) -> None:
    """Write TENANT's review as CSV for auditors (tenant, email, roles, last_activity,
    idle, last_attestation); the export is audited."""
    settings = settings_from(config_path)
    text = admin_run(settings, lambda ctx: reviews.export_review_csv(ctx, tenant, idle_days))
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")


# ---------------------------------------------------------------- audit


@main.group()
def audit() -> None:
    """Verify and export the audit trail."""


@audit.command(name="verify")
@config_option
@click.option(
    "--checkpoints",
    "checkpoint_files",
    type=click.Path(path_type=Path, dir_okay=False),
    multiple=True,
    help="Signed checkpoints to hold the log against (repeat for rotated files or a "
    "syslog copy; default: audit.checkpoints of the settings).",
)
@click.option(
    "--unkeyed-until",
    type=click.IntRange(0),
    default=0,
    help="Check records up to this seq with the unkeyed hash of versions before the "
    "keyed chain (an upgraded log); anyone who could write the database could have "
    "rewritten those.",
)
def audit_verify(
    config_path: Path | None, checkpoint_files: tuple[Path, ...], unkeyed_until: int
) -> None:
    """Check the keyed chain against its checkpoints; report every edit, deletion,
    truncation, re-hashed record and forged checkpoint."""
    from gateway.admin.audit_trail import verify_trail

    settings = settings_from(config_path)
    check = run(verify_trail(settings, checkpoint_files, unkeyed_until=unkeyed_until))
    report_trail(check, unkeyed_until=unkeyed_until)


def report_trail(check: TrailCheck, *, unkeyed_until: int = 0) -> None:
    """Print what ``verify_trail`` found; exit 1 if the trail was tampered with."""
    problems = check.problems
    for problem in problems:
        click.echo(f"TAMPERED: {problem}")
    if problems:
        sys.exit(1)
    if not check.records:
        click.echo("audit log is empty: nothing to verify yet")
        return
    if unkeyed_until:
        click.echo(
            f"warning: seq 1-{unkeyed_until} predate the keyed chain; their hashes prove "
            "nothing against someone who could write the database",
            err=True,
        )
    click.echo(f"audit chain intact ({check.checkpoints} checkpoint(s) matched)")
    click.echo(f"{check.records} record(s) checked")


@audit.command(name="export")
@config_option
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl")
@click.option("--output", type=click.File("w"), default="-")
def audit_export(config_path: Path | None, fmt: str, output: Any) -> None:
    """Write the audit trail as JSON lines or CSV (the export is itself audited)."""
    from gateway.admin.audit_trail import export_trail, trail_writer

    settings = settings_from(config_path)

    async def body() -> None:
        async with trail_writer(settings) as (engine, writer):
            async for chunk in export_trail(engine, writer, actor="cli", fmt=fmt):
                output.write(chunk)

    run(body())


# ---------------------------------------------------------------- backup


@main.command()
@config_option
@click.argument("dest", type=click.Path(path_type=Path))
def backup(config_path: Path | None, dest: Path) -> None:
    """Back up the store, the audit checkpoints and the key files into the new folder
    DEST; safe while the gateway runs (audited as store-backed-up)."""
    from gateway.backup import take_backup
    from gateway.backup_manifest import Refused

    settings = settings_from(config_path)
    taken = run(take_backup(settings, dest, actor="cli", env=os.environ))
    if isinstance(taken, Refused):
        fail(taken.problems)
    manifest = taken.manifest
    for file in manifest.files:
        click.echo(f"{file.role.value}\t{dest / file.path}\t{file.size} bytes")
    for note in taken.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(
        f"backed up the {manifest.backend} store to {dest}: audit chain at seq "
        f"{manifest.audit_last_seq} (head {manifest.audit_head_hash[:16]}...)"
    )


@main.command()
@config_option
@click.argument("src", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option(
    "--force",
    is_flag=True,
    help="Replace a store that already holds audit records, and checkpoint or key files "
    "that differ from the backup's.",
)
def restore(config_path: Path | None, src: Path, force: bool) -> None:
    """Restore the backup folder SRC into the store and files the settings name (stop the
    gateway first), then verify the audit trail as `audit verify` does (exit 1 if it
    was tampered with; audited as store-restored)."""
    from gateway.backup_manifest import Refused
    from gateway.restore import restore_backup, verify_and_record

    settings = settings_from(config_path)
    restored = run(restore_backup(settings, src, force=force, env=os.environ))
    if isinstance(restored, Refused):
        fail(restored.problems)
    manifest = restored.manifest
    click.echo(
        f"restored the {manifest.backend} store backed up at {manifest.created} "
        f"(audit chain at seq {manifest.audit_last_seq})"
    )
    for path in restored.placed:
        click.echo(f"restored {path}")
    for path in restored.kept:
        click.echo(f"kept {path} (same as the backup's)")
    for path in restored.moved_aside:
        click.echo(f"moved the file that was there to {path}")
    for note in restored.notes:
        click.echo(f"note: {note}", err=True)
    report_trail(run(verify_and_record(settings, src, forced=force, actor="cli")))


# ---------------------------------------------------------------- share links


@main.group()
def share() -> None:
    """Share links of files: one path, one person, a life of at most a day."""


@share.command(name="create")
@config_option
@click.option("--for", "recipient", required=True, help="Whom the link is for (their email).")
@click.option("--as", "minter", required=True, help="Who shares: a user who may download PATH now.")
@click.option(
    "--expires",
    default=None,
    help="Lifetime, e.g. 2h (default files.share_default_ttl, at most files.share_max_ttl).",
)
@click.argument("path")
def share_create(
    config_path: Path | None, recipient: str, minter: str, expires: str | None, path: str
) -> None:
    """Mint a link to the file at PATH; the link is printed once."""
    from gateway.admin.shares import mint_share_as, share_ttl

    settings = settings_from(config_path)
    ttl = share_ttl(settings, expires)
    if isinstance(ttl, AdminError):
        fail([ttl.message.replace("expires:", "--expires:", 1)])
    minted = admin_run(
        settings,
        lambda ctx: mint_share_as(
            ctx, settings, minter=minter, path=path, recipient=recipient, ttl=ttl
        ),
    )
    row = minted.share
    click.echo(
        f"share link {row.id}: {row.path} for {row.recipient}, until {stamp(row.expires_at)}; "
        "it is shown only now:",
        err=True,
    )
    click.echo(minted.url)


@share.command(name="list")
@config_option
def share_list(config_path: Path | None) -> None:
    """List live links: id, path, for whom, minted by, expiry."""
    from gateway.admin.shares import list_shares

    settings = settings_from(config_path)
    for row in admin_run(settings, list_shares):
        click.echo(
            f"{row.id}\t{row.path}\tfor {row.recipient}\tby {row.created_by}"
            f"\texpires {stamp(row.expires_at)}"
        )


@share.command(name="revoke")
@config_option
@click.argument("share_id", type=int)
def share_revoke(config_path: Path | None, share_id: int) -> None:
    """Revoke a link now, on every replica."""
    from gateway.admin.shares import revoke_share

    settings = settings_from(config_path)
    admin_run(settings, lambda ctx: revoke_share(ctx, share_id))
    click.echo(f"share link {share_id} revoked")


def _add_export() -> None:
    from gateway.export_cli import export_command

    main.add_command(export_command)


_add_export()
