"""The lab around the chart's pod (``test_chart_pod.py``): the renderings (the README's install
command, the CI values files), the lab API server over TLS with the chart's RBAC, the fabric
each values file names (numbered ToRs, unnumbered leaves), and what the tests read back."""

from __future__ import annotations

import base64
import json
import shlex
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

from lab.apiserver.listener import serving_tls
from lab.frr_configs import Neighbor, numbered_router, unnumbered_leaf
from lab.kube_client import request_body
from lab.netns import FrrRouter, Lab, Namespace, wait_for
from lab.pod import ApiEndpoint, Image, LabNode, PodRunner, ServiceAccount
from lab.proxy_health import ProxyHealth
from tests.factories import family_slices, service
from tests.unit.test_chart import CHART, by_kind, helm

ROOT = CHART.parents[1]
NODE = "node1"
NODE_IP = "10.255.255.1"  # the node's InternalIP, on its loopback
NODE_ASN = 65001  # every values file's config.bgp.asn
WEB_V4, WEB_V6, WEB_LB = "10.96.0.10", "fd00:96::10", "198.51.100.10"
PASSWORD = "lab-md5-secret"


def readme_install() -> list[str]:
    """The README's ``helm install`` command, word for word, as ``helm template``."""
    section = (ROOT / "README.md").read_text().split("## Install with Helm", 1)[1]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    words = shlex.split(block.replace("\\\n", " "))
    assert words[:4] == ["helm", "install", "cosmolet", "charts/cosmolet"], words
    return ["template", "cosmolet", str(CHART), *words[4:]]


def render(*args: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(helm(*args).stdout) if doc]


def ci_values(name: str) -> list[dict[str, Any]]:
    path = CHART / "ci" / f"{name}-values.yaml"
    return render("template", "cosmolet", str(CHART), "-n", "cosmolet-system", "-f", str(path))


def config_of(documents: list[dict[str, Any]]) -> dict[str, Any]:
    (configmap,) = by_kind(documents, "ConfigMap")
    result: dict[str, Any] = yaml.safe_load(configmap["data"]["config.yaml"])
    return result


@dataclass
class Cluster:
    """The lab API server over TLS: an admin client, and the pod's in-cluster credentials."""

    core: client.CoreV1Api
    discovery: client.DiscoveryV1Api
    endpoint: ApiEndpoint
    account: ServiceAccount

    def node(self, labels: dict[str, str] | None = None) -> dict[str, Any]:
        """The Node, with the labels every kubelet registers (the chart's default nodeSelector
        is kubernetes.io/os: linux) and ``labels``."""
        kubelet = {"kubernetes.io/os": "linux", "kubernetes.io/hostname": NODE}
        node: dict[str, Any] = {
            "metadata": {"name": NODE, "labels": {**kubelet, **(labels or {})}},
            "status": {"addresses": [{"type": "InternalIP", "address": NODE_IP}]},
        }
        self.core.create_node(node)  # type: ignore[arg-type]  # the client takes dicts
        return node

    def web(self, namespace: str = "default") -> None:
        """A dual-stack LoadBalancer Service with a ready endpoint on the node in each family."""
        web = service("web", namespace, (WEB_V4, WEB_V6), type="LoadBalancer", lb_ips=[WEB_LB])
        self.core.create_namespaced_service(namespace, request_body(web))  # type: ignore[arg-type]
        for piece in family_slices("web", (WEB_V4, WEB_V6), namespace, node=NODE):
            body = request_body(piece)
            self.discovery.create_namespaced_endpoint_slice(namespace, body)  # type: ignore[arg-type]


@contextmanager
def cluster(lab: Lab, documents: list[dict[str, Any]], node: Namespace) -> Iterator[Cluster]:
    """The API server on 127.0.0.1 in the node's namespace too (where the pod's
    ``KUBERNETES_SERVICE_HOST`` points); the rendered ServiceAccount's token is authorized by
    the rendered ClusterRole and binding, and nothing else."""
    (account,) = by_kind(documents, "ServiceAccount")
    name = f"{account['metadata']['namespace']}/{account['metadata']['name']}"
    with serving_tls(
        lab.workdir / "tls", service_account=name, rbac=documents, netns=[node.name]
    ) as api:
        assert api.token is not None
        admin = config.new_client_from_config(config_file=str(api.kubeconfig))
        yield Cluster(
            client.CoreV1Api(admin),
            client.DiscoveryV1Api(admin),
            ApiEndpoint("127.0.0.1", api.port),
            ServiceAccount(api.token, api.ca.read_bytes()),
        )


def pod(
    lab: Lab,
    documents: list[dict[str, Any]],
    node: Namespace,
    api: Cluster,
    image: Image,
    labels: dict[str, str] | None = None,
    extra: tuple[dict[str, Any], ...] = (),
) -> PodRunner:
    """The DaemonSet's pod on the lab's node (its Node object created in the API server)."""
    node_object = api.node(labels)
    return PodRunner(
        [*documents, *extra],
        LabNode.from_object(node_object, node.name),
        lab.workdir / "pod",
        image,
        api.endpoint,
        api.account,
    )


def daemonset_volumes(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    (daemonset,) = by_kind(documents, "DaemonSet")
    volumes: list[dict[str, Any]] = daemonset["spec"]["template"]["spec"]["volumes"]
    return volumes


def node_namespace(lab: Lab) -> Namespace:
    """The node, its InternalIP on its loopback, and a stand-in for kube-proxy's health
    endpoint there, which the chart's data-plane gate asks by default."""
    ns = lab.namespace(NODE)
    ns.ip("addr", "add", f"{NODE_IP}/32", "dev", "lo")
    ProxyHealth(ns, lab.workdir / "proxy-health").start()
    return ns


def tor(
    lab: Lab,
    node: Namespace,
    name: str,
    node_port: str,
    addresses: list[tuple[str, str, int]],
    asn: int,
    password: str | None = None,
) -> FrrRouter:
    """A numbered ToR on its own link to the node: (ToR address, node address, prefix length)
    each, and a neighbor per node address, each with ``password``."""
    ns = lab.namespace(name)
    lab.link(node, node_port, ns, "eth1")
    neighbors = []
    for tor_address, node_address, length in addresses:
        nodad = ["nodad"] if ":" in tor_address else []
        ns.ip("addr", "add", f"{tor_address}/{length}", "dev", "eth1", *nodad)
        node.ip("addr", "add", f"{node_address}/{length}", "dev", node_port, *nodad)
        neighbors.append(Neighbor(node_address, NODE_ASN, password))
    router_id = f"10.254.0.{len(lab.namespaces)}"
    return lab.frr(ns, numbered_router(name, asn, router_id, neighbors))


def routes(router: FrrRouter, family: str = "ipv4") -> set[str]:
    return set(router.received_routes(family))


def kept_as_stale(router: FrrRouter, prefix: str) -> bool:
    """``router`` holds ``prefix``, every path of it stale (graceful restart)."""
    paths = router.received_routes().get(prefix, [])
    return bool(paths) and all(path.get("stale") for path in paths)


def readiness_at_node_address(node: Namespace, port: int = 9179) -> int:
    """GET /readyz at the node's address from the node's namespace, as the kubelet probes."""
    fetch = (
        "import sys, urllib.request, urllib.error\n"
        "try:\n print(urllib.request.urlopen(sys.argv[1], timeout=3).status)\n"
        "except urllib.error.HTTPError as e:\n print(e.code)\n"
    )
    return int(node.run(sys.executable, "-c", fetch, f"http://{NODE_IP}:{port}/readyz"))


def status(runner: PodRunner) -> dict[str, Any]:
    """``kubectl exec POD -c cosmolet -- cosmolet status --json``."""
    result = runner.exec("cosmolet", "cosmolet", "status", "--json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


IN_CLUSTER_GET = """
import os, ssl, sys, urllib.error, urllib.request
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
env = os.environ
base = "https://%s:%s" % (env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"])
context = ssl.create_default_context(cafile=sa + "/ca.crt")
headers = {"Authorization": "Bearer " + open(sa + "/token").read().strip()}
for path in sys.argv[1:]:
    request = urllib.request.Request(base + path, headers=headers)
    try:
        print(urllib.request.urlopen(request, context=context).status)
    except urllib.error.HTTPError as error:
        print(error.code)
"""


def in_cluster_get(runner: PodRunner, *paths: str) -> list[int]:
    """GET each path from inside the cosmolet container with its ServiceAccount's token and
    CA, the in-cluster way: the statuses."""
    result = runner.exec("cosmolet", "python", "-c", IN_CLUSTER_GET, *paths)
    assert result.returncode == 0, result.stderr
    return [int(line) for line in result.stdout.split()]


def agent_log(runner: PodRunner) -> list[dict[str, Any]]:
    """The cosmolet container's JSON log lines (``kubectl logs``). The agent's and ExaBGP's
    output share the container's stream, and the agent writes a line and its newline in two
    writes, so an ExaBGP line can be glued to either end of one: each object is taken from
    where it starts."""
    decoder = json.JSONDecoder()
    found = []
    for line in runner.log("cosmolet").splitlines():
        start = line.find('{"')
        if start >= 0:
            found.append(decoder.raw_decode(line, start)[0])
    return found


def report(case: str, image: Image, ready: float, learned: float) -> None:
    """The figures, for ``pytest -s``: from the pod's creation to Ready, and to the routes at
    the fabric (they may come before the readiness probe's first success)."""
    print(
        f"{case} ({mode(image)}): Ready after {ready:.2f}s; "
        f"routes at the fabric {learned:.2f}s after creation"
    )


def mode(image: Image) -> str:
    return "host mode" if image.rootfs is None else "image mode"


def secret(name: str, namespace: str, data: dict[str, str]) -> dict[str, Any]:
    encoded = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": encoded,
    }


def timed(predicate: Any, timeout: float, what: str, *explain: Any) -> float:
    """Seconds until ``predicate`` holds; on a timeout, the failure shows ``explain``'s
    results (the pod's status, a router's table)."""
    began = time.monotonic()
    try:
        wait_for(predicate, timeout, what=what)
    except TimeoutError as error:
        details = "\n".join(str(item() if callable(item) else item) for item in explain)
        raise AssertionError(f"{error}\n{details}") from error
    return time.monotonic() - began


def leaf(lab: Lab, node: Namespace, name: str, node_port: str, asn: int) -> FrrRouter:
    """An FRR leaf peering BGP unnumbered (``neighbor eth1 interface``) with BFD on its link
    to the node's ``node_port``."""
    ns = lab.namespace(name)
    lab.link(node, node_port, ns, "eth1")
    config = unnumbered_leaf(name, asn, f"10.254.0.{len(lab.namespaces)}", ["eth1"], bfd=True)
    return lab.frr(ns, config, daemons=("zebra", "bgpd", "bfdd"))


def bfd_up(router: FrrRouter) -> bool:
    peers = router.json("show bfd peers json") or []
    return any(peer.get("status") == "up" for peer in peers)


def commands(runner: PodRunner, container: str) -> set[str]:
    """The programs running in a container (by their /proc/PID/comm)."""
    found = set()
    for pid in runner.current(container).processes():
        try:
            found.add(Path(f"/proc/{pid}/comm").read_text().strip())
        except OSError:
            continue
    return found
