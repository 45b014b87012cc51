"""Reading the admin UI's audit pages in a test."""

from __future__ import annotations

from playwright.async_api import Page


async def audit_rows(page: Page) -> list[dict[str, str]]:
    """The audit page's table as one dict per row (by column heading)."""
    heads = await page.locator("table.audit thead th").all_inner_texts()
    rows = page.locator("table.audit tbody tr")
    return [
        dict(zip(heads, await rows.nth(n).locator("td").all_inner_texts(), strict=True))
        for n in range(await rows.count())
    ]
