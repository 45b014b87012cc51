"""Real Chromium (Debian's package) driven by Playwright; never a downloaded browser."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.support.components import require_component

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        require_component("chromium", "install Debian's chromium package (make test does)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def shots() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


AXE = Path(__file__).resolve().parents[1] / "support" / "node" / "node_modules" / "axe-core"
RUN_AXE = """async () => {
  const result = await axe.run(document, {runOnly: ["wcag2a", "wcag2aa", "best-practice"]});
  return result.violations.map(v => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.length} node(s)`);
}"""


async def accessibility_problems(page: Page) -> list[str]:
    """WCAG 2 A/AA and best-practice violations axe-core finds on the page as shown."""
    source = AXE / "axe.min.js"
    if not source.exists():
        require_component("axe-core", "run `npm ci --prefix tests/support/node` (make test does)")
    await page.evaluate(source.read_text())  # evaluated through DevTools: the page's CSP stays
    problems: list[str] = await page.evaluate(RUN_AXE)
    return problems
