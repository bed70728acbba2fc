"""Policy end to end, a rule at a time: a Service asking for a forbidden prefix (outside each
allowlist, or past ``services.maxRoutes``) never gets it to the leaf (its FIB sampled every few
ms the whole time), and each refusal shows as a log line and a metric.

The fabric and node are shared by the module; each test creates its own Services, deletes them
when it ends and starts from an empty leaf, so any test runs alone or in any order."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes import client

from lab.kube_client import request_body
from lab.netns import wait_for
from lab.node import Cosmolet, http_get, metric_samples
from lab.numbered import NumberedFabric
from tests.factories import service, slice_
from tests.faults.conftest import fabric_with_apiserver

POLICY = {
    "maxRoutes": 6,
    "advertise": {
        "clusterIP": {"enabled": True, "allowedCIDRs": ["10.96.0.0/16"]},
        "externalIPs": {"enabled": True, "allowedCIDRs": ["203.0.113.0/24"]},
        "loadBalancerIPs": {"enabled": True, "allowedCIDRs": ["198.51.100.0/24"]},
    },
}


@dataclass
class Fabric:
    """The module's fabric, node and API clients, and a sampler of the leaf's FIB."""

    fabric: NumberedFabric
    node: Cosmolet
    core: client.CoreV1Api
    discovery: client.DiscoveryV1Api
    seen: set[str]  # every prefix the leaf's FIB held since the current test began
    largest: list[int]  # the most prefixes it held at once since then


@dataclass
class Policed:
    """One test's view of the shared fabric: the objects it created (deleted when it ends) and
    the log lines written since it began, so no test sees another's leftovers."""

    shared: Fabric
    log_start: int
    created: list[str] = field(default_factory=list)

    @property
    def fabric(self) -> NumberedFabric:
        return self.shared.fabric

    @property
    def seen(self) -> set[str]:
        return self.shared.seen

    @property
    def largest(self) -> int:
        return self.shared.largest[0]

    def create(self, obj: dict[str, Any]) -> None:
        """Create a Service and a slice with one ready endpoint for it."""
        name = obj["metadata"]["name"]
        self.shared.core.create_namespaced_service("default", request_body(obj))
        self.created.append(name)
        self.shared.discovery.create_namespaced_endpoint_slice(
            "default", request_body(slice_(name))
        )

    def delete_created(self) -> None:
        for name in self.created:
            self.shared.core.delete_namespaced_service(name, "default")
            self.shared.discovery.delete_namespaced_endpoint_slice(f"{name}-abcde", "default")

    def logs(self) -> list[dict[str, Any]]:
        return self.shared.node.logs()[self.log_start :]

    def refusals(self, code: str) -> float:
        return metric_samples(self.fabric.node).get(
            ("cosmolet_policy_refusals_total", (("reason", code),)), 0.0
        )

    def logged(self, service_key: str, needle: str) -> bool:
        return any(
            line.get("event") == "refused by policy"
            and line.get("service") == service_key
            and needle in line.get("detail", "")
            for line in self.logs()
        )


@pytest.fixture(scope="module")
def shared() -> Iterator[Fabric]:
    with fabric_with_apiserver() as (_lab, fabric, kubeconfig, api):
        node = fabric.cosmolet(kubeconfig=kubeconfig, services=POLICY).start()
        wait_for(lambda: fabric.established(fabric.NODE_V4), 30)
        wait_for(lambda: http_get(fabric.node, "/readyz")[0] == 200, 30, what="/readyz")
        seen: set[str] = set()
        largest = [0]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                fib = fabric.fib(4)
                seen.update(fib)
                largest[0] = max(largest[0], len(fib))
                time.sleep(0.005)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            yield Fabric(
                fabric, node, client.CoreV1Api(api), client.DiscoveryV1Api(api), seen, largest
            )
        finally:
            stop.set()
            sampler.join()


@pytest.fixture
def policed(shared: Fabric) -> Iterator[Policed]:
    """Each test starts from a leaf that holds nothing and leaves it so: whatever it created is
    deleted at the end, however it ended."""
    leaf_empty(shared.fabric)
    shared.seen.clear()
    shared.largest[0] = 0
    test = Policed(shared, log_start=len(shared.node.logs()))
    try:
        yield test
    finally:
        test.delete_created()
    leaf_empty(shared.fabric)


def leaf_empty(fabric: NumberedFabric) -> None:
    wait_for(lambda: not fabric.rib() and not fabric.fib(4), 30, what="an empty leaf")


RULES = [
    pytest.param(
        service("cip", cluster_ips=("10.200.0.1",)),
        "10.200.0.1",
        set(),
        "clusterIP 10.200.0.1 outside services.advertise.clusterIP.allowedCIDRs",
        id="clusterIP",
    ),
    pytest.param(
        service("ext", cluster_ips=("10.96.0.20",), external_ips=["192.0.2.10", "203.0.113.10"]),
        "192.0.2.10",
        {"10.96.0.20/32", "203.0.113.10/32"},
        "externalIPs 192.0.2.10 outside services.advertise.externalIPs.allowedCIDRs",
        id="externalIPs",
    ),
    pytest.param(
        service(
            "lb",
            cluster_ips=("10.96.0.30",),
            type="LoadBalancer",
            lb_ips=["192.0.2.20", "198.51.100.20"],
        ),
        "192.0.2.20",
        {"10.96.0.30/32", "198.51.100.20/32"},
        "loadBalancerIPs 192.0.2.20 outside services.advertise.loadBalancerIPs.allowedCIDRs",
        id="loadBalancerIPs",
    ),
]


@pytest.mark.parametrize(("obj", "forbidden", "allowed", "detail"), RULES)
def test_an_allowlist_keeps_a_prefix_from_the_peer(
    policed: Policed, obj: dict[str, Any], forbidden: str, allowed: set[str], detail: str
) -> None:
    name = obj["metadata"]["name"]
    before = policed.refusals("not-allowed")
    policed.create(obj)
    wait_for(lambda: allowed <= set(policed.fabric.rib()), 30, what=f"{name}'s allowed prefixes")
    wait_for(lambda: policed.logged(f"default/{name}", detail), 10, what="the log line")
    assert policed.refusals("not-allowed") >= before + 1
    assert f"{forbidden}/32" not in policed.seen
    assert f"{forbidden}/32" not in policed.fabric.rib()


def test_max_routes_keeps_the_oldest_and_never_exceeds(policed: Policed) -> None:
    """maxRoutes is 6: four older Services get in, then of five newer ones only the two oldest,
    and at no sample did the leaf hold more than six."""
    before = policed.refusals("max-routes")
    older = {f"10.96.2.{index + 1}/32" for index in range(4)}
    for index in range(4):  # created at the factories' default, 2024-06-01
        policed.create(service(f"old{index}", cluster_ips=(f"10.96.2.{index + 1}",)))
    wait_for(lambda: older <= set(policed.fabric.rib()), 30, what="the older Services' routes")
    for index in range(5):
        newer = f"2025-01-0{index + 1}T00:00:00Z"
        policed.create(
            service(f"many{index}", cluster_ips=(f"10.96.1.{index + 1}",), created=newer)
        )
    wait_for(lambda: policed.refusals("max-routes") >= before + 1, 30, what="the refusal")
    assert any(line.get("code") == "max-routes" for line in policed.logs())
    wait_for(lambda: len(policed.fabric.rib()) == 6, 30)
    time.sleep(1.0)
    assert set(policed.fabric.rib()) == older | {"10.96.1.1/32", "10.96.1.2/32"}
    assert policed.largest <= 6
