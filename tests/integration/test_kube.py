"""Kubernetes end to end: lab API server -> cosmolet (watch) -> real ExaBGP -> a real FRR leaf."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from lab.apiserver import Store, free_port, serving, start_host_apiserver, write_kubeconfig
from lab.kube_client import put_endpoints, request_body
from lab.netns import Lab, wait_for
from lab.numbered import NumberedFabric, build_numbered
from tests.factories import endpoint, service, slice_
from tests.integration.conftest import sample


@dataclass
class Cluster:
    store: Store
    port: int
    kubeconfig: Path
    core: client.CoreV1Api
    discovery: client.DiscoveryV1Api

    def service(self, obj: dict[str, Any]) -> None:
        self.core.create_namespaced_service(obj["metadata"]["namespace"], request_body(obj))

    def endpoints(self, name: str, endpoints: list[dict[str, Any]]) -> None:
        put_endpoints(self.discovery, name, endpoints, f"{name}-abcde")


@pytest.fixture
def two_nodes(lab: Lab) -> NumberedFabric:
    return build_numbered(lab, nodes=2)


@pytest.fixture
def cluster(lab: Lab, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    fabric: NumberedFabric = request.getfixturevalue(
        "two_nodes" if "two_nodes" in request.fixturenames else "fabric"
    )
    store = Store()
    with serving(netns=[ns.name for ns in fabric.nodes], store=store) as (_, port):
        kubeconfig = lab.workdir / "kubeconfig"
        write_kubeconfig(kubeconfig, f"http://127.0.0.1:{port}")
        api = config.new_client_from_config(config_file=str(kubeconfig))
        yield Cluster(store, port, kubeconfig, client.CoreV1Api(api), client.DiscoveryV1Api(api))


ALLOW = {
    "advertise": {
        "externalIPs": {"enabled": True, "allowedCIDRs": ["203.0.113.0/24"]},
        "loadBalancerIPs": {"enabled": True, "allowedCIDRs": ["198.51.100.0/24"]},
    }
}


def test_service_lifecycle_reaches_the_leaf(fabric: NumberedFabric, cluster: Cluster) -> None:
    node = fabric.cosmolet(kubeconfig=cluster.kubeconfig, services=ALLOW).start()
    cluster.service(service("web", external_ips=["203.0.113.5", "192.0.2.66"]))
    cluster.endpoints("web", [endpoint(ready=True)])
    fabric.wait_rib({"10.96.0.10/32", "203.0.113.5/32"})

    cluster.endpoints("web", [endpoint(ready=False)])
    fabric.wait_rib(set(), timeout=5)
    cluster.endpoints("web", [endpoint(ready=True)])
    fabric.wait_rib({"10.96.0.10/32", "203.0.113.5/32"}, timeout=5)
    # The external IP outside the allowlist was never seen by the leaf.
    assert all("192.0.2.66/32" not in rib for rib in sample(fabric.rib, 1.0, 0.05))

    cluster.core.delete_namespaced_service("web", "default")
    fabric.wait_rib(set(), timeout=5)
    assert any(line.get("event") == "withdraw" for line in node.logs())


def test_external_traffic_policy_local_follows_the_endpoint(
    two_nodes: NumberedFabric, cluster: Cluster
) -> None:
    fabric = two_nodes
    for index in (1, 2):
        fabric.cosmolet(index, cluster.kubeconfig, services=ALLOW).start()
    lb = service("lb", type="LoadBalancer", external_policy="Local", lb_ips=["198.51.100.7"])
    cluster.service(lb)
    cluster.core.patch_namespaced_service_status("lb", "default", {"status": lb["status"]})
    cluster.endpoints("lb", [endpoint(node="node1")])
    node1, node2 = fabric.addresses(1)[1], fabric.addresses(2)[1]

    wait_for(lambda: fabric.next_hops("198.51.100.7/32") == {node1}, 30)
    # The ClusterIP is announced by both nodes (ECMP at the leaf); the LB IP only by node1.
    wait_for(lambda: fabric.next_hops("10.96.0.10/32") == {node1, node2}, 10)

    cluster.endpoints("lb", [endpoint(node="node2")])
    wait_for(lambda: fabric.next_hops("198.51.100.7/32") == {node2}, 10)
    assert fabric.next_hops("10.96.0.10/32") == {node1, node2}


def test_watch_faults_send_no_update_for_unchanged_routes(
    fabric: NumberedFabric, cluster: Cluster
) -> None:
    fabric.cosmolet(kubeconfig=cluster.kubeconfig).start()
    expected = set()
    for index in range(50):
        ip = f"10.96.1.{index + 1}"
        cluster.service(service(f"s{index}", cluster_ips=(ip,)))
        cluster.endpoints(f"s{index}", [endpoint()])
        expected.add(f"{ip}/32")
    fabric.wait_rib(expected)
    wait_for(lambda: fabric.established(fabric.NODE_V4), 10)
    sample(lambda: None, 1.0, 0.1)  # let the last UPDATEs settle
    before = fabric.updates_received(fabric.NODE_V4)

    cluster.store.drop_watches()  # watches dropped
    sample(lambda: None, 1.0, 0.1)
    cluster.store.compact()  # history gone: the next rewatch gets 410 and relists
    cluster.store.drop_watches()
    sample(lambda: None, 2.0, 0.1)

    assert fabric.updates_received(fabric.NODE_V4) == before
    assert set(fabric.rib()) == expected
    # And the watch still works afterwards.
    cluster.endpoints("s0", [endpoint(ready=False)])
    fabric.wait_rib(expected - {"10.96.1.1/32"}, timeout=5)
    assert fabric.updates_received(fabric.NODE_V4) == before + 1


def test_api_server_restart_sends_no_update(lab: Lab, fabric: NumberedFabric) -> None:
    """A real restart: the server process stops (saving its objects), stays down for 3 s, and
    comes back on the same port without its history, so every rewatch gets 410 and relists."""
    state = lab.workdir / "apiserver.json"
    kubeconfig = lab.workdir / "kubeconfig"
    port = free_port()

    server = start_host_apiserver(lab, port, kubeconfig, state, fabric.node.name)
    api = config.new_client_from_config(config_file=str(kubeconfig))
    core, discovery = client.CoreV1Api(api), client.DiscoveryV1Api(api)
    node = fabric.cosmolet(kubeconfig=kubeconfig).start()
    core.create_namespaced_service("default", request_body(service("web")))
    discovery.create_namespaced_endpoint_slice("default", request_body(slice_("web")))
    fabric.wait_rib({"10.96.0.10/32"})
    sample(lambda: None, 1.0, 0.1)
    before = fabric.updates_received(fabric.NODE_V4)

    server.terminate()
    assert server.wait(10) == 0
    sample(lambda: None, 3.0, 0.1)
    assert set(fabric.rib()) == {"10.96.0.10/32"}  # still advertised while the API is down
    start_host_apiserver(lab, port, kubeconfig, state, fabric.node.name)
    wait_for(
        lambda: sum(line.get("event") == "listed" for line in node.logs()) >= 6,
        40,
        what="every kind relisted after the restart",
    )
    sample(lambda: None, 1.0, 0.1)
    assert fabric.updates_received(fabric.NODE_V4) == before
    assert set(fabric.rib()) == {"10.96.0.10/32"}
