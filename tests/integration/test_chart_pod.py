"""The Helm chart's pod, run the way the kubelet runs it (``lab.pod``), against the lab API server
over TLS with the chart's own RBAC enforced for the pod's ServiceAccount token.

Each case renders with the real ``helm``, exactly as written: the README's install command, and
each values file in ``charts/cosmolet/ci``. Nothing is overridden: the fabric is built with the
addresses, AS numbers and interface names those values name (the ToRs at 10.0.0.1/10.0.0.3 and
fd00::1, the fabric ports ``swp*`` and ``eth1``). The node's own address (its InternalIP,
``status.hostIP``) is on its loopback; readiness is probed there, as the kubelet does.

Each case runs twice: in host mode (the host's install, the Dockerfile's ENTRYPOINT, CMD and
USER) and in image mode, on the built image's own filesystem (``make image`` saves it to
``build/cosmolet-VERSION.tar``; skipped without it).
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from lab.apiserver.listener import serving_tls
from lab.frr_configs import Neighbor, numbered_router, unnumbered_leaf
from lab.kube_client import request_body
from lab.netns import FrrRouter, Lab, Namespace, wait_for
from lab.pod import ApiEndpoint, Image, LabNode, PodError, PodRunner, ServiceAccount
from tests.factories import family_slices, service
from tests.unit.test_chart import CHART, HELM, by_kind, helm

pytestmark = pytest.mark.skipif(HELM is None, reason="helm not installed (make setup installs it)")

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
        node: dict[str, Any] = {
            "metadata": {"name": NODE, "labels": labels or {}},
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


def image_archive() -> Path:
    """The built image, as ``make image`` saves it (or ``COSMOLET_IMAGE_ARCHIVE``)."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    default = ROOT / "build" / f"cosmolet-{version}.tar"
    return Path(os.environ.get("COSMOLET_IMAGE_ARCHIVE", default))


@pytest.fixture(params=["host", "image"])
def image(request: pytest.FixtureRequest) -> Image:
    """Host mode: the host's install with the Dockerfile's ENTRYPOINT, CMD and USER. Image
    mode: the built image's own filesystem and config, when an archive of it is here."""
    if request.param == "host":
        return Image.from_dockerfile(ROOT / "Dockerfile")
    archive = image_archive()
    if not archive.exists():
        pytest.skip(f"image mode: no {archive} (make image saves it)")
    return Image.from_archive(archive)


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
    ns = lab.namespace(NODE)
    ns.ip("addr", "add", f"{NODE_IP}/32", "dev", "lo")
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
    each, and a neighbor per node address (the IPv4 ones with ``password``)."""
    ns = lab.namespace(name)
    lab.link(node, node_port, ns, "eth1")
    neighbors = []
    for tor_address, node_address, length in addresses:
        nodad = ["nodad"] if ":" in tor_address else []
        ns.ip("addr", "add", f"{tor_address}/{length}", "dev", "eth1", *nodad)
        node.ip("addr", "add", f"{node_address}/{length}", "dev", node_port, *nodad)
        v4 = ":" not in node_address
        neighbors.append(Neighbor(node_address, NODE_ASN, password if v4 else None))
    router_id = f"10.254.0.{len(lab.namespaces)}"
    return lab.frr(ns, numbered_router(name, asn, router_id, neighbors))


def routes(router: FrrRouter, family: str = "ipv4") -> set[str]:
    return set(router.received_routes(family))


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
    """The cosmolet container's JSON log lines (``kubectl logs``)."""
    lines = runner.log("cosmolet").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


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


def test_readme_install_advertises_and_a_graceful_delete_keeps_the_routes(
    lab: Lab, image: Image
) -> None:
    documents = render(*readme_install())
    (peer,) = config_of(documents)["bgp"]["peers"]
    assert (peer["address"], peer["asn"]) == ("10.0.0.1", 65000)  # as the README writes it
    node = node_namespace(lab)
    tor1 = tor(lab, node, "tor1", "eth1", [(peer["address"], "10.0.0.0", 31)], peer["asn"])
    with cluster(lab, documents, node) as api:
        api.web()
        with pod(lab, documents, node, api, image) as runner:
            timed(lambda: routes(tor1) == {f"{WEB_V4}/32"}, 60, "tor1 learns web", runner.describe)
            learned = time.monotonic() - runner.created
            ready = runner.wait_ready(60)
            assert readiness_at_node_address(node) == 200
            report("README install", image, ready, learned)
            assert status(runner)["ready"] is True
            # The pod's token is the ServiceAccount's, held to the chart's ClusterRole.
            allowed, denied = "/api/v1/services", "/api/v1/namespaces/cosmolet-system/secrets"
            assert in_cluster_get(runner, allowed, denied) == [200, 403]
            took = runner.delete()
        # graceful: ExaBGP closed its session without a NOTIFICATION; the ToR keeps the
        # routes as stale for the restart time.
        assert took < runner.pod.grace_seconds
        stale = tor1.received_routes()[f"{WEB_V4}/32"]
        assert all(path.get("stale") for path in stale), stale
        time.sleep(3)
        assert routes(tor1) == {f"{WEB_V4}/32"}


def test_numbered_values_md5_from_the_secret_and_a_withdraw_on_delete(
    lab: Lab, image: Image
) -> None:
    documents = ci_values("numbered")
    config = config_of(documents)
    peers = {p["address"]: p for p in config["bgp"]["peers"]}
    assert set(peers) == {"10.0.0.1", "10.0.0.3", "fd00::1"}
    assert {p["asn"] for p in peers.values()} == {65100}
    node = node_namespace(lab)
    # The MD5 Secret the values name, as the cluster's admin would create it; both ToRs hold the
    # same password for their IPv4 sessions (the values give fd00::1 none).
    (volume,) = [v for v in daemonset_volumes(documents) if "secret" in v]
    password_secret = secret(volume["secret"]["secretName"], "cosmolet-system", {"tor": PASSWORD})
    tor1 = tor(
        lab,
        node,
        "tor1",
        "eth1",
        [("10.0.0.1", "10.0.0.0", 31), ("fd00::1", "fd00::", 127)],
        65100,
        PASSWORD,
    )
    tor2 = tor(lab, node, "tor2", "eth2", [("10.0.0.3", "10.0.0.2", 31)], 65100, PASSWORD)
    v4 = {f"{WEB_V4}/32", f"{WEB_LB}/32"}
    with cluster(lab, documents, node) as api:
        api.web()
        runner = pod(lab, documents, node, api, image, extra=(password_secret,))
        with runner:
            timed(
                lambda: (
                    routes(tor1) == v4 == routes(tor2) and routes(tor1, "ipv6") == {f"{WEB_V6}/128"}
                ),
                60,
                "both ToRs learn web",
                runner.describe,
                lambda: tor1.vtysh("show bgp summary", "show bgp ipv6 unicast"),
                lambda: tor2.vtysh("show bgp summary"),
            )
            learned = time.monotonic() - runner.created
            ready = runner.wait_ready(60)
            assert readiness_at_node_address(node) == 200
            report("numbered values", image, ready, learned)
            # withdraw: the routes leave both ToRs at once, well within the grace period, and
            # the pod ends after its drain.
            began = time.monotonic()
            deleting = threading.Thread(target=runner.delete)
            deleting.start()
            withdrawn = timed(
                lambda: not routes(tor1) and not routes(tor2) and not routes(tor1, "ipv6"),
                runner.pod.grace_seconds,
                "the routes withdrawn",
            )
            deleting.join()
            took = time.monotonic() - began
    drain = config["shutdown"]["drainSeconds"]
    print(f"{mode(image)}: withdrawn {withdrawn:.2f}s after the delete, pod ended {took:.1f}s")
    assert withdrawn < drain <= took < runner.pod.grace_seconds
    assert runner.states["cosmolet"].exit_codes == [0]


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


def test_hybrid_values_sidecar_unnumbered_and_bfd(lab: Lab, image: Image) -> None:
    documents = ci_values("hybrid")
    config = config_of(documents)
    assert config["bgp"]["interfaces"] == ["swp*", "eth1"] and config["bgp"]["bfd"]["enabled"]
    node = node_namespace(lab)
    # One fabric port for each of the values' names: swp1 (by the glob) and eth1.
    leaves = [leaf(lab, node, "leaf1", "swp1", 65101), leaf(lab, node, "leaf2", "eth1", 65102)]
    v4 = {f"{WEB_V4}/32", f"{WEB_LB}/32"}
    with cluster(lab, documents, node) as api:
        api.web()
        with pod(lab, documents, node, api, image) as runner:
            timed(
                lambda: {"zebra", "bfdd", "watchfrr"} <= commands(runner, "frr"),
                30,
                "the sidecar runs zebra and bfdd",
                lambda: commands(runner, "frr"),
                lambda: runner.log("frr"),
                lambda: runner.log("frr-config"),
            )
            assert "bgpd" not in commands(runner, "frr")
            timed(
                lambda: all(
                    routes(r) == v4 and routes(r, "ipv6") == {f"{WEB_V6}/128"} for r in leaves
                ),
                60,
                "both leaves learn web over BGP unnumbered",
                runner.describe,
                lambda: [r.vtysh("show bgp summary") for r in leaves],
            )
            learned = time.monotonic() - runner.created
            ready = runner.wait_ready(60)
            assert readiness_at_node_address(node) == 200
            report("hybrid values", image, ready, learned)
            for index, router in enumerate(leaves, 1):
                hops = {
                    hop["ip"]
                    for path in router.received_routes()[f"{WEB_V4}/32"]
                    for hop in path["nexthops"]
                }
                port = ("swp1", "eth1")[index - 1]
                assert node.link_local(port) in hops  # RFC 8950: the node's link-local there
            # The agent configured the sidecar's bfdd through vtysh (group frrvty).
            bfd = timed(
                lambda: all(bfd_up(r) for r in leaves),
                30,
                "BFD up at both leaves",
                runner.describe,
                lambda: [r.vtysh("show bfd peers") for r in leaves],
            )
            print(f"hybrid values ({mode(image)}): BFD up at both leaves {bfd:.2f}s after Ready")
            events = [line.get("event") for line in agent_log(runner)]
            assert "BFD peers updated" in events
            assert "vtysh refused the BFD peers" not in events
        assert runner.states["frr"].exit_codes == [0]  # the sidecar stopped FRR on SIGTERM
        assert runner.states["cosmolet"].exit_codes == [0]
        assert runner.states["frr-config"].exit_codes == [0]


def test_announcement_values_start_ready_and_advertise_nothing(lab: Lab, image: Image) -> None:
    documents = ci_values("announcement")
    config = config_of(documents)
    assert not config["bgp"]["peers"]  # as published: no fabric to peer with
    (daemonset,) = by_kind(documents, "DaemonSet")
    selector = daemonset["spec"]["template"]["spec"]["nodeSelector"]
    node = node_namespace(lab)
    with cluster(lab, documents, node) as api:
        api.web(config["services"]["namespaces"][0])
        unlabelled = LabNode(NODE, node.name, (NODE_IP,))
        refused = PodRunner(
            documents,
            unlabelled,
            lab.workdir / "refused",
            Image.from_dockerfile(ROOT / "Dockerfile"),
        )
        with pytest.raises(PodError, match="nodeSelector"):
            refused.start()
        with pod(lab, documents, node, api, image, labels=selector) as runner:
            ready = runner.wait_ready(60)
            print(f"announcement values ({mode(image)}): Ready after {ready:.2f}s")
            assert readiness_at_node_address(node) == 200
            time.sleep(3)  # it stays up: no exit, no restart
            assert runner.current("cosmolet").poll() is None
            assert runner.states["cosmolet"].restarts == 0
            report = status(runner)
            assert report["ready"] is True and report["peers"] == []
            assert [r["prefix"] for r in report["routes"]] == [f"{WEB_V4}/32", f"{WEB_V6}/128"]
            # Nothing on the wire: no BGP socket in the node's namespace.
            assert node.run("ss", "-Htan", "( sport = :179 or dport = :179 )").strip() == ""
