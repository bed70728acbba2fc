"""The chart's conventional values (names, common labels, the Linux nodeSelector, extra env,
volumes and mounts): each renders where an operator expects it, is accepted by the strict
values schema, and the result still passes ``helm lint --strict`` and Kubernetes' own schemas."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from tests.unit.test_chart import (
    CHART,
    CUSTOM_KINDS,
    HELM,
    KUBERNETES_VERSIONS,
    containers,
    daemonset,
    helm,
    template,
)

pytestmark = pytest.mark.skipif(HELM is None, reason="helm not installed (make setup installs it)")

CONVENTIONS = [
    "--set", "nameOverride=bgp",
    "--set", "commonLabels.team=network",
    "--set", "commonLabels.cost-centre=n42",
    "--set", "nodeSelector.rack=r1",
    "--set", "extraEnv[0].name=HTTPS_PROXY",
    "--set", "extraEnv[0].value=http://proxy:3128",
    "--set", "extraVolumes[0].name=ca",
    "--set", "extraVolumes[0].configMap.name=fabric-ca",
    "--set", "extraVolumeMounts[0].name=ca",
    "--set", "extraVolumeMounts[0].mountPath=/etc/fabric-ca",
    "--set", "extraVolumeMounts[0].readOnly=true",
]  # fmt: skip


def names(documents: list[dict[str, Any]]) -> set[str]:
    return {doc["metadata"]["name"] for doc in documents}


def test_name_overrides() -> None:
    assert names(template()) <= {"cosmolet", "cosmolet-metrics"}
    renamed = template("--set", "nameOverride=bgp")
    assert names(renamed) == {"cosmolet-bgp"}
    for document in renamed:
        assert document["metadata"]["labels"]["app.kubernetes.io/name"] == "bgp"
    pod = daemonset(renamed)["spec"]
    assert pod["selector"]["matchLabels"]["app.kubernetes.io/name"] == "bgp"
    assert pod["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == "bgp"
    documents = template("--set", "fullnameOverride=fabric-bgp", "--set", "nameOverride=bgp")
    assert names(documents) == {"fabric-bgp"}
    spec = daemonset(documents)["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "fabric-bgp"
    assert {v["name"]: v for v in spec["volumes"]}["config"]["configMap"]["name"] == "fabric-bgp"


def test_common_labels_on_every_object_and_the_pods() -> None:
    documents = template(*CONVENTIONS, "--set", "monitoring.serviceMonitor.enabled=true")
    assert len(documents) >= 6
    for document in documents:
        labels = document["metadata"]["labels"]
        assert labels["team"] == "network", document["kind"]
        assert labels["cost-centre"] == "n42", document["kind"]
    pod_labels = daemonset(documents)["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["team"] == "network"
    # Not in the selector: a DaemonSet's selector is immutable, so a label change would
    # otherwise make every upgrade fail.
    assert "team" not in daemonset(documents)["spec"]["selector"]["matchLabels"]


def test_linux_node_selector_merged_with_the_users() -> None:
    def selector(*args: str) -> dict[str, str]:
        return dict(daemonset(template(*args))["spec"]["template"]["spec"]["nodeSelector"])

    assert selector() == {"kubernetes.io/os": "linux"}
    assert selector("--set", "nodeSelector.rack=r1") == {"kubernetes.io/os": "linux", "rack": "r1"}
    assert selector("--set", "nodeSelector.kubernetes\\.io/os=other") == {
        "kubernetes.io/os": "other"
    }


def test_extra_env_volumes_and_mounts_reach_the_cosmolet_container() -> None:
    documents = template(*CONVENTIONS)
    cosmolet = containers(documents)["cosmolet"]
    env = {e["name"]: e for e in cosmolet["env"]}
    assert env["HTTPS_PROXY"] == {"name": "HTTPS_PROXY", "value": "http://proxy:3128"}
    assert "NODE_NAME" in env  # the downward API's entries stay
    mounts = {m["name"]: m for m in cosmolet["volumeMounts"]}
    assert mounts["ca"] == {"name": "ca", "mountPath": "/etc/fabric-ca", "readOnly": True}
    assert "config" in mounts
    volumes = {v["name"]: v for v in daemonset(documents)["spec"]["template"]["spec"]["volumes"]}
    assert volumes["ca"] == {"name": "ca", "configMap": {"name": "fabric-ca"}}
    assert "config" in volumes


def test_the_conventions_lint_strict() -> None:
    helm("lint", "--strict", str(CHART), *CONVENTIONS)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_conventions_render_valid_kubernetes(version: str) -> None:
    for document in template(*CONVENTIONS, "--set", "fullnameOverride=fabric-bgp"):
        if document["kind"] not in CUSTOM_KINDS:
            kubernetes_validate.validate(document, version, strict=True)


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("nameOverrid=x", "'nameOverrid' not allowed"),
        ("commonLabels.team=1", "/commonLabels/team"),
        ("extraVolumes=x", "/extraVolumes"),
    ],
)
def test_the_schema_still_refuses_a_typo(setting: str, complaint: str) -> None:
    result = helm("template", "cosmolet", str(CHART), "--set", setting, check=False)
    assert result.returncode != 0
    assert complaint in result.stderr
