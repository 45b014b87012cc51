"""docs/getting-started-with-an-existing-app.md, walked through as the guide walks it.

A real gateway following the store (``rules.managed_by: admin``) in front of the real
Ledger writes its JSON access lines while demo people use the app; ``gatehold rules
learn`` drafts rules from that log; the guide's review fills the questions; ``rules
check --strict --probe`` passes; the version is proposed and run in shadow; the report
lists the differences the guide shows, grouped by route and reason; activation is
refused while they last. The guide's fixes are proposed as the next version, whose
shadow run is clean and activates, and the gateway then decides by it. Every
``gatehold`` command line in the guide is parsed by the real command's parser.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import pytest
import yaml
from sqlalchemy import text

from gateway import logs
from gateway.app import ENGINE
from gateway.cli import main
from gateway.logs import ACCESS_LOG, JsonLines
from gateway.shadow import SHADOW
from gateway.shadow_sync import SHADOW_FOLLOWER
from tests.support.cli import gatehold
from tests.support.served import wait_for_port
from tests.support.servers_base import free_port
from tests.support.stack import DEMO_RULES, REPO, Stack, running_stack

GUIDE = REPO / "docs" / "getting-started-with-an-existing-app.md"
ALICE, BOB, RITA, CAROL = "alice@acme.test", "bob@globex.test", "rita@acme.test", "carol@acme.test"
PLACEHOLDER = (
    '{{http: "GET http://QUESTION-owner-of-{0}.invalid/{{id}}", '
    'tenant_field: "/QUESTION-tenant-field"}}'
)
INVOICE_LOOKUP = '{http: "GET {upstream}/internal/invoices/{id}", tenant_field: /tenant}'
DOCUMENT_LOOKUP = '{sql: "SELECT tenant FROM documents WHERE id = :id", dsn: "${LEDGER_DB_DSN}"}'
NO_QUERY = "\n    upstream: app\n    query: {allow: []}"
INVOICE_LIST = '    match: {path: "/api/invoices", methods: [GET]}' + NO_QUERY
RECENT_LIST = '    match: {path: "/api/reports/recent", methods: [GET]}' + NO_QUERY
SEARCH = '    match: {path: "/api/search", methods: [GET]}' + NO_QUERY
PUT_ITEM = (
    '    match: {path: "/api/items/{item_id:int}", methods: [PUT]}\n'
    "    upstream: app\n    resource: {type: invoice, id: path.item_id}"
)
CREATE = '    match: {path: "/api/invoices", methods: [POST]}\n    upstream: app'

REVIEW = [
    ('app: {url: "http://QUESTION-app-address.invalid"}', 'app: {url: "${LEDGER_URL}"}'),
    ("  standard: {can: [read, write]}\n  admin:    {can: [read, write, delete]}",
     "  standard: {can: [read, write, download]}\n"
     "  admin:    {can: [read, write, delete, export, download, manage_users]}\n"
     "  operator: {can: [read, write], scope: global}"),
    (f"owner: {PLACEHOLDER.format('invoice')}", f"owner: {INVOICE_LOOKUP}"),
    (f"owner: {PLACEHOLDER.format('item')}", f"owner: {INVOICE_LOOKUP}"),
    (f"owner: {PLACEHOLDER.format('report')}", "owner: {registry: true, learn_on_create: true}"),
    (f"owner: {PLACEHOLDER.format('file')}", f"owner: {DOCUMENT_LOOKUP}"),
    (INVOICE_LIST, INVOICE_LIST + '\n    guard: {tenant_field: "/items/*/tenant", mode: block}'),
    (CREATE, CREATE + "\n    ignore_lints: [writes-unchecked]"
                      "  # Ledger files it under X-Gatehold-Tenant"),
    (RECENT_LIST, RECENT_LIST + '\n    guard: {tenant_field: "/items/*/tenant", mode: filter}'),
]  # fmt: skip
"""The guide's step 3: every owner lookup and list question answered, as text edits."""

FIXES = [
    ("  item:  # named by get-api-items-item-id, put-api-items-item-id\n    id_type: int\n"
     f"    owner: {INVOICE_LOOKUP}\n", ""),
    ("resource: {type: item, id: path.item_id}", "resource: {type: invoice, id: path.item_id}"),
    # an update must not move the row to another tenant (the live rules refused one)
    (PUT_ITEM, PUT_ITEM + "\n    body_tenant: {pointer: /tenant, on_missing: set}"),
    ("  file:  # named by get-files-file-id", "  document:  # named by get-files-file-id"),
    ("    upstream: app\n    resource: {type: file, id: path.file_id}",
     "    upstream: app\n    action: download\n    resource: {type: document, id: path.file_id}\n"
     "    file: {disposition: attachment}"),
    (SEARCH, SEARCH.replace("query: {allow: []}", "query_ids: [{type: invoice, param: invoice}]")),
]  # fmt: skip
"""The guide's step 6: what the first shadow report asked for."""

MORE_ROUTES = """\
  # not in the first log; seen in shadow
  - name: post-api-invoices-export
    match: {path: "/api/invoices/export", methods: [POST]}
    upstream: app
    action: export
    step_up: 10m
    ignore_lints: [writes-unchecked]  # a read: Ledger exports the X-Gatehold-Tenant's rows
  - name: get-api-items
    match: {path: "/api/items", methods: [GET]}
    upstream: app
    query: {allow: [limit, page_token, _facet]}
    bind: {query: {tenant: caller.tenant}}
    guard: {tenant_field: "/rows/*/tenant", mode: block}
"""

FIRST_REPORT = {
    ("invoice-search -> get-api-search", "ALLOW role-allowed -> DENY param-forbidden"): 2,
    ("document-file -> get-files-file-id", "DENY role-forbidden -> UNJUDGED owner-unknown"): 1,
    ("item-update -> put-api-items-item-id", "DENY tenant-mismatch -> ALLOW role-allowed"): 1,
    ("invoice-export -> (no route)", "ALLOW role-allowed -> DENY route-not-found"): 1,
    ("items-list -> (no route)", "ALLOW role-allowed -> DENY route-not-found"): 1,
}
"""The groups of the guide's first shadow report: (routes, decisions) → count."""


def edited(rules_text: str, edits: list[tuple[str, str]]) -> str:
    for old, new in edits:
        assert old in rules_text, f"the draft no longer holds {old!r}"
        rules_text = rules_text.replace(old, new)
    return rules_text


@contextmanager
def json_access_log(path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The gateway's access lines written to ``path`` as ``logging.format: json`` writes
    them (``logs.configure`` is what turns on the notes that name the caller and the
    decision in each line)."""
    handler = logging.FileHandler(path)
    handler.setFormatter(JsonLines())
    level = ACCESS_LOG.level
    ACCESS_LOG.addHandler(handler)
    ACCESS_LOG.setLevel(logging.INFO)
    monkeypatch.setattr(logs, "_noting", True)
    try:
        yield
    finally:
        ACCESS_LOG.removeHandler(handler)
        ACCESS_LOG.setLevel(level)
        handler.close()


async def call(stack: Stack, who: str, method: str, target: str, body: object = None) -> int:
    headers = {**stack.cookie(who), "Accept": "application/json"}
    async with stack.client.request(method, target, headers=headers, json=body) as reply:
        await reply.read()
        return reply.status


async def first_day(stack: Stack) -> None:
    """The guide's traffic.sh: people of both tenants use the app (and some noise)."""
    for who, own in ((ALICE, (1, 3, 5)), (BOB, (2, 4, 6)), (RITA, (7, 9))):
        await call(stack, who, "GET", "/api/invoices")
        for invoice in own:
            for target in (
                f"/api/invoices/{invoice}",
                f"/files/{invoice}",
                f"/api/items/{invoice}",
            ):
                await call(stack, who, "GET", target)
        await call(stack, who, "GET", f"/api/search?invoice={own[0]}")
        await call(stack, who, "GET", "/documents")
        await call(stack, who, "GET", "/api/reports/recent")
    await call(stack, ALICE, "PATCH", "/api/invoices/5", {"status": "paid"})
    await call(stack, BOB, "PATCH", "/api/invoices/4", {"status": "paid"})
    await call(stack, ALICE, "PUT", "/api/items/1", {"status": "open"})
    await call(stack, ALICE, "POST", "/api/invoices", {"customer": "New", "amount": 5})
    await call(stack, ALICE, "GET", "/api/reports/r-acme-1")
    await call(stack, BOB, "GET", "/api/reports/r-globex-1")
    assert await call(stack, ALICE, "GET", "/api/invoices/2") == 404
    assert await call(stack, ALICE, "GET", "/wp-login.php") == 404


async def next_day(stack: Stack) -> None:
    """The guide's traffic2.sh: more of the same, and what the first log did not show."""
    for who, target in ((ALICE, "/api/invoices"), (BOB, "/api/invoices"),
                        (ALICE, "/api/invoices/1"), (ALICE, "/api/invoices/2"),
                        (BOB, "/api/invoices/4"), (ALICE, "/api/items/3"), (BOB, "/api/items/6"),
                        (ALICE, "/api/search?invoice=1"), (BOB, "/api/search?invoice=2"),
                        (ALICE, "/files/1"), (RITA, "/files/7"),
                        (ALICE, "/api/reports/r-acme-1")):  # fmt: skip
        await call(stack, who, "GET", target)
    await call(stack, ALICE, "PATCH", "/api/invoices/3", {"status": "paid"})
    moved = await call(stack, ALICE, "PUT", "/api/items/1", {"status": "open", "tenant": "globex"})
    assert moved == 403
    assert await call(stack, CAROL, "POST", "/api/invoices/export", {}) == 200
    assert await call(stack, ALICE, "GET", "/api/items?limit=5") == 200


async def run(config: Path, *args: str, expect: int = 0) -> str:
    """``gatehold ARGS --config CONFIG`` off the event loop, which serves Ledger (probes
    call it)."""
    done = await asyncio.to_thread(gatehold, *args, config=config)
    assert done.returncode == expect, (args, done.stdout, done.stderr)
    return done.stdout + done.stderr


def report_groups(text: str) -> dict[tuple[str, str], int]:
    """(routes, decisions) → count of each group line of ``rules shadow report``."""
    groups = {}
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) == 4 and fields[0].isdigit():
            groups[(fields[1], fields[2])] = int(fields[0])
    return groups


async def shadow_traffic(stack: Stack, config: Path, version: int) -> str:
    """Start ``version`` in shadow, run a day's traffic and return the report."""
    await run(config, "rules", "shadow", "start", str(version))
    await stack.app[SHADOW_FOLLOWER].step()
    assert stack.app[SHADOW].current is not None
    await next_day(stack)
    await stack.settled()
    await stack.app[SHADOW].writer.flush()
    return await run(config, "rules", "shadow", "report")


@pytest.mark.timeout(120)
async def test_the_guide_from_an_access_log_to_enforced_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin_managed = {"rules": {"path": str(DEMO_RULES), "managed_by": "admin"}}
    log = tmp_path / "access.jsonl"
    with json_access_log(log, monkeypatch):
        async with running_stack(
            tmp_path, follow=True, access_lines=True, **admin_managed
        ) as stack:
            config = tmp_path / "gatehold.yaml"
            config.write_text(yaml.safe_dump({"data_dir": str(tmp_path), **admin_managed,
                                              "rules_env": stack.settings.rules_env}))  # fmt: skip
            await first_day(stack)
            lines = [json.loads(line) for line in log.read_text().splitlines()]
            seen = {
                (line["caller"], line["method"], line["path"], line["status"]) for line in lines
            }
            assert (ALICE, "GET", "/api/invoices/1", 200) in seen
            assert (ALICE, "GET", "/api/invoices/2", 404) in seen

            # 2. learn
            draft = tmp_path / "draft.yaml"
            learn = ["rules", "learn", "--access-log", str(log), "--output", str(draft)]
            learned = await asyncio.to_thread(
                gatehold, *learn, "--tenant", "acme", "--tenant", "globex"
            )
            assert learned.returncode == 0, learned.stderr
            assert "not evidence: 4 × refused by the gateway" in learned.stderr
            assert "draft: 11 routes, 4 resources to fill in, 23 QUESTION marks" in learned.stderr
            draft_text = draft.read_text()
            assert draft_text.count("QUESTION-owner-of-") == 4
            # the draft as written refuses every object it names: its lookups cannot answer
            assert "FAILED" in await run(config, "rules", "check", "--probe", str(draft), expect=1)

            # 3. review: fill every owner lookup, answer the list questions
            reviewed = tmp_path / "reviewed.yaml"
            reviewed.write_text(edited(draft_text, REVIEW))
            review_diff, fix_diff = guide_blocks("diff")
            shows_the_edit(review_diff, draft_text, reviewed.read_text())
            checked = await run(config, "rules", "check", "--strict", "--probe", str(reviewed))
            assert "reviewed.yaml: valid" in checked and "FAILED" not in checked

            # 5. propose, shadow, report
            assert (await run(config, "rules", "propose", str(reviewed))).startswith(
                "rules version 2 stored"
            )
            report = await shadow_traffic(stack, config, 2)
            assert "decided 16, agreed 10, unjudged 1, dropped 0" in report
            assert report_groups(report) == FIRST_REPORT
            shown = [b for b in guide_blocks("console") if "shadow run 1: rules version 2" in b]
            assert len(shown) == 1 and report_groups(shown[0]) == FIRST_REPORT
            refused = await run(config, "rules", "shadow", "activate", expect=2)
            assert "is not clean: 6 of 16 decisions differ (5 group(s))" in refused
            assert stack.follower.applied == 1

            # 6. fix the draft, propose again, shadow again: clean, activate
            fixed = tmp_path / "reviewed2.yaml"
            fixed.write_text(edited(reviewed.read_text(), FIXES) + MORE_ROUTES)
            shows_the_edit(fix_diff, reviewed.read_text(), fixed.read_text())
            await run(config, "rules", "check", "--strict", "--probe", str(fixed))
            assert (await run(config, "rules", "propose", str(fixed))).startswith(
                "rules version 3 stored"
            )
            await run(config, "rules", "shadow", "stop")
            report = await shadow_traffic(stack, config, 3)
            assert "clean: no differences over 16 decisions" in report, report
            activated = await run(config, "rules", "shadow", "activate")
            assert activated.startswith("rules version 3 is active (clean: no differences")

            # the gateway now decides by the learned rules
            for _ in range(50):
                if stack.follower.applied == 3:
                    break
                await asyncio.sleep(0.1)
            assert stack.follower.applied == 3
            assert await call(stack, ALICE, "GET", "/api/invoices/2") == 404
            assert await call(stack, ALICE, "GET", "/api/invoices/1") == 200
            # version 1 has a delete route (alice may not: 403); the learned rules never saw one
            assert await call(stack, ALICE, "DELETE", "/api/invoices/1") == 405
            await stack.settled()
            async with stack.app[ENGINE].connect() as conn:
                row = (await conn.execute(text(
                    "SELECT route, reason FROM audit_log WHERE method = 'DELETE' ORDER BY seq DESC"
                ))).first()  # fmt: skip
            assert row is not None and tuple(row) == ("", "method-not-allowed"), row

            # 7. rollback
            assert "rules version 1 is active" in await run(config, "rules", "rollback", "1")


def guide_blocks(kind: str) -> list[str]:
    """The guide's fenced blocks of one kind (``diff``, ``console``), in order."""
    return re.findall(rf"```{kind}\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)


def shows_the_edit(diff: str, before: str, after: str) -> None:
    """Every line the guide's diff removes is in ``before``, every line it adds in ``after``."""
    before_lines, after_lines = set(before.splitlines()), set(after.splitlines())
    for line in diff.splitlines():
        if line.startswith("-"):
            assert line[1:] in before_lines, f"the guide removes a line the file lacks: {line}"
        elif line.startswith("+"):
            assert line[1:] in after_lines, f"the guide adds a line the file lacks: {line}"


def guide_commands() -> list[str]:
    """Every ``$ gatehold …`` line of the guide's console blocks (continuations joined),
    without environment assignments before it and redirections after it."""
    joined = re.sub(r"\\\n\s*", " ", GUIDE.read_text())
    found = []
    for line in joined.splitlines():
        if not line.startswith("$ "):
            continue
        words = shlex.split(line[2:], comments=True)
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
            words.pop(0)
        if words[:1] == ["export"] or words[:1] != ["gatehold"]:
            continue
        cut = next((i for i, w in enumerate(words) if w[:1] in "|>&" or w[:2] == "2>"), len(words))
        found.append(shlex.join(words[1:cut]))
    return found


def test_every_gatehold_command_in_the_guide_parses() -> None:
    commands = guide_commands()
    assert len(commands) >= 15, commands
    for line in commands:
        args = shlex.split(line)
        command: click.Command = main
        name = "gatehold"
        while isinstance(command, click.Group):
            assert args, f"{line}: names no command"
            sub = command.get_command(click.Context(command), args[0])
            assert sub is not None, f"{line}: no command {args[0]!r}"
            name, command, args = args[0], sub, args[1:]
        context = click.Context(command, info_name=name)
        options, extra, _ = command.make_parser(context).parse_args(list(args))
        assert not extra, f"{line}: more arguments than {name} takes: {extra}"
        # the parser leaves a sentinel, not a string, for an argument it was not given
        given = {name for name, value in options.items() if isinstance(value, str | tuple | list)}
        for param in command.params:
            if param.required:
                assert param.name in given, f"{line}: {param.name} missing"


def test_the_demo_writes_the_json_access_log_the_guide_learns_from(tmp_path: Path) -> None:
    """Step 1 on the real ``gatehold demo``: ``GATEHOLD_LOGGING__FORMAT=json`` makes its
    standard error an access log that ``rules learn`` reads."""
    port = free_port()
    log = tmp_path / "access.jsonl"
    data = tmp_path / "demo"
    command = [sys.executable, "-m", "gateway", "demo", "--port", str(port), "--data", str(data)]
    env = {**os.environ, "GATEHOLD_LOGGING__FORMAT": "json"}
    with (
        log.open("w") as errors,
        subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors, env=env) as demo,
    ):
        try:
            wait_for_port(port, demo, log)
            minted = gatehold("session", "mint", ALICE, config=data / "gatehold.yaml")
            assert minted.returncode == 0, minted.stderr
            for invoice in (1, 3):
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/api/invoices/{invoice}",
                    headers={"Cookie": minted.stdout.strip(), "Accept": "application/json"},
                )
                with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310 (loopback)
                    assert reply.status == 200
        finally:
            demo.send_signal(signal.SIGTERM)
            assert demo.wait(30) == 0
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(line.get("caller") == ALICE and line.get("status") == 200 for line in lines)
    draft = tmp_path / "draft.yaml"
    learned = gatehold("rules", "learn", "--access-log", str(log), "--output", str(draft))
    assert learned.returncode == 0, learned.stderr
    assert learned.stderr.startswith("read 2 requests from 1 log; 0 unreadable lines")
    assert 'path: "/api/invoices/{invoice_id:int}"' in draft.read_text()
