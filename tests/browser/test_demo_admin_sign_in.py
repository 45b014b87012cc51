"""``gatehold demo`` prints the admin UI's address and a one-click sign-in link for
each demo admin: a newcomer opens it, presses Sign in, and is in the admin UI."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import pytest
from playwright.async_api import Browser

from tests.support.servers_base import free_port

pytestmark = pytest.mark.browser
LINK = re.compile(r"^\s+(http://127\.0\.0\.1:\d+/\.gatehold/login/magic/confirm\?token=\S+)$")


async def read_banner(process: asyncio.subprocess.Process) -> list[str]:
    """Lines of the demo's banner, up to "Press Ctrl-C"."""
    assert process.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(60):
        while not lines or "Press Ctrl-C" not in lines[-1]:
            line = await process.stdout.readline()
            assert line, "the demo ended before its banner:\n" + "\n".join(lines)
            lines.append(line.decode().rstrip("\n"))
    return lines


async def test_the_printed_admin_link_signs_in_with_one_click(
    tmp_path: Path, browser: Browser
) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "demo",
        "--port",
        str(port),
        "--data",
        str(tmp_path / "demo"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        banner = await read_banner(process)
        base = f"http://127.0.0.1:{port}"
        assert f"Admin UI: {base}/.gatehold/admin/" in banner
        links = [m.group(1) for line in banner if (m := LINK.match(line))]
        assert len(links) == 2, banner  # the superadmin and acme's admin
        superadmin_line = banner.index(next(ln for ln in banner if "admin@example.test" in ln))
        assert banner[superadmin_line + 1].strip() == links[0]

        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(links[0])
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(f"{base}/.gatehold/admin/")
        await page.get_by_role("heading", name="Dashboard", level=1).wait_for()
        assert "admin@example.test" in await page.locator("header").inner_text()

        # A link works once: opened again, it signs nobody in.
        other = await browser.new_context()
        again = await other.new_page()
        await again.goto(links[0])
        assert await again.get_by_role("button", name="Sign in").count() == 0
        await other.close()
        await context.close()
    finally:
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(20):
            await process.wait()
