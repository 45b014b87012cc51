"""The clamd client against a real ``clamd``: verdicts, and every way of getting none.

Every failure to get a verdict must raise ``ScannerUnavailable`` (the route then fails
closed), never pass as clean: no daemon, a daemon stopped mid-file, a file over the
daemon's stream limit, an answer that is no verdict.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.clamd import Clamd, _parse
from gateway.errors import ScannerUnavailable
from tests.support.clamav import EICAR, SIGNATURE, running_clamd

PIECES = [997, 64 * 1024, 256 * 1024]
"""Sizes a file is sent in: EICAR split across pieces, and pieces over one frame."""


class TestVerdicts:
    @pytest.mark.parametrize("piece", PIECES)
    async def test_eicar_anywhere_in_a_file_is_found(self, tmp_path: Path, piece: int) -> None:
        data = b"x" * 200_000 + EICAR + b"y" * 1000
        async with running_clamd(tmp_path) as clamd:
            scan = await Clamd(clamd.socket).open()
            for start in range(0, len(data), piece):
                await scan.send(data[start : start + piece])
            verdict = await scan.verdict()
        assert not verdict.clean and verdict.signature is not None
        assert verdict.signature.startswith(SIGNATURE)

    async def test_a_clean_file(self, tmp_path: Path) -> None:
        async with running_clamd(tmp_path) as clamd:
            scan = await Clamd(clamd.socket).open()
            await scan.send(b"nothing to see here\n" * 10_000)
            assert (await scan.verdict()).clean
            assert await Clamd(clamd.socket).ping()


class TestNoVerdictIsNeverClean:
    async def test_no_daemon(self, tmp_path: Path) -> None:
        clamd = Clamd(str(tmp_path / "absent.sock"), timeout=1)
        assert not await clamd.ping()
        with pytest.raises(ScannerUnavailable):
            await clamd.open()

    async def test_a_file_over_the_stream_limit(self, tmp_path: Path) -> None:
        async with running_clamd(tmp_path, stream_max="1M") as clamd:
            scan = await Clamd(clamd.socket, timeout=5).open()
            with pytest.raises(ScannerUnavailable):
                for _ in range(40):
                    await scan.send(b"z" * 64 * 1024)
                await scan.verdict()

    async def test_a_daemon_stopped_mid_file(self, tmp_path: Path) -> None:
        async with running_clamd(tmp_path) as clamd:
            scan = await Clamd(clamd.socket, timeout=5).open()
            await scan.send(b"first piece")
            clamd.stop()
            await asyncio.sleep(0.5)
            with pytest.raises(ScannerUnavailable):
                for _ in range(100):
                    await scan.send(b"more" * 16_384)
                await scan.verdict()

    @pytest.mark.parametrize(
        "reply",
        ["INSTREAM size limit exceeded. ERROR", "stream: ERROR", "", "stream: OK trailing"],
    )
    def test_an_answer_that_is_no_verdict(self, reply: str) -> None:
        with pytest.raises(ScannerUnavailable):
            _parse(reply)
