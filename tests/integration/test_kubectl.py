"""The lab API server is enough of a Kubernetes API for the real kubectl (``make setup``
installs it into the venv): get and apply work with kubectl's default validation (the server's
OpenAPI documents and field validation), over plain HTTP and over HTTPS with tokens and RBAC."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lab.apiserver import Secured, serving, serving_tls, write_kubeconfig

KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")
MANIFEST = """\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {clusterIP: 10.96.0.10, clusterIPs: [10.96.0.10], ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: [10.244.1.5], conditions: {ready: true}}]
---
apiVersion: v1
kind: Node
metadata: {name: node1, labels: {kubernetes.io/hostname: node1}}
spec: {taints: [{key: example.com/drain, effect: NoSchedule}]}
"""
MISSPELT = """\
apiVersion: v1
kind: Service
metadata: {name: typo, namespace: default}
spec: {clusterIP: 10.96.0.11, prots: [{port: 80}]}
"""


def run(kubeconfig: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    assert KUBECTL is not None
    result = subprocess.run(
        [KUBECTL, "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (result.returncode == 0) == ok, result.stderr
    return result


@pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed (make setup installs it)")
def test_kubectl_apply_and_get(tmp_path: Path) -> None:
    manifest = tmp_path / "web.yaml"
    manifest.write_text(MANIFEST)
    misspelt = tmp_path / "typo.yaml"
    misspelt.write_text(MISSPELT)
    with serving() as (store, port):
        kubeconfig = tmp_path / "kubeconfig"
        write_kubeconfig(kubeconfig, f"http://127.0.0.1:{port}")

        def kubectl(*args: str) -> str:
            return run(kubeconfig, *args).stdout

        # kubectl's default validation: the documents advertise fieldValidation, so kubectl
        # asks the server to be strict instead of wanting a protobuf OpenAPI v2 of its own.
        applied = kubectl("apply", "-f", str(manifest))
        assert "service/web created" in applied and "node/node1 created" in applied
        assert "unchanged" in kubectl("apply", "-f", str(manifest))
        assert "web" in kubectl("get", "svc", "-A")
        assert "web-1" in kubectl("get", "endpointslices", "-n", "default")
        assert "node1" in kubectl("get", "nodes")
        assert ("services", "default", "web") in store.objects
        assert store.objects[("nodes", "", "node1")]["spec"]["taints"][0]["effect"] == (
            "NoSchedule"
        )
        refused = run(kubeconfig, "apply", "-f", str(misspelt), ok=False).stderr
        assert 'strict decoding error: unknown field "spec.prots"' in refused
        assert ("services", "default", "typo") not in store.objects
        # --validate=warn: the server drops the field and says so; kubectl prints the warning.
        warned = run(kubeconfig, "apply", "--validate=warn", "-f", str(misspelt))
        assert 'unknown field "spec.prots"' in warned.stderr
        assert "prots" not in store.objects[("services", "default", "typo")]["spec"]
        assert "clusterIP" in kubectl("explain", "service.spec")
        kubectl("delete", "svc", "web")
        assert ("services", "default", "web") not in store.objects


@pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed (make setup installs it)")
def test_kubectl_over_https_as_admin_and_as_the_service_account(tmp_path: Path) -> None:
    manifest = tmp_path / "web.yaml"
    manifest.write_text(MANIFEST)
    role = tmp_path / "rbac.yaml"
    role.write_text(
        "kind: ClusterRole\nmetadata: {name: reader}\n"
        "rules: [{apiGroups: [''], resources: [services], verbs: [get, list, watch]}]\n---\n"
        "kind: ClusterRoleBinding\nmetadata: {name: reader}\n"
        "roleRef: {kind: ClusterRole, name: reader}\n"
        "subjects: [{kind: ServiceAccount, name: cosmolet, namespace: kube-system}]\n"
    )
    with serving_tls(tmp_path / "tls", service_account="kube-system/cosmolet", rbac=role) as s:
        assert "service/web created" in run(s.kubeconfig, "apply", "-f", str(manifest)).stdout
        as_account = account_kubeconfig(s, tmp_path / "account")
        assert "web" in run(as_account, "get", "svc", "-n", "default").stdout
        refused = run(as_account, "delete", "svc", "web", "-n", "default", ok=False).stderr
        assert 'services "web" is forbidden: User "system:serviceaccount:kube-system:cosmolet"' in (
            refused
        )
        assert "cannot list resource" in run(as_account, "get", "nodes", ok=False).stderr


def account_kubeconfig(secured: Secured, path: Path) -> Path:
    assert secured.token is not None
    write_kubeconfig(path, secured.url, token=secured.token, ca=secured.ca)
    return path
