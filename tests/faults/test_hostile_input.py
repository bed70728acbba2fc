"""Hostile input through the lab API server, end to end: Hypothesis writes Services and
EndpointSlices full of garbage (bad IPs, IPs of the wrong family, huge label sets, unicode,
missing and mistyped fields, annotations carrying newlines and ExaBGP keywords) with the
official client; the real agent and ExaBGP take them in and a real FRR leaf receives the result.

After each example: the agent and ExaBGP are the same processes (no crash); every line the agent
ever wrote to ExaBGP (``COSMOLET_COMMAND_LOG``) matches the command grammar; and every prefix at
the leaf lies in an allowlist and is an address some object actually carried.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client

from lab.kube_client import create_raw, delete_raw, request_body
from lab.netns import wait_for
from lab.node import Cosmolet
from lab.numbered import NumberedFabric
from tests.factories import endpoint, service, slice_
from tests.faults.conftest import fabric_with_apiserver
from tests.unit.test_route_properties import annotation_keys

ALLOWED = [
    ipaddress.ip_network(n)
    for n in ("10.96.0.0/12", "fd00:96::/64", "203.0.113.0/24", "198.51.100.0/24")
]
POLICY = {
    "maxRoutes": 20_000,
    "advertise": {
        "clusterIP": {"enabled": True, "allowedCIDRs": ["10.96.0.0/12", "fd00:96::/64"]},
        "externalIPs": {"enabled": True, "allowedCIDRs": ["203.0.113.0/24"]},
        "loadBalancerIPs": {"enabled": True, "allowedCIDRs": ["198.51.100.0/24"]},
    },
}
PREFIX = r"[0-9a-f.:]+/(?:32|128)"
COMMAND = re.compile(
    r"^neighbor [0-9a-f.:]+ (?:"
    r"announce attributes next-hop \S+(?: local-preference \d+)?(?: med \d+)?"
    r"(?: community \[[0-9a-z:\- ]+\])?(?: large-community \[[0-9: ]+\])?"
    rf"(?: as-path \[[0-9 ]+\])? nlri(?: {PREFIX})+"
    rf"|withdraw attributes next-hop \S+ nlri(?: {PREFIX})+"
    r"|announce eor ipv[46] unicast"
    r")$"
)
INJECTIONS = [
    "65001:1\nannounce route 192.0.2.66/32 next-hop self",
    "65001:1] nlri 192.0.2.66/32",
    "65001:1 ; withdraw route 10.96.0.1/32",
    "no-export\r\nneighbor 10.1.1.0 announce route 8.8.8.8/32 next-hop self",
    "65001:1\x00",
    "65001:99999999999",
    "$(reboot)",
    "community [65001:1]",
    "large-community [1:2:3]",
    "\uff11:\uff12",  # fullwidth digits
]
SPECIAL = [
    "",
    "None",
    "0.0.0.0",
    "255.255.255.255",
    "::",
    "::1",
    "127.0.0.1",
    "fe80::1",
    "224.0.0.1",
    "::ffff:10.96.0.7",
    "10.96.0.1/32",
    " 10.96.0.2",
    "10.96.0.3\nannounce route 192.0.2.66/32 next-hop self",
    "10.096.0.4",
    "\uff11\uff10.\uff19\uff16.\uff10.\uff15",  # fullwidth digits
    "10.96.0.6 next-hop self",
    "192.0.2.66",
]


def ip_texts() -> st.SearchStrategy[Any]:
    in_range = st.builds(lambda a, b: f"10.96.{a}.{b}", st.integers(0, 15), st.integers(1, 254))
    return st.one_of(
        in_range,
        st.ip_addresses().map(str),
        st.builds(lambda n: f"fd00:96::{n:x}", st.integers(1, 0xFFFF)),
        st.builds(lambda n: f"198.51.100.{n}", st.integers(0, 255)),
        st.builds(lambda n: f"203.0.113.{n}", st.integers(0, 255)),
        st.sampled_from(SPECIAL),
        st.text(max_size=30),
        st.integers(),
        st.none(),
    )


def hostile_annotations() -> st.SearchStrategy[dict[str, Any]]:
    values = st.one_of(st.sampled_from(INJECTIONS), st.text(max_size=40))
    return st.dictionaries(annotation_keys, values, max_size=4)


def hostile_labels() -> st.SearchStrategy[dict[str, str]]:
    return st.one_of(
        st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=20), max_size=8),
        st.just({f"label-{i}": "x" * 60 for i in range(1000)}),
    )


@st.composite
def hostile_service(draw: st.DrawFn, name: str) -> list[dict[str, Any]]:
    spec: dict[str, Any] = {}
    if draw(st.booleans()):
        spec["clusterIP"] = draw(ip_texts())
    if draw(st.booleans()):
        spec["clusterIPs"] = draw(st.one_of(st.lists(ip_texts(), max_size=3), ip_texts()))
    if draw(st.booleans()):
        spec["externalIPs"] = draw(st.lists(ip_texts(), max_size=5))
    spec["type"] = draw(
        st.sampled_from(
            ["ClusterIP", "LoadBalancer", "NodePort", "ExternalName", "", "Bogus", None]
        )
    )
    if draw(st.booleans()):
        spec["externalTrafficPolicy"] = draw(st.sampled_from(["Local", "Cluster", "", "x"]))
    if draw(st.booleans()):
        spec["ipFamilies"] = draw(
            st.lists(st.sampled_from(["IPv4", "IPv6", "IPv7", ""]), max_size=2)
        )
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": draw(hostile_labels()),
            "annotations": draw(hostile_annotations()),
        },
    }
    if draw(st.integers(0, 9)):  # now and then no spec at all
        obj["spec"] = spec
    if draw(st.booleans()):
        ingress = draw(
            st.lists(
                st.fixed_dictionaries({"ip": ip_texts(), "hostname": st.text(max_size=10)}),
                max_size=3,
            )
        )
        obj["status"] = {"loadBalancer": {"ingress": ingress}}
    endpoints = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "addresses": st.lists(ip_texts(), max_size=2),
                    "conditions": st.fixed_dictionaries(
                        {"ready": st.one_of(st.booleans(), st.none(), st.text(max_size=5))}
                    ),
                    "nodeName": st.sampled_from(["node1", "node2", "", "nöde1", "node1\n"]),
                }
            ),
            max_size=4,
        )
    )
    slice_labels = {"kubernetes.io/service-name": name} if draw(st.integers(0, 5)) else {}
    endpoint_slice = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": f"{name}-x", "namespace": "default", "labels": slice_labels},
        "addressType": draw(st.sampled_from(["IPv4", "IPv6", "FQDN", "", "IPv5"])),
        "endpoints": endpoints,
    }
    return [obj, endpoint_slice]


def carried_addresses(obj: Any) -> Iterator[str]:
    """Every string in an object that parses, stripped of nothing, as an IP address."""
    if isinstance(obj, dict):
        for value in obj.values():
            yield from carried_addresses(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from carried_addresses(value)
    elif isinstance(obj, str):
        with contextlib.suppress(ValueError):
            yield str(ipaddress.ip_address(obj))


@dataclass
class Rig:
    fabric: NumberedFabric
    node: Cosmolet
    core: client.CoreV1Api
    discovery: client.DiscoveryV1Api
    api: client.ApiClient
    command_log: Path
    pids: tuple[int, int]
    carried: set[str]
    names: itertools.count  # type: ignore[type-arg]

    def sentinel(self) -> None:
        """A healthy Service written after the example's objects: once its route is at the
        leaf, the agent has taken in everything written before it."""
        n = next(self.names)
        address = f"10.100.{n // 250}.{n % 250 + 1}"
        name = f"sentinel{n}"
        self.core.create_namespaced_service(
            "default", request_body(service(name, cluster_ips=(address,)))
        )
        self.discovery.create_namespaced_endpoint_slice(
            "default", request_body(slice_(name, [endpoint()]))
        )
        self.carried.add(address)
        wait_for(lambda: f"{address}/32" in self.fabric.rib(), 30, 0.05, f"sentinel {address}")


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    with fabric_with_apiserver() as (lab, fabric, kubeconfig, api):
        command_log = lab.workdir / "commands.log"
        node = fabric.cosmolet(kubeconfig=kubeconfig, services=POLICY)
        node.env["COSMOLET_COMMAND_LOG"] = str(command_log)
        node.start()
        wait_for(lambda: fabric.established(fabric.NODE_V4), 30)
        rig = Rig(
            fabric,
            node,
            client.CoreV1Api(api),
            client.DiscoveryV1Api(api),
            api,
            command_log,
            (0, 0),
            set(),
            itertools.count(),
        )
        rig.sentinel()
        rig.pids = (node.agent_pid(), node.exabgp_pid())
        yield rig


def check(rig: Rig) -> None:
    assert (rig.node.agent_pid(), rig.node.exabgp_pid()) == rig.pids, "a process restarted"
    lines = rig.command_log.read_text().splitlines()
    bad = [line for line in lines if not COMMAND.match(line)]
    assert not bad, bad[:3]
    for family in ("ipv4", "ipv6"):
        for prefix in rig.fabric.rib(family):
            network = ipaddress.ip_network(prefix)
            assert any(
                network.subnet_of(allowed)
                for allowed in ALLOWED
                if allowed.version == network.version
            ), prefix
            assert str(network.network_address) in rig.carried, f"{prefix} was never written"
    errors = [entry for entry in rig.node.logs() if entry.get("level") in ("error", "critical")]
    assert not errors, errors[:3]


NAMES = itertools.count()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(data=st.data())
def test_hostile_services_never_crash_or_leak(rig: Rig, data: st.DataObject) -> None:
    written = []
    for _ in range(data.draw(st.integers(1, 4))):
        name = f"fz{next(NAMES)}"
        for obj in data.draw(hostile_service(name)):
            rig.carried.update(carried_addresses(obj))
            if create_raw(rig.api, obj) < 300:  # else refused: cosmolet never sees it
                written.append(obj)
    rig.sentinel()
    check(rig)
    for obj in written:
        delete_raw(rig.api, obj)


def test_ten_thousand_external_ips_on_one_service(rig: Rig) -> None:
    """One Service with 10,000 external IPs, half of them outside the allowlist: the allowed
    half is advertised, nothing else, and nothing crashes."""
    ips = [f"203.0.113.{i % 256}" for i in range(5_000)]
    ips += [f"192.0.{i // 256 % 256}.{i % 256}" for i in range(5_000)]
    huge = service("huge", cluster_ips=("10.96.200.1",), external_ips=ips)
    rig.carried.update([*ips, "10.96.200.1"])
    rig.core.create_namespaced_service("default", request_body(huge))
    rig.discovery.create_namespaced_endpoint_slice("default", request_body(slice_("huge")))
    rig.sentinel()
    check(rig)
    rib = set(rig.fabric.rib())
    assert {f"203.0.113.{i}/32" for i in range(256)} <= rib
    assert not any(p.startswith("192.0.") for p in rib)
    rig.core.delete_namespaced_service("huge", "default")
    rig.discovery.delete_namespaced_endpoint_slice("huge-abcde", "default")
