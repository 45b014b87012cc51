"""The demo's documents page in real Chromium, through the gateway: alice sees acme's
files, downloads one under its real name, uploads one with the page's form; rita's
upload is refused. Screenshots land in ``test-artifacts/admin-ui/ledger-documents-*``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser

from tests.browser.admin_ui import base_url, capture, signed_in_context
from tests.support.servers_base import free_port
from tests.support.stack import running_stack

pytestmark = pytest.mark.browser
ALICE, RITA = "alice@acme.test", "rita@acme.test"


async def test_alice_browses_downloads_and_uploads_on_the_documents_page(
    tmp_path: Path, browser: Browser
) -> None:
    upload = tmp_path / "minutes.txt"
    upload.write_text("minutes of the meeting\n")
    async with running_stack(tmp_path / "stack", port=free_port()) as stack:
        context = await signed_in_context(browser, stack, ALICE)
        try:
            page = await context.new_page()
            answer = await page.goto(f"{base_url(stack)}/documents")
            assert answer is not None and answer.status == 200
            assert await page.get_by_role("heading", level=1).inner_text() == "Documents of acme"
            links = page.locator('a[href^="/files/"]')
            hrefs = {await links.nth(i).get_attribute("href") for i in range(await links.count())}
            assert hrefs == {f"/files/{n}" for n in (1, 3, 5, 7, 9)}
            assert await capture(page, "ledger-documents") == []

            async with page.expect_download() as info:
                await page.get_by_role("link", name="Übersicht 2026.pdf").click()
            download = await info.value
            assert download.suggested_filename == "Übersicht 2026.pdf"
            assert Path(await download.path()).read_bytes().startswith(b"%PDF-1.4")

            await page.get_by_label("Title").fill("Minutes")
            await page.get_by_label("File").set_input_files(str(upload))
            async with page.expect_navigation():
                await page.get_by_role("button", name="Upload").click()
            assert await page.get_by_role("heading", level=1).inner_text() == "Uploaded"
            await page.get_by_role("link", name="Back to the documents").click()
            assert await page.get_by_role("link", name="minutes.txt").count() == 1
        finally:
            await context.close()


async def test_a_readonly_person_sees_the_page_but_the_upload_is_refused(
    tmp_path: Path, browser: Browser
) -> None:
    upload = tmp_path / "note.txt"
    upload.write_text("note\n")
    async with running_stack(tmp_path / "stack", port=free_port()) as stack:
        context = await signed_in_context(browser, stack, RITA)
        try:
            page = await context.new_page()
            await page.goto(f"{base_url(stack)}/documents")
            await page.get_by_label("Title").fill("Note")
            await page.get_by_label("File").set_input_files(str(upload))
            async with page.expect_navigation() as navigation:
                await page.get_by_role("button", name="Upload").click()
            refused = await navigation.value
            assert refused is not None and refused.status == 403
            before = await stack.ledger_hits()
            assert refused.headers["x-request-id"] not in before, "Ledger never saw the file"
        finally:
            await context.close()
