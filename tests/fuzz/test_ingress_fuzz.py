"""The ingress fuzz target: its properties on known tricky targets, then a bounded
atheris run (``make fuzz`` runs it longer) that must end without a finding."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.model import Rejection, Target
from tests.fuzz.ingress_target import check
from tests.support.components import require_component

REPO = Path(__file__).resolve().parents[2]
DICTIONARY = Path(__file__).with_name("ingress.dict")
SECONDS = 10

ACCEPTED = {
    "/": "/",
    "/a/b/": "/a/b/",
    "/caf%c3%a9": "/caf%C3%A9",
    "/a%20b?x=1": "/a%20b?x=1",
    "/%7euser": "/~user",
    "http://gatehold.test/api?x": "/api?x",
}
REFUSED = (
    "",
    "*",
    "a",
    "//evil.example/",
    "/a/../b",
    "/a/%2e%2e/b",
    "/a%2fb",
    "/a%5Cb",
    "/a\\b",
    "/a;b=c",
    "/a%00",
    "/a%0d%0a",
    "/%ff",
    "/%c0%ae",
    "/%252e%252e",
    "/%ef%bc%8f",
    "/a%",
    "/a?%zz",
    "/a?_method=DELETE",
    "/a?%5Fmethod=DELETE",
    "/a b",
    "/a#frag",
    "http://evil.example/api",
    "http://gatehold.test@evil.example/api",
    "http://[gatehold.test/api",  # urlsplit raised ValueError here (found by this fuzzer)
    "https://[::1/api",
)


@pytest.mark.parametrize("raw", sorted(ACCEPTED), ids=repr)
def test_a_plain_target_has_one_canonical_form(raw: str) -> None:
    found = check(raw)
    assert isinstance(found, Target) and found.raw == ACCEPTED[raw]


@pytest.mark.parametrize("raw", REFUSED, ids=repr)
def test_an_ambiguous_target_is_refused(raw: str) -> None:
    assert isinstance(check(raw), Rejection)
    assert isinstance(check(raw, public_host=None), Rejection)


def test_a_bounded_fuzz_run_finds_nothing(tmp_path: Path) -> None:
    try:
        import atheris  # noqa: F401
    except ImportError:
        require_component("atheris", "pip install atheris (the test extra)")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fuzz.ingress_target",
            f"-max_total_time={SECONDS}",
            f"-dict={DICTIONARY}",
            f"-artifact_prefix={tmp_path}/",
            "-print_final_stats=1",
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=SECONDS * 6,
    )
    report = done.stderr[-4000:]
    assert done.returncode == 0, report
    runs = re.search(r"Done (\d+) runs", done.stderr)
    assert runs and int(runs.group(1)) > 1000, report
    print(f"ingress fuzz: {runs.group(1)} inputs in {SECONDS} s, no finding")
