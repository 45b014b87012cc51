"""Settings are validated once, with messages that name the file, the line and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config.settings import load_settings
from gateway.errors import ConfigError


def problems_of(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    (tmp_path / "gatehold.yaml").write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_settings(None, env=env or {}, cwd=tmp_path)
    return [p.replace(f"{tmp_path}/", "") for p in raised.value.problems]


def test_defaults_and_environment_overrides(tmp_path: Path) -> None:
    (tmp_path / "gatehold.yaml").write_text("server: {port: 8081}\n")
    settings = load_settings(None, env={"GATEHOLD_SERVER__PORT": "9000"}, cwd=tmp_path)
    assert settings.server.port == 9000
    assert settings.data_path == tmp_path / "var"
    assert settings.mail.mode == "outbox" and settings.auth.oidc == []


def test_secrets_come_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / "gatehold.yaml").write_text(
        "mail: {mode: smtp, security: starttls, password: '${SMTP_PASSWORD}'}\n"
        "auth:\n  oidc:\n    - {name: corp, issuer: 'https://idp.example', client_id: gh,\n"
        "       client_secret: '${CORP_SECRET:-fallback}'}\n"
    )
    settings = load_settings(None, env={"SMTP_PASSWORD": "pw"}, cwd=tmp_path)
    assert settings.mail.password == "pw"
    assert settings.auth.oidc[0].client_secret == "fallback"


def test_each_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    found = problems_of(tmp_path, "data_dir: var\nmail:\n  password: ${SMTP_PASSWORD}\n")
    assert found[0] == (
        "gatehold.yaml:3: mail.password: environment variable SMTP_PASSWORD "
        "is not set and has no default — set it, or give a default: ${SMTP_PASSWORD:-value}"
    )
    found = problems_of(
        tmp_path,
        "server:\n  port: 99999\n"
        "auth:\n  oidc:\n"
        "    - name: corp\n"
        "      issuer: https://idp.example\n"
        "      client_id: gh\n"
        "      scopes: [email]\n"
        "sessions: {idle: 8h}\n",
    )
    assert any(p.startswith("gatehold.yaml:2: server.port:") for p in found)
    assert "gatehold.yaml:8: auth.oidc[0].scopes: scopes must include 'openid'" in found
    assert any(
        p.startswith("gatehold.yaml:9: sessions.idle: unknown setting 'idle'") for p in found
    )


def test_a_password_never_goes_out_over_plain_smtp(tmp_path: Path) -> None:
    found = problems_of(tmp_path, "mail: {mode: smtp, password: secret}\n")
    assert len(found) == 1 and "set mail.security to starttls or tls" in found[0]


def test_two_providers_cannot_share_a_name(tmp_path: Path) -> None:
    provider = "{name: corp, issuer: 'https://idp.example', client_id: gh}"
    found = problems_of(tmp_path, f"auth:\n  oidc: [{provider}, {provider}]\n")
    assert len(found) == 1 and "repeated: ['corp']" in found[0]


def test_a_missing_file_says_how_to_point_at_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(None, env={}, cwd=tmp_path)
    assert "pass --config FILE, set GATEHOLD_CONFIG" in raised.value.problems[0]


def test_limits_have_safe_defaults_and_take_durations(tmp_path: Path) -> None:
    (tmp_path / "gatehold.yaml").write_text(
        "limits: {body_idle_timeout: 2s, websocket_max_lifetime: 30m,\n"
        "         websocket_origins: ['https://App.Example.test']}\n"
    )
    limits = load_settings(None, env={}, cwd=tmp_path).limits
    assert limits.body_idle_timeout == 2.0
    assert limits.websocket_max_lifetime == 1800.0
    assert limits.websocket_origins == ["https://app.example.test"]
    assert limits.keepalive_timeout == 15.0
    assert limits.in_flight_per_principal == 64
    assert limits.in_flight_per_client == 256


def test_a_websocket_origin_with_a_path_is_refused(tmp_path: Path) -> None:
    found = problems_of(tmp_path, "limits:\n  websocket_origins: ['https://app.example.test/']\n")
    assert len(found) == 1
    assert found[0].startswith("gatehold.yaml:2: limits.websocket_origins:")
    assert "without a path or trailing slash" in found[0]
