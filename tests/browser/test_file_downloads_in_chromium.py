"""File routes in real Chromium: the saved name is the sanitized one, and a page an app
serves on a file route runs no script.

The attacks: an app offers a download named with directories, a bidi override and a
Windows device name, or serves an uploaded HTML or SVG file inline whose script would
run as the gateway's origin (reading the user's data through the gateway with the
session cookie). The same page fetched straight from the app shows the script does
run; through the gateway, ``Content-Security-Policy: sandbox`` stops it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Dialog

from gateway.filenames import sanitize_filename
from tests.browser.admin_ui import base_url, signed_in_context
from tests.support.scripted_upstream import Answer, scripted_upstream
from tests.support.servers_base import free_port
from tests.support.stack import running_stack

pytestmark = pytest.mark.browser
ALICE = "alice@acme.test"

RULES = """
version: 1
upstreams:
  files: {{url: "{app}"}}
roles:
  standard: {{can: [read, write]}}
resources:
  doc:
    id_type: int
    owner: {{http: "GET {{upstream}}/internal/owners/{{id}}", tenant_field: /tenant}}
routes:
  - name: doc-download
    match: {{path: "/docs/{{doc_id:int}}", methods: [GET]}}
    upstream: files
    resource: {{type: doc, id: path.doc_id}}
    file: {{disposition: attachment}}
  - name: doc-view
    match: {{path: "/view/{{doc_id:int}}", methods: [GET]}}
    upstream: files
    resource: {{type: doc, id: path.doc_id}}
    file: {{disposition: inline}}
"""

OFFERED = {
    "directories and a bidi override": (
        "attachment; filename*=UTF-8''..%2F..%2F%C3%9Cberweisung%20%E2%82%AC%E2%80%AEfdp.exe",
        "Überweisung €fdp.exe",
    ),
    "a Windows device name": ('attachment; filename="CON.txt"', "_CON.txt"),
    "a quote that ends the quoted string": ('attachment; filename="a"b.txt"', "a_b.txt"),
}
SCRIPT = "document.title = 'script ran'; alert(document.cookie)"
PAGES = {
    "an HTML page": ("text/html", f"<html><title>file</title><script>{SCRIPT}</script></html>"),
    "an SVG image": (
        "image/svg+xml",
        '<svg xmlns="http://www.w3.org/2000/svg"><title>file</title>'
        f'<script>{SCRIPT}</script><rect width="10" height="10"/></svg>',
    ),
}


def answers() -> dict[str, Answer]:
    served: dict[str, Answer] = {}
    for n, (header, _) in enumerate(OFFERED.values(), start=1):
        served[f"/docs/{n}"] = Answer(
            chunks=(b"%PDF-1.4\n",),
            content_type="application/pdf",
            added=(("Content-Disposition", header),),
        )
    for n, (media, text) in enumerate(PAGES.values(), start=1):
        served[f"/view/{n}"] = Answer(chunks=(text.encode(),), content_type=media)
    return served


def watch(context: BrowserContext) -> tuple[list[str], list[str]]:
    """The dialogs that open in ``context``'s pages and their console messages."""
    dialogs: list[str] = []
    console: list[str] = []

    async def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    def on_console(message: ConsoleMessage) -> None:
        console.append(message.text)

    context.on("dialog", on_dialog)
    context.on("console", on_console)
    return dialogs, console


async def test_downloads_are_saved_under_the_sanitized_name(
    tmp_path: Path, browser: Browser
) -> None:
    owners = {str(n): "acme" for n in range(1, 4)}
    async with (
        scripted_upstream("files", owners=owners, answers=answers()) as app,
        running_stack(tmp_path, rules_text=RULES.format(app=app.url), port=free_port()) as stack,
    ):
        context = await signed_in_context(browser, stack, ALICE)
        try:
            page = await context.new_page()
            for n, (header, expected) in enumerate(OFFERED.values(), start=1):
                assert sanitize_filename(expected) == expected
                url = f"{base_url(stack)}/docs/{n}"
                await page.set_content(f'<a href="{url}">download</a>')
                async with page.expect_download() as info:
                    await page.get_by_role("link", name="download").click()
                download = await info.value
                assert download.suggested_filename == expected, header
                assert Path(await download.path()).read_bytes() == b"%PDF-1.4\n"
        finally:
            await context.close()


@pytest.mark.parametrize("kind", list(PAGES), ids=list(PAGES))
async def test_a_page_served_inline_on_a_file_route_runs_no_script(
    tmp_path: Path, browser: Browser, kind: str
) -> None:
    n = list(PAGES).index(kind) + 1
    owners = {str(n): "acme"}
    async with (
        scripted_upstream("files", owners=owners, answers=answers()) as app,
        running_stack(tmp_path, rules_text=RULES.format(app=app.url), port=free_port()) as stack,
    ):
        context = await signed_in_context(browser, stack, ALICE)
        dialogs, console = watch(context)
        try:
            page = await context.new_page()
            await page.goto(f"{app.url}/view/{n}")
            assert dialogs, "the attack page runs its script when served without the gateway"
            dialogs.clear()
            answer = await page.goto(f"{base_url(stack)}/view/{n}")
            assert answer is not None and answer.status == 200
            assert await page.title() == "file", "the script ran through the gateway"
            assert dialogs == [], "the script ran through the gateway"
            assert any("sandboxed" in line for line in console), console
            assert answer.headers["content-security-policy"] == "sandbox"
        finally:
            await context.close()
