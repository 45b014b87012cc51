"""The log formats, configuring once, and the ``logging:`` settings."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import logs
from gateway.config.settings import load_settings
from gateway.errors import ConfigError
from gateway.logs import (
    AccessNote,
    JsonLines,
    KeyValueText,
    configure,
    current_note,
    note_audited,
    note_refused,
)
from gateway.model import AuditEntry


def _record(**fields: object) -> logging.LogRecord:
    return logging.makeLogRecord(
        {"name": "gatehold.access", "levelname": "INFO", "msg": "access", "fields": fields}
    )


def test_json_lines_carry_the_fields_and_a_traceback_on_one_line() -> None:
    line = json.loads(JsonLines().format(_record(status=200, caller="alice@acme.test")))
    assert line["logger"] == "gatehold.access" and line["level"] == "info"
    assert line["status"] == 200 and line["caller"] == "alice@acme.test"
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.LogRecord("gatehold", logging.ERROR, "", 0, "unhandled", (), None)
        record.exc_info = sys.exc_info()
        record.request_id = "abc"
    text = JsonLines().format(record)
    assert "\n" not in text
    parsed = json.loads(text)
    assert parsed["request_id"] == "abc" and parsed["error"] == "RuntimeError"
    assert "boom" in parsed["traceback"]


def test_text_lines_quote_values_with_spaces_or_quotes() -> None:
    text = KeyValueText().format(_record(status=200, path="/a b", caller='x"y', route=""))
    assert ' status=200 path="/a b" caller="x\\"y" route=""' in text
    assert text.split(" ")[1:4] == ["info", "gatehold.access", '"access"']


@pytest.fixture
def clean_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level, noting = list(root.handlers), root.level, logs._noting
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logs._noting = noting


@pytest.mark.usefixtures("clean_root")
def test_configure_installs_one_handler_however_often_it_is_called() -> None:
    before = len(logging.getLogger().handlers)
    configure(format="json", level="info")
    configure(format="text", level="debug")
    assert len(logging.getLogger().handlers) == before + 1
    assert logging.getLogger().level == logging.INFO
    assert logs._noting


@pytest.mark.usefixtures("clean_root")
def test_above_warning_no_access_notes_are_kept() -> None:
    configure(format="json", level="error")
    assert not logs._noting
    note_audited(AuditEntry(kind="request", request_id="r1", actor="a@b.test"))
    assert logs._NOTE.get() is None


def test_the_logging_section_is_validated(tmp_path: Path) -> None:
    config = tmp_path / "gatehold.yaml"
    config.write_text("logging:\n  format: text\n  level: debug\n")
    settings = load_settings(config, env={}, cwd=tmp_path)
    assert (settings.logging.format, settings.logging.level) == ("text", "debug")
    config.write_text("logging:\n  format: xml\n")
    with pytest.raises(ConfigError) as error:
        load_settings(config, env={}, cwd=tmp_path)
    assert any("logging.format" in problem for problem in error.value.problems)
    env = {"GATEHOLD_LOGGING__LEVEL": "warning"}
    config.write_text("")
    assert load_settings(config, env=env, cwd=tmp_path).logging.level == "warning"


@pytest.mark.usefixtures("clean_root")
async def test_a_note_made_outside_a_request_is_not_read_by_the_requests_after_it() -> None:
    configure(format="json", level="info")
    note_audited(AuditEntry(kind="rules-activated", request_id="start", actor="cli"))
    assert current_note() is not None  # this task's own

    async def request(entry: AuditEntry | None) -> AccessNote | None:
        if entry is not None:
            note_audited(entry)
        return current_note()

    assert await asyncio.create_task(request(None)) is None
    seen = await asyncio.create_task(
        request(AuditEntry(kind="request", request_id="r2", actor="a@b.test", route="x"))
    )
    assert seen is not None and (seen.request_id, seen.caller, seen.route) == (
        "r2",
        "a@b.test",
        "x",
    )
    own = current_note()
    assert own is not None and own.request_id == "start"


@pytest.mark.usefixtures("clean_root")
async def test_a_request_refused_after_its_entry_was_noted_is_logged_as_refused() -> None:
    configure(format="json", level="info")

    async def request() -> AccessNote | None:
        note_audited(
            AuditEntry(
                kind="request", request_id="r3", route="x", decision="allow", reason="role-allowed"
            )
        )
        note_refused("audit-unavailable")  # the entry could not be committed
        return current_note()

    seen = await asyncio.create_task(request())
    assert seen is not None
    assert (seen.route, seen.decision, seen.reason) == ("x", "deny", "audit-unavailable")
