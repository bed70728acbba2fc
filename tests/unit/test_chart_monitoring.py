"""prometheus-operator's objects and Grafana's dashboard from the chart: the PodMonitor selects
the DaemonSet's pods on their ``http`` port, the PrometheusRule carries the alerts with their
``for:`` from the values, NOTES warn about system-node-critical outside kube-system, and the
dashboard ConfigMap carries the label Grafana's sidecar loads."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.test_chart import CHART, HELM, by_kind, containers, daemonset, helm, template

pytestmark = pytest.mark.skipif(HELM is None, reason="helm not installed (make setup installs it)")

MONITORING = str(CHART / "ci/monitoring-values.yaml")


def rules(*args: str) -> dict[str, dict[str, Any]]:
    (rule,) = by_kind(
        template("--set", "monitoring.prometheusRule.enabled=true", *args), "PrometheusRule"
    )
    return {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}


def test_nothing_of_prometheus_operator_by_default() -> None:
    kinds = {doc["kind"] for doc in template()}
    assert not kinds & {"PodMonitor", "ServiceMonitor", "PrometheusRule"}
    assert len(by_kind(template(), "ConfigMap")) == 1  # the config, no dashboard


def test_the_pod_monitor_selects_the_pods_http_port() -> None:
    documents = template("-f", MONITORING)
    (monitor,) = by_kind(documents, "PodMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["metadata"]["labels"]["team"] == "network"
    pod_labels = daemonset(documents)["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["cosmolet-system"]}
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    ports = {p["name"] for p in containers(documents)["cosmolet"]["ports"]}
    assert endpoint["port"] == "http" and "http" in ports
    assert endpoint["path"] == "/metrics"
    assert not by_kind(documents, "Service")  # a PodMonitor needs no Service


def test_pod_and_service_monitor_together_are_refused() -> None:
    result = helm(
        "template", "cosmolet", str(CHART),
        "--set", "monitoring.podMonitor.enabled=true",
        "--set", "monitoring.serviceMonitor.enabled=true",
        check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "enable one" in result.stderr


def test_the_alerts_and_their_for_durations() -> None:
    found = rules()
    assert set(found) == {
        "CosmoletBGPSessionDown",
        "CosmoletRoutesNotAdvertised",
        "CosmoletReconcileErrors",
        "CosmoletExaBGPCommandErrors",
        "CosmoletNotReady",
        "CosmoletAPIServerLost",
    }
    assert found["CosmoletBGPSessionDown"]["expr"] == "cosmolet_bgp_session_up == 0"
    assert found["CosmoletBGPSessionDown"]["for"] == "5m"
    assert found["CosmoletNotReady"]["expr"] == "cosmolet_ready == 0"
    assert found["CosmoletAPIServerLost"]["expr"] == "cosmolet_api_connected == 0"
    assert (
        "increase(cosmolet_reconcile_errors_total[10m]) > 0"
        in (found["CosmoletReconcileErrors"]["expr"])
    )
    assert (
        "cosmolet_exabgp_command_errors_total[10m]" in found["CosmoletExaBGPCommandErrors"]["expr"]
    )
    for rule in found.values():
        assert rule["labels"]["severity"] in {"warning", "critical"}
        # Prometheus' own templating reaches the rule: Helm must not have eaten it.
        assert "{{ $labels.instance }}" in rule["annotations"]["summary"]
    changed = rules(
        "--set", "monitoring.prometheusRule.for.sessionDown=1m",
        "--set", "monitoring.prometheusRule.for.routesNotAdvertised=30m",
        "--set", "monitoring.prometheusRule.errorWindow=1h",
    )  # fmt: skip
    assert changed["CosmoletBGPSessionDown"]["for"] == "1m"
    assert changed["CosmoletRoutesNotAdvertised"]["for"] == "30m"
    assert "[1h]" in changed["CosmoletReconcileErrors"]["expr"]


def test_routes_are_compared_per_peer_and_family_only_for_peers_that_are_up() -> None:
    expr = " ".join(rules()["CosmoletRoutesNotAdvertised"]["expr"].split())
    assert (
        "cosmolet_routes_advertised != on (job, instance, family) group_left () "
        "cosmolet_routes_desired" in expr
    )
    assert expr.endswith("and on (job, instance, peer) (cosmolet_bgp_session_up == 1)")


def test_a_duration_typo_is_refused_by_the_schema() -> None:
    result = helm(
        "template", "cosmolet", str(CHART),
        "--set", "monitoring.prometheusRule.for.sessionDown=5 minutes",
        check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "/monitoring/prometheusRule/for/sessionDown" in result.stderr


def test_notes_name_the_namespace_system_node_critical_needs() -> None:
    def notes(namespace: str, *args: str) -> str:
        text = helm("install", "--dry-run", "cosmolet", str(CHART), "-n", namespace, *args).stdout
        return text.split("NOTES:", 1)[1]

    assert "accept only in kube-system" in notes("cosmolet-system")
    assert "system-node-critical" not in notes("kube-system")
    assert "system-node-critical" not in notes("cosmolet-system", "--set", "priorityClassName=")


def test_the_dashboard_configmap_carries_the_sidecar_label() -> None:
    documents = template("-f", MONITORING)
    (dashboard,) = [c for c in by_kind(documents, "ConfigMap") if "cosmolet.json" in c["data"]]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["labels"]["team"] == "network"  # commonLabels
    board = json.loads(dashboard["data"]["cosmolet.json"])
    assert board == json.loads((CHART / "files/dashboard.json").read_text())
    assert board["uid"] == "cosmolet"
    exprs = " ".join(t["expr"] for p in board["panels"] for t in p["targets"])
    for shown in (
        "cosmolet_bgp_session_up",
        "cosmolet_routes_desired",
        "cosmolet_routes_advertised",
        "histogram_quantile(0.99, sum by (le) (rate(cosmolet_event_to_command_seconds_bucket",
        "cosmolet_route_withdrawals_total",
        "cosmolet_policy_refusals_total",
        "cosmolet_api_connected",
    ):
        assert shown in exprs
    # Every panel queries the data source the operator picks, not one named in the file.
    assert {p["datasource"]["uid"] for p in board["panels"]} == {"${datasource}"}
    labelled = template(
        "--set", "monitoring.dashboards.enabled=true",
        "--set", "monitoring.dashboards.labels.grafana_dashboard=cosmolet",
        "--set", "monitoring.dashboards.annotations.grafana_folder=Network",
    )  # fmt: skip
    (dashboard,) = [c for c in by_kind(labelled, "ConfigMap") if "cosmolet.json" in c["data"]]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "cosmolet"
    assert dashboard["metadata"]["annotations"] == {"grafana_folder": "Network"}


def test_notes_say_the_data_plane_gate_waits_for_kube_proxy() -> None:
    def notes(*args: str) -> str:
        text = helm("install", "--dry-run", "cosmolet", str(CHART), *args).stdout
        return text.split("NOTES:", 1)[1]

    assert "http://127.0.0.1:10256/healthz on the node) answers 200" in notes()
    assert "dataplaneGate" not in notes("--set", "config.node.dataplaneGate.url=none")
