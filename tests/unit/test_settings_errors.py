"""Bad settings files get the same kind of answer as bad rules files.

Each problem reads ``file:line: field.path: what is wrong — what to do``: the line of
the key to fix (inside lists and mappings too), a "did you mean" for a misspelt key,
the type that was expected and the value that was found.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config.settings import load_settings
from gateway.errors import ConfigError

PROVIDER = "name: corp\n      issuer: https://idp.example\n      client_id: gh\n"


def problems_of(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    (tmp_path / "gatehold.yaml").write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_settings(None, env=env or {}, cwd=tmp_path)
    return [p.replace(f"{tmp_path}/", "") for p in raised.value.problems]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "server:\n  prot: 9000\n",
            "gatehold.yaml:2: server.prot: unknown setting 'prot'; did you mean 'port'?",
        ),
        (
            "sesions:\n  idle_timeout: 8h\n",
            "gatehold.yaml:1: sesions: unknown setting 'sesions'; did you mean 'sessions'?",
        ),
        (
            "headers:\n  pas: [True-Client-IP]\n",
            "gatehold.yaml:2: headers.pas: unknown setting 'pas'; did you mean 'pass'?",
        ),
        (
            "auth:\n  oidc:\n    - " + PROVIDER + "      scope: [openid]\n",
            "gatehold.yaml:6: auth.oidc[0].scope: unknown setting 'scope'; did you mean 'scopes'?",
        ),
        (
            "auth:\n  magic_link:\n    self_signup:\n"
            "      example.com: {tenant: acme, rol: admin}\n",
            "gatehold.yaml:4: auth.magic_link.self_signup.example.com.rol: unknown setting 'rol'; "
            "did you mean 'role'?",
        ),
        (
            "server:\n  zzzzzz: 1\n",
            "gatehold.yaml:2: server.zzzzzz: unknown setting 'zzzzzz'; remove it",
        ),
    ],
    ids=[
        "in a section",
        "a section",
        "an aliased key",
        "in a list entry",
        "in a mapping entry",
        "no near miss",
    ],
)
def test_an_unknown_key_is_named_with_its_line_and_the_key_meant(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert expected in problems_of(tmp_path, text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "server:\n  port: abc\n",
            "gatehold.yaml:2: server.port: expected a whole number, got 'abc'",
        ),
        (
            "sessions:\n  cookie_secure: maybe\n",
            "gatehold.yaml:2: sessions.cookie_secure: expected true or false, got 'maybe'",
        ),
        (
            "server:\n  trusted_proxies: 10.0.0.1\n",
            "gatehold.yaml:2: server.trusted_proxies: expected a list, got '10.0.0.1'",
        ),
        ("server: 8080\n", "gatehold.yaml:1: server: expected a mapping of settings, got 8080"),
        (
            "mail:\n  mode: smpt\n",
            "gatehold.yaml:2: mail.mode: 'smpt' is not allowed here — "
            "write one of 'outbox' or 'smtp'",
        ),
        ("server:\n  port: 0\n", "gatehold.yaml:2: server.port: greater than or equal to 1, got 0"),
        (
            "auth:\n  oidc:\n    - " + PROVIDER + "      scopes: openid\n",
            "gatehold.yaml:6: auth.oidc[0].scopes: expected a list, got 'openid'",
        ),
    ],
    ids=["int", "bool", "list", "section", "choice", "range", "list in a list entry"],
)
def test_a_wrong_type_names_the_expected_type_and_the_value(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert expected in problems_of(tmp_path, text)


def test_a_missing_required_key_points_at_its_list_entry(tmp_path: Path) -> None:
    found = problems_of(tmp_path, "auth:\n  oidc:\n    - name: corp\n      client_id: gh\n")
    assert found == [
        "gatehold.yaml:3: auth.oidc[0].issuer: required setting 'issuer' is missing — add it"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "sessions:\n  idle_timeout: 8 hours\n",
            "gatehold.yaml:2: sessions.idle_timeout: '8 hours' is not a duration",
        ),
        (
            "auth:\n  magic_link:\n    ttl: soon\n",
            "gatehold.yaml:3: auth.magic_link.ttl: 'soon' is not a duration",
        ),
        (
            "auth:\n  bearer:\n    issuer: https://idp.example\n    jwks_url: https://idp.example/k\n"
            "    audience: api\n    leeway: 30 secs\n",
            "gatehold.yaml:6: auth.bearer.leeway: '30 secs' is not a duration",
        ),
        (
            "auth:\n  bearer:\n    issuer: https://idp.example\n    jwks_url: https://idp.example/k\n"
            "    audience: api\n    jwks_refetch_after: -5\n",
            "gatehold.yaml:6: auth.bearer.jwks_refetch_after: a duration cannot be negative",
        ),
        (
            "auth:\n  oidc:\n    - " + PROVIDER + "      leeway: 1 minute\n",
            "gatehold.yaml:6: auth.oidc[0].leeway: '1 minute' is not a duration",
        ),
    ],
    ids=["sessions", "magic link ttl", "bearer leeway", "bearer refetch", "provider leeway"],
)
def test_a_bad_duration_is_a_problem_when_the_settings_load(
    tmp_path: Path, text: str, expected: str
) -> None:
    found = problems_of(tmp_path, text)
    assert any(p.startswith(expected) for p in found), found


def test_a_missing_environment_variable_in_a_list_entry(tmp_path: Path) -> None:
    found = problems_of(
        tmp_path, "auth:\n  oidc:\n    - " + PROVIDER + "      client_secret: ${CORP_SECRET}\n"
    )
    assert found == [
        "gatehold.yaml:6: auth.oidc[0].client_secret: environment variable CORP_SECRET is not "
        "set and has no default — set it, or give a default: ${CORP_SECRET:-value}"
    ]


def test_a_yaml_syntax_error_has_its_line(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path, "server:\n  port: 8080\n  host: [127.0.0.1\n")
    assert problem.startswith("gatehold.yaml:4: not valid YAML: ")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    found = problems_of(tmp_path, "server:\n  prot: 1\n  port: x\nmail:\n  mode: smpt\n")
    assert [p.split(": ")[0] for p in found] == [
        "gatehold.yaml:2",
        "gatehold.yaml:3",
        "gatehold.yaml:5",
    ]


def test_a_bad_override_names_its_environment_variable_not_the_file(tmp_path: Path) -> None:
    found = problems_of(
        tmp_path,
        "server:\n  port: 8081\n",
        env={"GATEHOLD_SERVER__PORT": "abc", "GATEHOLD_SESSIONS__IDLE_TIMEOUT": "8 hours"},
    )
    assert found == [
        "environment variable GATEHOLD_SERVER__PORT: server.port: "
        "expected a whole number, got 'abc'",
        "environment variable GATEHOLD_SESSIONS__IDLE_TIMEOUT: sessions.idle_timeout: "
        "'8 hours' is not a duration; write e.g. 500ms, 30s, 10m, 8h or 90d",
    ]


@pytest.mark.parametrize("value", ["[::1", "{a: ", "'open", "a: b: c"])
def test_an_override_that_is_not_yaml_is_a_problem_not_a_crash(tmp_path: Path, value: str) -> None:
    [problem] = problems_of(
        tmp_path, "server:\n  port: 8081\n", env={"GATEHOLD_SERVER__HOST": value}
    )
    assert problem.startswith(
        "environment variable GATEHOLD_SERVER__HOST: server.host: not a valid YAML value ("
    )
    assert problem.endswith(f"— quote it: GATEHOLD_SERVER__HOST='\"{value}\"'")


def test_rules_are_a_path_or_a_path_with_who_manages_them(tmp_path: Path) -> None:
    (tmp_path / "gatehold.yaml").write_text("rules: my-rules.yaml\n")
    short = load_settings(None, env={}, cwd=tmp_path)
    assert short.rules_path == tmp_path / "my-rules.yaml" and short.rules_managed_by == "file"
    (tmp_path / "gatehold.yaml").write_text("rules: {path: r.yaml, managed_by: admin}\n")
    long = load_settings(None, env={}, cwd=tmp_path)
    assert long.rules_path == tmp_path / "r.yaml" and long.rules_managed_by == "admin"
    (tmp_path / "gatehold.yaml").write_text("rules: r.yaml\n")
    overridden = load_settings(None, env={"GATEHOLD_RULES__MANAGED_BY": "admin"}, cwd=tmp_path)
    assert overridden.rules_path == tmp_path / "r.yaml"
    assert overridden.rules_managed_by == "admin"


def test_an_unknown_rules_manager_is_one_clear_problem(tmp_path: Path) -> None:
    text = "server:\n  port: 9000\nrules:\n  path: r.yaml\n  managed_by: git\n"
    assert problems_of(tmp_path, text) == [
        "gatehold.yaml:5: rules.managed_by: 'git' is not allowed here — write one of "
        "'file' or 'admin'"
    ]
