"""The files in ``deploy/`` describe the gateway as it is.

Every YAML and JSON file parses; the Kubernetes base lists files that exist and its
manifests carry what a production rollout needs; and each file is checked against a
real ``gatehold serve`` process started with the ConfigMap's settings (moved to
loopback ports): the probe paths answer 200 on the ports the manifests name, every
metric an alert or the dashboard names is in ``/metrics``, and every command the
compose file and the manifests run is a real ``gatehold`` command.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gateway.demo.ledger import seed
from gateway.model import Reason
from gateway.responses import _STATUS as STATUS_BY_REASON
from tests.integration.test_cli import gatehold
from tests.integration.test_rules_reload_on_sighup import _wait_for_port
from tests.support.dockerfile import final_stage, local_argv
from tests.support.servers_base import free_port
from tests.support.stack import DEMO_RULES

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BASE = DEPLOY / "kubernetes" / "base"
COMPOSE = DEPLOY / "compose.yaml"
ALERTS = DEPLOY / "prometheus" / "gatehold-alerts.yaml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yaml"
DASHBOARD = DEPLOY / "grafana" / "gatehold-dashboard.json"
IMAGE = final_stage(ROOT / "Dockerfile")

METRIC_NAME = re.compile(r"(?<![\w:])gatehold_[A-Za-z0-9_:]*")
GATEWAY_5XX = re.compile(r'reason=~"([^"]+)"')


def manifests() -> dict[str, dict[str, Any]]:
    """The kustomization's resources by kind."""
    found: dict[str, dict[str, Any]] = {}
    for name in yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"]:
        for document in yaml.safe_load_all((BASE / name).read_text()):
            found[document["kind"]] = document
    return found


def pod_spec(kind: str) -> dict[str, Any]:
    spec: dict[str, Any] = manifests()[kind]["spec"]["template"]["spec"]
    return spec


def container(kind: str) -> dict[str, Any]:
    (only,) = pod_spec(kind)["containers"]
    return dict(only)


def configmap_file(key: str) -> str:
    return str(manifests()["ConfigMap"]["data"][key])


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def promql() -> list[str]:
    """Every PromQL expression of the alert rules and the dashboard."""
    alerts = yaml.safe_load(ALERTS.read_text())
    expressions = [rule["expr"] for group in alerts["groups"] for rule in group["rules"]]
    dashboard = json.loads(DASHBOARD.read_text())
    expressions += [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    expressions += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return expressions


def named_port(name_or_number: str | int) -> int:
    """A probe's port, resolved through the container's named ports."""
    if isinstance(name_or_number, int):
        return name_or_number
    ports = {port["name"]: port["containerPort"] for port in container("Deployment")["ports"]}
    return int(ports[name_or_number])


# ---------------------------------------------------------------- the files themselves


def test_every_file_in_deploy_parses() -> None:
    files = sorted(p for p in DEPLOY.rglob("*") if p.is_file())
    assert {p.suffix for p in files} <= {".yaml", ".json"}, files
    for path in files:
        if path.suffix == ".json":
            assert isinstance(json.loads(path.read_text()), dict), path
        else:
            documents = list(yaml.safe_load_all(path.read_text()))
            assert documents and all(isinstance(d, dict) for d in documents), path
    # The embedded files of the ConfigMap are YAML too.
    for key in ("gatehold.yaml", "rules.yaml"):
        assert isinstance(yaml.safe_load(configmap_file(key)), dict), key


def test_the_kustomization_lists_every_manifest_and_only_files_that_exist() -> None:
    listed = yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"]
    assert all((BASE / name).is_file() for name in listed), listed
    present = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(listed) == present
    assert set(manifests()) == {
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "Job",
    }


def test_the_deployment_runs_three_hardened_replicas_with_probes_and_resources() -> None:
    deployment = manifests()["Deployment"]
    assert deployment["spec"]["replicas"] == 3
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    gateway = container("Deployment")
    for probe in ("livenessProbe", "readinessProbe"):
        assert gateway[probe]["httpGet"]["path"].startswith("/"), probe
    assert gateway["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "admin"}
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/.gatehold/health"
    # Compose checks readiness with the image's own health command, more often.
    healthcheck = compose()["services"]["gatehold"]["healthcheck"]["test"]
    assert healthcheck == ["CMD", *IMAGE.healthcheck], healthcheck
    assert "--ready" in healthcheck
    for kind in ("Deployment", "Job"):
        spec, one = pod_spec(kind), container(kind)
        assert spec["securityContext"]["runAsNonRoot"] is True, kind
        context = spec["securityContext"]
        assert (context["runAsUser"], context["runAsGroup"]) == IMAGE.uid_gid, kind
        assert one["securityContext"]["runAsNonRoot"] is True, kind
        assert one["securityContext"]["readOnlyRootFilesystem"] is True, kind
        assert one["securityContext"]["allowPrivilegeEscalation"] is False, kind
        assert set(one["resources"]) == {"requests", "limits"}, kind
        for part in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(one["resources"][part]), (kind, part)
        # Secrets come from Secret references, never from the manifests themselves.
        for variable in one["env"]:
            assert "value" not in variable, (kind, variable)
            assert variable["valueFrom"]["secretKeyRef"]["name"] == "gatehold-secrets"
        # A read-only root: everything the process writes is a mounted volume.
        mounts = {mount["mountPath"] for mount in one["volumeMounts"]}
        assert "/tmp" in mounts, kind
    data_dir = yaml.safe_load(configmap_file("gatehold.yaml"))["data_dir"]
    assert [data_dir] == IMAGE.volumes
    assert data_dir in {m["mountPath"] for m in gateway["volumeMounts"] if not m.get("readOnly")}


def test_the_autoscaler_and_the_disruption_budget_apply_to_the_deployment() -> None:
    found = manifests()
    deployment = found["Deployment"]
    hpa = found["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert hpa["minReplicas"] == deployment["spec"]["replicas"] <= hpa["maxReplicas"]
    pdb = found["PodDisruptionBudget"]["spec"]
    assert pdb["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert 0 < pdb["minAvailable"] < deployment["spec"]["replicas"]
    service = found["Service"]["spec"]
    assert service["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert {port["targetPort"] for port in service["ports"]} <= {
        port["name"] for port in container("Deployment")["ports"]
    }


def test_the_gateway_ports_of_the_manifests_are_the_configmaps() -> None:
    settings = yaml.safe_load(configmap_file("gatehold.yaml"))["server"]
    gateway = container("Deployment")
    assert named_port("http") == settings["port"]
    assert named_port("admin") == settings["admin_port"]
    assert named_port(gateway["livenessProbe"]["httpGet"]["port"]) == settings["port"]
    assert named_port(gateway["readinessProbe"]["httpGet"]["port"]) == settings["admin_port"]
    annotations = manifests()["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == settings["admin_port"]
    scrape = yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"]
    kept = [r for r in scrape[0]["relabel_configs"] if r.get("action") == "keep"]
    assert {"regex": "admin", "action": "keep"}.items() <= kept[-1].items()


def test_compose_runs_two_gateways_on_postgres_in_front_of_the_demo_app() -> None:
    services = compose()["services"]
    for name in ("gatehold", "migrate"):  # as the image is tested: a read-only root
        assert services[name]["read_only"] is True, name
        assert services[name]["tmpfs"] == ["/tmp"], name
    assert services["gatehold"]["deploy"]["replicas"] == 2
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["gatehold"]["depends_on"]["migrate"] == {
        "condition": "service_completed_successfully"
    }
    environment = services["gatehold"]["environment"]
    assert environment["GATEHOLD_STORE__DSN"].startswith("postgresql://")
    assert environment["LEDGER_URL"] == "http://ledger:9001"
    volumes = {v.split(":")[0]: v.split(":")[1] for v in services["gatehold"]["volumes"]}
    settings = yaml.safe_load((DEPLOY / "gatehold.compose.yaml").read_text())
    checkpoints = Path(settings["audit"]["checkpoints"])
    assert volumes["gatehold-data"] in (str(p) for p in checkpoints.parents)
    assert "gatehold-data" in compose()["volumes"]


def test_every_command_the_deployments_run_is_a_real_gatehold_command() -> None:
    commands = [
        list(service["command"])
        for service in compose()["services"].values()
        if service.get("image", "").startswith("gatehold") and "entrypoint" not in service
        if "command" in service
    ]
    commands += [container("Deployment")["args"], container("Job")["args"]]
    for check in (IMAGE.healthcheck, compose()["services"]["gatehold"]["healthcheck"]["test"][1:]):
        assert check[:3] == ["python", "-m", "gateway.healthcheck"], check
        light = subprocess.run(
            [*local_argv(check[:3]), "--help"], capture_output=True, text=True, timeout=60
        )
        assert light.returncode == 0 and "--ready" in light.stdout, light.stderr
    assert ["migrate", "--config", "/etc/gatehold/gatehold.yaml"] in commands
    assert container("Job")["args"][0] == "migrate"
    assert sum(c[0] == "serve" for c in commands) == 2
    for command in commands:
        shown = gatehold(*command, "--help")
        assert shown.returncode == 0, (command, shown.stderr)
        assert shown.stdout.startswith(f"Usage: python -m gateway {command[0]}"), shown.stdout


def test_the_5xx_alert_counts_exactly_the_reasons_answered_with_5xx() -> None:
    gateway_5xx = {reason.value for reason, status in STATUS_BY_REASON.items() if status >= 500}
    assert Reason.INTERNAL_ERROR.value in gateway_5xx
    for expression in promql():
        for found in GATEWAY_5XX.findall(expression):
            if "error" in found or "upstream" in found:
                assert set(found.split("|")) == gateway_5xx, expression


# ---------------------------------------------------------------- against a running gateway


@dataclass
class Running:
    ports: dict[int, int]
    """Port of the manifests → the loopback port the test gateway listens on."""
    config: Path
    env: dict[str, str]
    store: Path

    def get(self, port: int, path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.ports[port]}{path}"
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()


def loopback_settings(settings: dict[str, Any], folder: Path, ports: dict[int, int]) -> Path:
    """The ConfigMap's settings with listeners on loopback and its paths in ``folder``."""
    server = settings["server"]
    port, admin_port = ports[server["port"]], ports[server["admin_port"]]
    server.update(host="127.0.0.1", port=port, admin_port=admin_port)
    server["public_url"] = f"http://127.0.0.1:{port}"
    settings["data_dir"] = str(folder / "data")
    settings["audit"]["checkpoints"] = str(folder / "data" / "audit-checkpoints.jsonl")
    path = folder / "gatehold.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """``gatehold serve`` with the Deployment's arguments and the ConfigMap's files."""
    folder = tmp_path_factory.mktemp("deploy")
    settings = yaml.safe_load(configmap_file("gatehold.yaml"))
    server = settings["server"]
    ports = {server["port"]: free_port(), server["admin_port"]: free_port()}
    rules_in_pod = Path(settings["rules"])
    (folder / rules_in_pod.name).write_text(configmap_file("rules.yaml"))
    settings["rules"] = str(folder / rules_in_pod.name)
    config = loopback_settings(settings, folder, ports)
    store = folder / "store.db"
    env = {
        **os.environ,
        "GATEHOLD_STORE__DSN": f"sqlite:///{store}",
        "GATEHOLD_AUDIT_KEY": secrets.token_hex(32),
        "APP_URL": f"http://127.0.0.1:{free_port()}",
    }
    # The Deployment takes exactly these from its Secret, spelt as the test spells them.
    assert {v["name"] for v in container("Deployment")["env"]} == {
        "GATEHOLD_STORE__DSN",
        "GATEHOLD_AUDIT_KEY",
    }
    args = [a if a != "/etc/gatehold/gatehold.yaml" else str(config) for a in
            container("Job")["args"]]  # fmt: skip
    migrated = subprocess.run(
        [sys.executable, "-m", "gateway", *args], env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert migrated.returncode == 0, migrated.stderr
    assert "store schema is up to date" in migrated.stdout
    assert store.is_file(), "GATEHOLD_STORE__DSN did not reach the store setting"
    log = folder / "serve.log"
    serve = [a if a != "/etc/gatehold/gatehold.yaml" else str(config) for a in
             container("Deployment")["args"]]  # fmt: skip
    with (
        log.open("w") as errors,
        subprocess.Popen(
            [sys.executable, "-m", "gateway", *serve], env=env, stdout=errors, stderr=errors
        ) as process,
    ):
        try:
            for port in ports.values():
                _wait_for_port(port, process, log)
            yield Running(ports, config, env, store)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)


def test_every_probe_path_answers_200_on_the_port_the_manifests_name(running: Running) -> None:
    gateway = container("Deployment")
    probes = [gateway[p]["httpGet"] for p in ("livenessProbe", "readinessProbe")]
    assert probes
    for probe in probes:
        status, body = running.get(named_port(probe["port"]), probe["path"])
        assert status == 200, (probe, body)
        expected = "ready" if probe["path"] == "/ready" else "ok"
        assert json.loads(body) == {"status": expected}


def test_the_images_health_check_finds_the_gateway_through_the_settings(
    running: Running,
) -> None:
    """The image's HEALTHCHECK (compose's too) and ``gatehold health`` ask the listeners
    the settings name; here, the loopback ports the test moved them to."""
    server = yaml.safe_load(configmap_file("gatehold.yaml"))["server"]
    for check in (IMAGE.healthcheck, ["gatehold", "health"], ["gatehold", "health", "--ready"]):
        done = subprocess.run(
            [*local_argv(check), "--config", str(running.config)],
            env=running.env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        port = running.ports[server["admin_port" if "--ready" in check else "port"]]
        assert done.stdout.startswith(f"healthy: http://127.0.0.1:{port}/"), done.stdout


def test_every_metric_the_alerts_and_the_dashboard_name_is_served(running: Running) -> None:
    settings = yaml.safe_load(configmap_file("gatehold.yaml"))["server"]
    # One refused request, so that the per-request families have samples.
    assert running.get(settings["port"], "/no-such-route")[0] in (401, 404)
    scrape = yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"][0]
    status, exposition = running.get(settings["admin_port"], scrape["metrics_path"])
    assert status == 200
    served = {
        sample.name
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }
    assert {"gatehold_decisions_total", "gatehold_stage_seconds_bucket"} <= served
    named = {name for expression in promql() for name in METRIC_NAME.findall(expression)}
    assert len(named) >= 8, named
    missing = sorted(named - served)
    assert not missing, f"named by alerts or the dashboard but not served: {missing}"


def test_the_labels_the_queries_group_and_filter_by_are_served(running: Running) -> None:
    settings = yaml.safe_load(configmap_file("gatehold.yaml"))["server"]
    running.get(settings["port"], "/no-route-here")  # a decision, whatever ran before
    _, exposition = running.get(settings["admin_port"], "/metrics")
    labels = {
        label
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        for label in sample.labels
    } | {"job", "instance", "pod", "namespace"}  # added by Prometheus when it scrapes
    for expression in promql():
        used = set(re.findall(r"\bby \(([^)]*)\)", expression))
        used = {name.strip() for group in used for name in group.split(",")}
        used |= set(re.findall(r"[{,]\s*([a-z_]+)\s*=~?", expression))
        assert used <= labels, (expression, used - labels)


def test_the_compose_settings_and_commands_start_with_the_demo_app(tmp_path: Path) -> None:
    """The compose gateway's settings pass ``gatehold check`` with the demo rules, and the
    demo app's compose command starts Ledger and serves it."""
    services = compose()["services"]
    settings = yaml.safe_load((DEPLOY / "gatehold.compose.yaml").read_text())
    assert Path(settings["rules"]).name == DEMO_RULES.name
    ports = {settings["server"]["port"]: free_port(), settings["server"]["admin_port"]: free_port()}
    settings["rules"] = str(DEMO_RULES)
    config = loopback_settings(settings, tmp_path, ports)
    env = {**os.environ, "GATEHOLD_AUDIT_KEY": secrets.token_hex(32)}
    checked = subprocess.run(
        [sys.executable, "-m", "gateway", "check", "--config", str(config)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    ledger = services["ledger"]
    assert ledger["entrypoint"] == ["python", "-m", "gateway.demo.ledger"]
    port = free_port()
    argv = list(ledger["command"])
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = str(port)
    argv[argv.index("--db") + 1] = str(tmp_path / "ledger.db")
    seed(tmp_path / "ledger.db")
    log = tmp_path / "ledger.log"
    with log.open("w") as errors, subprocess.Popen(
        [sys.executable, *ledger["entrypoint"][1:], *argv], stdout=errors, stderr=errors
    ) as process:  # fmt: skip
        try:
            _wait_for_port(port, process, log)
            url = f"http://127.0.0.1:{port}/__ledger/hits/total"
            with urllib.request.urlopen(url, timeout=10) as answer:
                assert answer.status == 200
        finally:
            process.terminate()
            process.wait(10)
