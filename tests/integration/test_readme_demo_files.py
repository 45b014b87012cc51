"""The README's "Files in the demo" runs as written against a real ``gatehold demo``.

Each fenced block after a ``<!-- demo-files: NAME -->`` marker is run by ``bash`` from a
folder laid out like a checkout (the demo fixture of ``test_first_run``). Only what a
reader fills in is swapped: the gateway's address (a free port, not 8080), each
``Cookie: __Host-gatehold=…`` (the session cookie the demo printed for the person a
line's ``# as NAME: NNN`` comment names) and the share link the share command printed.
``NNN`` is the status the line must print.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.integration.test_first_run import demo, environment, repository_root
from tests.integration.test_readme_first_run import README, marked_block

__all__ = ["demo", "repository_root"]  # the fixtures, shared with the first-run tests

GATEWAY_ADDRESS = "http://127.0.0.1:8080"
COOKIE = "Cookie: __Host-gatehold=…"
SHARE_LINK = f"{GATEWAY_ADDRESS}/.gatehold/share/…"
AS_PERSON = re.compile(r"#\s*as (\w+): (\d{3})\s*$")


def banner_cookies(banner: str) -> dict[str, str]:
    """Each demo person's first name and the cookie the banner printed for them."""
    found = re.findall(r"^\s+(\w+)@\S+\s.*\n\s+curl -H 'Cookie: ([^']+)'", banner, re.M)
    return dict(found)


def filled(block: str, *, gateway: str, cookies: dict[str, str], link: str = "") -> str:
    lines = []
    for line in block.splitlines():
        person = AS_PERSON.search(line)
        if person is not None:
            line = line.replace(COOKIE, f"Cookie: {cookies[person.group(1)]}")
        lines.append(line.replace(SHARE_LINK, link).replace(GATEWAY_ADDRESS, gateway))
    return "\n".join(lines)


def expected_statuses(block: str) -> list[int]:
    return [int(m.group(2)) for line in block.splitlines() if (m := AS_PERSON.search(line))]


def bash(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_readmes_files_walkthrough_runs_as_written(
    repository_root: Path, demo: tuple[int, int, str]
) -> None:
    port, _, banner = demo
    gateway = f"http://127.0.0.1:{port}"
    cookies = banner_cookies(banner)
    assert {"alice", "rita", "bob"} <= set(cookies), banner
    text = README.read_text()
    assert "## Files in the demo" in text

    download = marked_block(text, "download", kind="demo-files")
    headers_shown = re.search(
        r"<!-- demo-files: download -->\n```sh\n.*?\n```\n\n```text\n(.*?)\n```", text, re.S
    )
    assert headers_shown is not None, "the download block is followed by its answer"
    got = bash(filled(download, gateway=gateway, cookies=cookies), repository_root)
    assert got.returncode == 0, got.stderr
    answer = {line.strip().lower() for line in got.stdout.splitlines()}
    for line in headers_shown.group(1).splitlines():
        assert line.strip().lower() in answer, f"{line!r} not in {got.stdout}"
    assert expected_statuses(download) == [200]

    share = marked_block(text, "share", kind="demo-files")
    assert "--config var/demo/gatehold.yaml" in share
    minted = bash(filled(share, gateway=gateway, cookies=cookies), repository_root)
    assert minted.returncode == 0, minted.stderr
    link = minted.stdout.strip()
    assert link.startswith(f"{gateway}/.gatehold/share/"), minted.stdout

    for name in ("open", "upload"):
        block = marked_block(text, name, kind="demo-files")
        ran = bash(filled(block, gateway=gateway, cookies=cookies, link=link), repository_root)
        assert ran.returncode == 0, ran.stderr
        assert [int(code) for code in ran.stdout.split()] == expected_statuses(block), name
        assert len(expected_statuses(block)) >= 2, block
    assert (repository_root / "shared.pdf").read_bytes().startswith(b"%PDF-")


def test_the_banner_shows_the_files_walkthrough(demo: tuple[int, int, str]) -> None:
    port, _, banner = demo
    assert f"open http://127.0.0.1:{port}/documents as alice" in banner
    share = [line.strip() for line in banner.splitlines() if " share create " in line]
    assert share == [
        ".venv/bin/gatehold share create /files/7 --for bob@globex.test --as alice@acme.test"
        " --config var/demo/gatehold.yaml"
    ]
    assert share[0] in README.read_text(), "the banner and the README show the same command"
