"""The ``gatehold`` command for tests: in this process by default, or as a real process.

Starting ``python -m gateway`` costs about a second of imports on a slow machine, and the
suite runs the command hundreds of times. Where the point of a test is what a command
does (its output, its exit status, what it leaves in the store), :func:`gatehold` runs
the same ``gateway.cli.main`` in this process and answers with the same
``CompletedProcess`` a subprocess would give: stdout, stderr, the exit status, and for
an exception that escapes the command, the traceback on stderr with status 1, as the
interpreter prints it. :func:`gatehold_process` runs the real process; the tests whose
point is the process (signals, workers, start-up, the console entry point) use it, and
``tests/integration/test_cli_in_process.py`` checks both answer alike.

``GATEHOLD_TEST_CLI=process`` makes :func:`gatehold` start real processes too.

The command runs on a thread of its own: its ``asyncio.run`` then never meets the
test's running event loop, and the test waits for it as it waited for a subprocess.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import traceback
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import click
from click.testing import CliRunner, Result

PROG_NAME = "python -m gateway"
"""What the command calls itself when started as ``python -m gateway``."""
ALWAYS_A_PROCESS = frozenset({"serve", "demo"})
"""Commands that run until stopped, or start processes of their own."""
_ONE_AT_A_TIME = threading.Lock()  # sys.stdout, os.environ and the cwd are process-wide


def in_processes() -> bool:
    """Whether every command runs as a real process (``GATEHOLD_TEST_CLI=process``)."""
    return os.environ.get("GATEHOLD_TEST_CLI") == "process"


def gatehold(
    *args: str,
    config: Path | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float = 120,
    process: bool = False,
    umask: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``gatehold ARGS [--config CONFIG]`` as an operator would, in this process.

    ``env`` is added to the environment for the command's run only, ``umask`` is the
    file mode creation mask it runs with; ``process`` runs a real ``python -m gateway``
    process instead.
    """
    argv = [*args, *(["--config", str(config)] if config is not None else [])]
    if process or in_processes() or (argv and argv[0] in ALWAYS_A_PROCESS):
        return gatehold_process(*argv, cwd=cwd, env=env, input=input, timeout=timeout, umask=umask)
    return run_in_process(argv, cwd=cwd, env=env, input=input, timeout=timeout, umask=umask)


def gatehold_process(
    *argv: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float = 120,
    umask: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m gateway ARGV`` as a real process."""

    def set_umask() -> None:
        if umask is not None:
            os.umask(umask)

    return subprocess.run(
        [sys.executable, "-m", "gateway", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        input=input,
        check=False,
        env={**os.environ, **env} if env else None,
        preexec_fn=set_umask if umask is not None else None,
    )


def run_in_process(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float = 120,
    command: click.Command | None = None,
    umask: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """``gateway.cli.main`` (or ``command``) on a thread of its own, answered as a
    subprocess would be."""
    from gateway.cli import main

    outcome: list[Result] = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            with _ONE_AT_A_TIME, _as_a_fresh_process(cwd, umask):
                outcome.append(
                    CliRunner().invoke(
                        command or main,
                        list(argv),
                        input=input,
                        env=dict(env) if env else None,
                        catch_exceptions=True,
                        prog_name=PROG_NAME,
                    )
                )
        except BaseException as error:  # handed to the waiting test
            failure.append(error)

    thread = threading.Thread(target=work, name=f"gatehold {' '.join(argv[:2])}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise subprocess.TimeoutExpired([PROG_NAME, *argv], timeout)
    if failure:
        raise failure[0]
    result = outcome[0]
    stderr = result.stderr
    code = result.exit_code
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        # What the interpreter prints for an exception nothing caught, and its status.
        assert result.exc_info is not None
        stderr += "".join(traceback.format_exception(*result.exc_info))
        code = 1
    return subprocess.CompletedProcess([PROG_NAME, *argv], code, result.stdout, stderr)


@contextmanager
def _as_a_fresh_process(cwd: Path | None, umask: int | None) -> Iterator[None]:
    """The working folder, umask, warning filters and logging a new process would have.

    The suite turns warnings into errors; a new interpreter shows them on stderr and
    hides deprecations and resource warnings. Handlers a command adds to logging are
    removed afterwards, so the next test does not write to this run's closed streams.
    """
    before = os.getcwd()
    root = logging.getLogger()
    loggers = {
        name: (log.handlers[:], log.level, log.propagate, log.disabled)
        for name, log in logging.Logger.manager.loggerDict.items()
        if isinstance(log, logging.Logger)
    }
    root_state = (root.handlers[:], root.level)
    with warnings.catch_warnings():
        warnings.resetwarnings()
        warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning):
            warnings.simplefilter("ignore", category)
        warnings.simplefilter("ignore", ResourceWarning)
        mask = os.umask(umask) if umask is not None else None
        try:
            if cwd is not None:
                os.chdir(cwd)
            yield
        finally:
            os.chdir(before)
            if mask is not None:
                os.umask(mask)
            root.handlers[:], root.level = root_state
            for name, log in logging.Logger.manager.loggerDict.items():
                if not isinstance(log, logging.Logger):
                    continue
                if name in loggers:
                    log.handlers[:], log.level, log.propagate, log.disabled = loggers[name]
                else:
                    log.handlers.clear()
