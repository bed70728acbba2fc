"""Properties of the route engine over generated clusters (hypothesis)."""

from __future__ import annotations

import ipaddress
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cosmolet.config.schema import validate
from cosmolet.engine.model import Plan
from cosmolet.engine.plan import plan_from_documents
from tests.factories import config_dict, endpoint, node, service, slice_

CONFIG_DATA = config_dict(
    advertise={
        "clusterIP": {"enabled": True, "allowedCIDRs": ["10.96.0.0/16", "fd00:96::/64"]},
        "externalIPs": {"enabled": True, "allowedCIDRs": ["203.0.113.0/24"]},
        "loadBalancerIPs": {"enabled": True, "allowedCIDRs": ["198.51.100.0/24"]},
    },
    excludeNamespaces=["kube-system"],
)
CONFIG = validate(CONFIG_DATA)
#: The same, with node.ignoreExcludeLabel: a node with the label advertises.
CONFIG_IGNORING_LABEL = validate({**CONFIG_DATA, "node": {"ignoreExcludeLabel": True}})
#: The same, with aggregates holding some of the generated ClusterIPs (not 10.96.7.7), and no
#: namespace excluded (an aggregate is refused with a selection: it would carry those too).
CONFIG_AGGREGATES = validate(
    config_dict(
        advertise={
            **CONFIG_DATA["services"]["advertise"],
            "clusterIP": {
                "enabled": True,
                "allowedCIDRs": ["10.96.0.0/16", "fd00:96::/64"],
                "aggregate": ["10.96.0.0/24", "fd00:96::/120"],
            },
        },
    )
)
ALLOWED = {
    "clusterIP": [ipaddress.ip_network("10.96.0.0/16"), ipaddress.ip_network("fd00:96::/64")],
    "externalIPs": [ipaddress.ip_network("203.0.113.0/24")],
    "loadBalancerIPs": [ipaddress.ip_network("198.51.100.0/24")],
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

addresses = st.sampled_from(
    [
        "10.96.0.1",
        "10.96.0.2",
        "10.96.7.7",
        "10.97.0.1",
        "fd00:96::1",
        "fd00:97::1",
        "203.0.113.5",
        "203.0.114.5",
        "198.51.100.1",
        "192.0.2.1",
        "None",
        "",
        "garbage",
        "::ffff:10.96.0.1",
        "fe80::1",
        "0.0.0.0",
        "10.96.0.1\nwithdraw route 0.0.0.0/0",
    ]
)
annotation_values = st.sampled_from(
    [
        "65001:1",
        "65001:1,65001:2",
        "no-export",
        "1:2:3",
        "bad",
        "100",
        "-1",
        "3",
        "11",
        "",
        "65001:1\nannounce route 1.1.1.1/32 next-hop self",
        "true",
        "false",
    ]
)
annotation_keys = st.sampled_from(
    [
        "cosmolet.io/communities",
        "cosmolet.io/large-communities",
        "cosmolet.io/local-preference",
        "cosmolet.io/med",
        "cosmolet.io/as-path-prepend",
        "cosmolet.io/advertise",
        "other",
    ]
)


ADDRESS_TYPES = st.sampled_from(["IPv4", "IPv6", "FQDN", None])
EXCLUDE_LABEL = {"node.kubernetes.io/exclude-from-external-load-balancers": ""}
TAINTS = st.sampled_from(
    [[], [("ToBeDeletedByClusterAutoscaler", "NoSchedule")], [("other", "NoExecute")]]
)


@st.composite
def endpoint_slices(draw: st.DrawFn, name: str, namespace: str) -> dict[str, Any]:
    """One of a Service's EndpointSlices: any address type, any conditions."""
    address_type = draw(ADDRESS_TYPES)
    endpoints = draw(
        st.lists(
            st.builds(
                endpoint,
                address=st.just("fd00:244::5" if address_type == "IPv6" else "10.244.0.5"),
                node=st.sampled_from(["node1", "node2", None]),
                ready=st.sampled_from([True, False, None]),
                serving=st.sampled_from([True, False, None]),
                terminating=st.sampled_from([True, False, None]),
            ),
            max_size=3,
        )
    )
    suffix = draw(st.sampled_from(["a", "b"]))
    return slice_(name, endpoints, namespace=namespace, suffix=suffix, address_type=address_type)


@st.composite
def nodes(draw: st.DrawFn) -> dict[str, Any]:
    return node(
        labels=EXCLUDE_LABEL if draw(st.booleans()) else {},
        unschedulable=draw(st.booleans()),
        taints=draw(TAINTS),
    )


@st.composite
def services(draw: st.DrawFn, name: str) -> list[dict[str, Any]]:
    """A Service and one or two of its EndpointSlices."""
    namespace = draw(st.sampled_from(["default", "prod", "kube-system"]))
    lb_ips = draw(st.lists(addresses, max_size=2))
    svc = service(
        name,
        namespace,
        tuple(draw(st.lists(addresses, min_size=1, max_size=2))),
        type=draw(st.sampled_from(["ClusterIP", "LoadBalancer", "NodePort", "ExternalName"])),
        annotations=draw(st.dictionaries(annotation_keys, annotation_values, max_size=3)),
        external_ips=draw(st.lists(addresses, max_size=2)),
        lb_ips=lb_ips,
        lb_ip_modes=draw(
            st.dictionaries(st.sampled_from(lb_ips), st.sampled_from(["VIP", "Proxy"]))
            if lb_ips
            else st.just({})
        ),
        internal_policy=draw(st.sampled_from([None, "Cluster", "Local"])),
        external_policy=draw(st.sampled_from([None, "Cluster", "Local"])),
        created=draw(st.sampled_from(["2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z", ""])),
    )
    slices = draw(st.lists(endpoint_slices(name, namespace), min_size=1, max_size=2))
    return [svc, *{s["metadata"]["name"]: s for s in slices}.values()]


@st.composite
def clusters(draw: st.DrawFn) -> list[Any]:
    objects: list[Any] = []
    for index in range(draw(st.integers(0, 6))):
        objects += draw(services(f"svc{index}"))
    objects += draw(st.lists(json_values, max_size=3))
    if draw(st.booleans()):
        objects.append(draw(nodes()))
    return objects


def _plan(objects: list[Any]) -> Plan:
    return plan_from_documents(CONFIG, "node1", objects)


@settings(max_examples=300, deadline=None)
@given(st.lists(json_values, max_size=8))
def test_never_raises_on_arbitrary_documents(documents: list[Any]) -> None:
    _plan(documents)


@settings(max_examples=300, deadline=None)
@given(clusters())
def test_every_prefix_comes_from_an_allowed_source(objects: list[Any]) -> None:
    result = _plan(objects)
    by_key = {
        f"{o['metadata']['namespace']}/{o['metadata']['name']}": o
        for o in objects
        if isinstance(o, dict) and o.get("kind") == "Service"
    }
    for route in result.routes:
        address = ipaddress.ip_network(route.prefix).network_address
        assert route.prefix in {f"{address}/32", f"{address}/128"}
        for key in route.services:
            assert not key.startswith("kube-system/")
            spec = by_key[key]["spec"]
            sources = {
                "clusterIP": spec.get("clusterIPs") or [],
                "externalIPs": spec.get("externalIPs") or [],
                "loadBalancerIPs": [
                    i["ip"]
                    for i in by_key[key]
                    .get("status", {})
                    .get("loadBalancer", {})
                    .get("ingress", [])
                ],
            }
            assert any(
                str(address) in [str(ipaddress.ip_address(a)) for a in values if _is_ip(a)]
                and any(address in network for network in ALLOWED[kind])
                for kind, values in sources.items()
            ), (route, sources)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@settings(max_examples=200, deadline=None)
@given(clusters(), st.randoms(use_true_random=False))
def test_deterministic_and_independent_of_order(objects: list[Any], rng: random.Random) -> None:
    shuffled = list(objects)
    rng.shuffle(shuffled)
    assert _plan(objects) == _plan(shuffled)


@settings(max_examples=200, deadline=None)
@given(clusters(), services("intruder"))
def test_another_service_does_not_change_this_services_routes(
    objects: list[Any], intruder: list[dict[str, Any]]
) -> None:
    before = _plan(objects)
    after = _plan(objects + intruder)
    intruder_key = f"{intruder[0]['metadata']['namespace']}/intruder"
    intruder_prefixes = {route.prefix for route in after.routes if intruder_key in route.services}
    for route in before.routes:
        if route.prefix in intruder_prefixes:
            continue  # a shared IP: merging with the intruder is the documented behaviour
        assert route in after.routes


@settings(max_examples=100, deadline=None)
@given(clusters())
def test_routes_are_sorted_and_unique(objects: list[Any]) -> None:
    result = _plan(objects)
    keys = [route.sort_key for route in result.routes]
    assert keys == sorted(keys)
    assert len({route.prefix for route in result.routes}) == len(result.routes)
