"""The reference fabric's nodes running the Helm chart's pods, not hand-made processes: what
``make demo`` runs, so that its main command proves the install path every time.

The chart is rendered with the real ``helm template`` and the lab's values (one config for every
node, as a DaemonSet has); the lab API server serves over TLS in every node's namespace with the
chart's own RBAC enforced for the pod's ServiceAccount token; each node gets its Node object (its
InternalIP on its loopback, where ``status.hostIP`` points and the router id comes from) and the
DaemonSet's pod, run by ``lab.pod`` in host mode: init container, cosmolet container and, in
hybrid mode, the FRR sidecar that sends the router advertisements. Each node also runs a
stand-in for kube-proxy's health endpoint (``lab.proxy_health``), which the chart's data-plane
gate asks before the pod announces anything.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

from lab import fabric as lab_fabric
from lab.apiserver.listener import Secured, serving_tls
from lab.fabric import Fabric
from lab.netns import Lab, Namespace
from lab.pod import ApiEndpoint, Image, LabNode, PodRunner, ServiceAccount
from lab.proxy_health import ProxyHealth

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "cosmolet"
NAMESPACE = "cosmolet-system"
ADVERTISE = {
    "loadBalancerIPs": {"enabled": True, "allowedCIDRs": ["198.51.100.0/24"]},
    "externalIPs": {"enabled": True, "allowedCIDRs": ["203.0.113.0/24"]},
}


def helm_binary() -> str | None:
    """``make setup`` installs helm next to the venv's interpreter; else the PATH's."""
    return shutil.which("helm", path=str(Path(sys.executable).parent)) or shutil.which("helm")


def render(values: dict[str, Any], workdir: Path) -> list[dict[str, Any]]:
    """``helm template`` of the chart with ``values`` (written to a values file, as a user
    would pass ``-f``)."""
    helm = helm_binary()
    if helm is None:
        raise RuntimeError("helm not installed (make setup installs it)")
    path = workdir / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    command = [helm, "template", "cosmolet", str(CHART), "-n", NAMESPACE, "-f", str(path)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"helm template failed: {result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def hybrid_values() -> dict[str, Any]:
    """The reference fabric's hybrid config (``lab.fabric.node_config``) as chart values: BGP
    unnumbered on the fabric ports, the router id from each node's ``NODE_IP``."""
    config = {
        "mode": "hybrid",
        "bgp": {"asn": 65001, "interfaces": ["eth*"]},
        "services": {"advertise": ADVERTISE},
        "logging": {"level": "info", "format": "json"},
    }
    return {"config": config}


def node_ip(index: int) -> str:
    """Node ``index``'s InternalIP, on its loopback."""
    return f"10.255.255.{index}"


def node_object(
    name: str,
    address: str,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Node as a kubelet registers it (the chart's nodeSelector is kubernetes.io/os), with
    ``labels`` and ``annotations``."""
    kubelet = {"kubernetes.io/os": "linux", "kubernetes.io/hostname": name}
    metadata = {"name": name, "labels": {**kubelet, **(labels or {})}}
    return {
        "metadata": {**metadata, "annotations": annotations or {}},
        "status": {"addresses": [{"type": "InternalIP", "address": address}]},
    }


@dataclass
class ChartFabric:
    """The fabric and each node's pod (``pods[i]`` runs on ``fabric.nodes[i]``)."""

    fabric: Fabric
    pods: list[PodRunner]


def agent_pid(runner: PodRunner) -> int:
    """The host PID of the cosmolet container's agent (``cosmolet agent``, ExaBGP's API
    process), found among the container's processes by its command line."""
    for pid in runner.current("cosmolet").processes():
        try:
            words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"agent" in words and any(word.endswith(b"cosmolet") for word in words):
            return pid
    raise LookupError("no agent process in the cosmolet container")


def proxy_health(lab: Lab, namespace: Namespace, node_name: str) -> ProxyHealth:
    """The stand-in for kube-proxy's health endpoint on a node of ``pods_on`` (``set`` turns
    it unhealthy or healthy again)."""
    return ProxyHealth(namespace, lab.workdir / f"{node_name}-proxy")


@contextlib.contextmanager
def pods_on(
    lab: Lab,
    documents: list[dict[str, Any]],
    nodes: Sequence[tuple[Namespace, dict[str, Any]]],
    api_host: str = "127.0.0.1",
    image: Image | None = None,
) -> Iterator[tuple[Secured, list[PodRunner]]]:
    """The lab API server over TLS in every node's namespace with the chart's RBAC, each Node
    object created (its InternalIP added to its namespace's loopback) and the DaemonSet's pod
    run on it; the pods deleted as the kubelet would on exit, then the server stopped.
    ``api_host``: where the server listens (``KUBERNETES_SERVICE_HOST``), ``::1`` for IPv6-only
    nodes; ``image``: the pods' image (default: host mode, the host's install)."""
    (account,) = [doc for doc in documents if doc["kind"] == "ServiceAccount"]
    name = f"{account['metadata']['namespace']}/{account['metadata']['name']}"
    namespaces = [namespace.name for namespace, _ in nodes]
    with contextlib.ExitStack() as stack:
        api = stack.enter_context(
            serving_tls(
                lab.workdir / "tls",
                service_account=name,
                rbac=documents,
                host=api_host,
                netns=namespaces,
            )
        )
        assert api.token is not None
        endpoint = ApiEndpoint(api_host, api.port)
        credentials = ServiceAccount(api.token, api.ca.read_bytes())
        image = image or Image.from_dockerfile(ROOT / "Dockerfile")
        core = client.CoreV1Api(config.new_client_from_config(config_file=str(api.kubeconfig)))
        pods = []
        for namespace, obj in nodes:
            node = LabNode.from_object(obj, namespace.name)
            host = node.addresses[0]
            namespace.ip("addr", "add", f"{host}/{128 if ':' in host else 32}", "dev", "lo")
            # kube-proxy's health endpoint, which the chart's data-plane gate asks by default
            proxy_health(lab, namespace, node.name).start()
            core.create_node(obj)  # type: ignore[arg-type]  # the client takes dicts
            workdir = lab.workdir / f"{node.name}-pod"
            runner = PodRunner(documents, node, workdir, image, endpoint, credentials)
            pods.append(stack.enter_context(runner))
        yield api, pods


@contextlib.contextmanager
def running(mode: str = "hybrid") -> Iterator[ChartFabric]:
    """The reference fabric with the chart's pod on each node, torn down on exit (the pods
    deleted as the kubelet would, then the API server, then the namespaces)."""
    if mode != "hybrid":
        raise ValueError(f"the chart's pods run the hybrid fabric only, not {mode}")
    with Lab() as lab:
        fabric = lab_fabric.build(lab, mode)
        documents = render(hybrid_values(), lab.workdir)
        # the demo's nodeName for each node (its namespace's name carries the lab's prefix)
        nodes = [
            (ns, node_object(f"node{index}", node_ip(index)))
            for index, ns in enumerate(fabric.nodes, 1)
        ]
        with pods_on(lab, documents, nodes) as (api, pods):
            fabric.kubeconfig, fabric.api_port = api.kubeconfig, api.port
            lab_fabric.return_routes(fabric)
            yield ChartFabric(fabric, pods)
