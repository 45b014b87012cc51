"""What a Dockerfile's final stage says about running the image.

Enough of the Dockerfile syntax for the instructions a run depends on (``USER``,
``ENV``, ``WORKDIR``, ``VOLUME``, ``ENTRYPOINT``, ``CMD``, ``HEALTHCHECK``, ``COPY``),
so tests read the image's command line and settings from the file instead of
repeating them. Anything it does not understand fails loudly.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

HEALTHCHECK = re.compile(r"((?:--\S+\s+)*)CMD\s+(.+)", re.DOTALL)


@dataclass(frozen=True)
class Copy:
    sources: tuple[str, ...]
    destination: str
    from_stage: str | None


@dataclass
class Image:
    """The final stage, as ``docker run`` would start it."""

    user: str = "root"
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    volumes: list[str] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)
    healthcheck_options: dict[str, str] = field(default_factory=dict)
    copies: list[Copy] = field(default_factory=list)
    build_copies: list[Copy] = field(default_factory=list)
    """``COPY`` instructions of the earlier stages."""

    @property
    def argv(self) -> list[str]:
        """ENTRYPOINT followed by CMD, as the container's first process runs them."""
        return [*self.entrypoint, *self.cmd]

    @property
    def uid_gid(self) -> tuple[int, int]:
        """The numeric user and group (a name would need the image's /etc/passwd)."""
        user, _, group = self.user.partition(":")
        assert user.isdigit() and group.isdigit(), f"USER {self.user} is not uid:gid"
        return int(user), int(group)


def instructions(text: str) -> list[tuple[str, str]]:
    """``(KEYWORD, arguments)`` per instruction: continuations joined, comments dropped."""
    found: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        found.append((keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, f"a continuation ends the file: {pending!r}"
    return found


def _command(arguments: str) -> list[str]:
    """The exec form (a JSON array) as is; the shell form as ``/bin/sh -c``."""
    if arguments.startswith("["):
        argv = json.loads(arguments)
        assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), arguments
        return argv
    return ["/bin/sh", "-c", arguments]


def _env(arguments: str) -> dict[str, str]:
    words = shlex.split(arguments)
    if "=" not in words[0]:  # the legacy form: ENV NAME value with spaces
        name, _, value = arguments.partition(" ")
        return {name: value.strip()}
    pairs = dict(word.split("=", 1) for word in words)
    assert not any("$" in value for value in pairs.values()), f"ENV expands variables: {pairs}"
    return pairs


def _options(words: list[str]) -> tuple[dict[str, str], list[str]]:
    options: dict[str, str] = {}
    while words and words[0].startswith("--"):
        name, _, value = words.pop(0)[2:].partition("=")
        options[name] = value
    return options, words


def _copy(arguments: str) -> Copy:
    options, words = _options(shlex.split(arguments))
    if words[0].startswith("["):
        words = json.loads(" ".join(words))
    *sources, destination = words
    return Copy(tuple(sources), destination, options.get("from"))


def final_stage(dockerfile: Path) -> Image:
    """The image the last ``FROM`` builds, by its instructions."""
    image = Image()
    earlier: list[Copy] = []
    for keyword, arguments in instructions(dockerfile.read_text(encoding="utf-8")):
        if keyword == "FROM":
            earlier += image.copies
            image = Image(build_copies=earlier)
        elif keyword == "USER":
            image.user = arguments
        elif keyword == "ENV":
            image.env.update(_env(arguments))
        elif keyword == "WORKDIR":
            image.workdir = str(PurePosixPath(image.workdir) / arguments)
        elif keyword == "VOLUME":
            found = json.loads(arguments) if arguments.startswith("[") else arguments.split()
            image.volumes += found
        elif keyword == "ENTRYPOINT":
            image.entrypoint = _command(arguments)
        elif keyword == "CMD":
            image.cmd = _command(arguments)
        elif keyword == "HEALTHCHECK":
            found = HEALTHCHECK.fullmatch(arguments)
            assert found, f"HEALTHCHECK {arguments}"
            image.healthcheck_options, _ = _options(found.group(1).split())
            image.healthcheck = _command(found.group(2))
        elif keyword == "COPY":
            image.copies.append(_copy(arguments))
    return image


def local_argv(argv: list[str]) -> list[str]:
    """An image command line as this test run can start it: the image's ``gatehold`` and
    ``python`` are this interpreter's."""
    import sys

    program, *rest = argv
    if program == "gatehold":
        return [sys.executable, "-m", "gateway", *rest]
    if program == "python":
        return [sys.executable, *rest]
    raise AssertionError(f"{program}: not a command the image has")
