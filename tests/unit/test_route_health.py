"""Health as kube-proxy sees it: per IP family (one proxier per family, each reading the
EndpointSlices of its addressType), and the endpoints it forwards to (KEP-1669: ready ones, else
serving terminating ones, for the cluster and for this node alone under a Local policy)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings

from cosmolet.config.schema import validate
from cosmolet.engine.builder import PlanBuilder
from cosmolet.engine.endpoints import endpoint_state
from cosmolet.engine.model import HEALTH, UNHEALTHY, Family, Plan, SkipCode, health_of
from cosmolet.engine.objects import EndpointSlice, decode_object
from cosmolet.engine.plan import plan_from_documents
from tests.factories import config_dict, endpoint, family_slices, service, slice_
from tests.unit.test_route_properties import CONFIG, clusters

V4, V6 = Family.IPV4, Family.IPV6
DUAL = ("10.96.0.10", "fd00:96::a")
LB = {"advertise": {"loadBalancerIPs": {"enabled": True, "allowedCIDRs": ["0.0.0.0/0", "::/0"]}}}


def plan(objects: list[Any], config: dict[str, Any] | None = None) -> Plan:
    return plan_from_documents(validate(config or config_dict()), "node1", objects)


def prefixes(result: Plan) -> list[str]:
    return [route.prefix for route in result.routes]


def v6_slice(name: str, *endpoints: dict[str, Any]) -> dict[str, Any]:
    return slice_(name, list(endpoints), suffix="v6", address_type="IPv6")


def v6_endpoint(**conditions: Any) -> dict[str, Any]:
    return endpoint("fd00:244::5", **conditions)


def record(raw: dict[str, Any]) -> EndpointSlice:
    result = decode_object(raw)
    assert isinstance(result, EndpointSlice)
    return result


# --- per family -------------------------------------------------------------------------------


def test_dual_stack_with_both_families_healthy_advertises_both() -> None:
    result = plan([service("web", cluster_ips=DUAL), *family_slices("web", DUAL)])
    assert prefixes(result) == ["10.96.0.10/32", "fd00:96::a/128"]
    assert result.skipped == ()


def test_an_empty_ipv6_slice_withdraws_only_the_ipv6_cluster_ip() -> None:
    result = plan([service("web", cluster_ips=DUAL), slice_("web"), v6_slice("web")])
    assert prefixes(result) == ["10.96.0.10/32"]
    (skip,) = result.skipped
    assert (skip.service, skip.code) == ("default/web", SkipCode.NO_READY_ENDPOINTS)
    assert skip.reason == "clusterIP fd00:96::a: no ready IPv6 endpoints"


def test_no_family_healthy_is_one_skip_for_the_service_as_before() -> None:
    result = plan([service("web", cluster_ips=DUAL), slice_("web", []), v6_slice("web")])
    assert result.routes == ()
    assert [(s.code, s.reason) for s in result.skipped] == [
        (SkipCode.NO_READY_ENDPOINTS, "no ready endpoints")
    ]


def test_external_traffic_policy_local_is_per_family() -> None:
    svc = service(
        "lb",
        cluster_ips=DUAL,
        type="LoadBalancer",
        external_policy="Local",
        lb_ips=["198.51.100.7", "2001:db8:7::7"],
    )
    # IPv4 endpoint here; the IPv6 one only on node2.
    objects = [svc, slice_("lb"), v6_slice("lb", v6_endpoint(node="node2"))]
    result = plan(objects, config_dict(**LB))
    # The ClusterIPs follow the (Cluster) internal policy: both families have an endpoint.
    assert prefixes(result) == ["10.96.0.10/32", "198.51.100.7/32", "fd00:96::a/128"]
    (skip,) = result.skipped
    assert skip.code is SkipCode.NO_LOCAL_ENDPOINTS
    assert skip.reason == (
        "loadBalancerIPs 2001:db8:7::7: externalTrafficPolicy Local and no ready IPv6 endpoint "
        "on node node1"
    )


def test_internal_traffic_policy_local_is_per_family() -> None:
    svc = service("web", cluster_ips=DUAL, internal_policy="Local")
    objects = [svc, slice_("web", [endpoint(node="node2")]), v6_slice("web", v6_endpoint())]
    result = plan(objects)
    assert prefixes(result) == ["fd00:96::a/128"]
    assert [s.code for s in result.skipped] == [SkipCode.NO_LOCAL_ENDPOINTS]
    assert "clusterIP 10.96.0.10: internalTrafficPolicy Local and no ready IPv4" in (
        result.skipped[0].reason
    )


@pytest.mark.parametrize("address_type", ["FQDN", None, "IPv5"])
def test_fqdn_and_untyped_slices_never_make_a_service_healthy(address_type: str | None) -> None:
    objects = [service("web", cluster_ips=DUAL), slice_("web", address_type=address_type)]
    result = plan(objects)
    assert result.routes == ()
    assert [s.code for s in result.skipped] == [SkipCode.NO_READY_ENDPOINTS]


def test_health_is_per_family_and_shared() -> None:
    v4 = slice_("web", [endpoint(node="node2")])
    v6 = v6_slice("web", v6_endpoint(node="node1"))
    health, counts = endpoint_state([record(v4), record(v6)], "node1")
    assert counts == (0, 1)
    assert health is health_of(V4, True, False) | health_of(V6, True, True)
    assert (health.anywhere(V4), health.here(V4), health.anywhere(V6), health.here(V6)) == (
        True,
        False,
        True,
        True,
    )
    assert health in HEALTH  # one of the 16 shared values: a slice costs no object
    fqdn = slice_("web", [endpoint(node="node1")], address_type="FQDN")
    assert endpoint_state([record(fqdn)], "node1") == (UNHEALTHY, (0, 0))


def test_builder_follows_each_familys_slice() -> None:
    builder = PlanBuilder(validate(config_dict()), "node1")
    svc = decode_object(service("web", cluster_ips=DUAL))
    assert svc is not None and not hasattr(svc, "reason")
    builder.set_service("default/web", svc)  # type: ignore[arg-type]
    builder.set_slice("default/web-abcde", record(slice_("web")))
    assert set(builder.take_delta()) == {"10.96.0.10/32"}
    builder.set_slice("default/web-v6", record(v6_slice("web", v6_endpoint())))
    assert set(builder.take_delta()) == {"fd00:96::a/128"}
    builder.set_slice("default/web-v6", record(v6_slice("web", v6_endpoint(ready=False))))
    assert builder.take_delta() == {"fd00:96::a/128": None}
    builder.set_slice("default/web-abcde", None)
    assert builder.take_delta() == {"10.96.0.10/32": None}


# --- which endpoints count (KEP-1669) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("here", "elsewhere", "advertised"),
    [
        # Nothing ready here: this node's serving terminating endpoint drains, even though a
        # ready endpoint exists on another node (kube-proxy falls back per node).
        (endpoint(ready=False, serving=True, terminating=True), endpoint(node="node2"), True),
        (endpoint(ready=False, terminating=True), endpoint(node="node2"), True),  # serving absent
        (endpoint(ready=False, serving=False, terminating=True), endpoint(node="node2"), False),
        (endpoint(ready=True, terminating=True), endpoint(node="node2"), True),
        (endpoint(ready=False, serving=True), endpoint(node="node2"), False),
    ],
)
def test_local_policy_falls_back_to_this_nodes_terminating_endpoints(
    here: dict[str, Any], elsewhere: dict[str, Any], advertised: bool
) -> None:
    svc = service("web", internal_policy="Local")
    result = plan([svc, slice_("web", [here, elsewhere])])
    assert bool(result.routes) is advertised
    if not advertised:
        assert [s.code for s in result.skipped] == [SkipCode.NO_LOCAL_ENDPOINTS]


def test_decoded_conditions_read_as_kube_proxy_reads_them() -> None:
    raw = slice_("web", [endpoint(ready=False, serving=True, terminating=True), endpoint()])
    decoded = record(raw)
    assert decoded.address_type == "IPv4"
    first, second = decoded.endpoints or []
    assert (first.ready, first.serving_terminating) == (False, True)
    assert (second.ready, second.serving_terminating) == (True, False)
    bare = record({**raw, "endpoints": [{"addresses": ["10.0.0.1"]}]})
    assert [(e.ready, e.serving_terminating) for e in bare.endpoints or []] == [(True, False)]


# --- properties -------------------------------------------------------------------------------


def _usable(ep: dict[str, Any], node: str | None = None) -> bool:
    """kube-proxy's reading, written out again independently of the engine."""
    conditions = ep.get("conditions", {})
    ready = conditions.get("ready") is not False
    serving = conditions.get("serving") is not False
    terminating = conditions.get("terminating") is True
    return (ready or (serving and terminating)) and (node is None or ep.get("nodeName") == node)


def _local_only(spec: dict[str, Any], svc: dict[str, Any], address: str) -> bool:
    """Is ``address`` advertised by this Service only from sources under a Local policy?"""
    ingress = svc.get("status", {}).get("loadBalancer", {}).get("ingress", [])
    sources = [
        (spec.get("clusterIPs") or [], spec.get("internalTrafficPolicy")),
        (spec.get("externalIPs") or [], spec.get("externalTrafficPolicy")),
        ([i["ip"] for i in ingress], spec.get("externalTrafficPolicy")),
    ]
    return all(
        traffic_policy == "Local"
        for ips, traffic_policy in sources
        if any(_same(ip, address) for ip in ips)
    )


def _same(text: str, address: str) -> bool:
    try:
        return str(ipaddress.ip_address(text)) == address
    except ValueError:
        return False


@settings(max_examples=300, deadline=None)
@given(clusters())
def test_every_route_has_a_usable_endpoint_of_its_family(objects: list[Any]) -> None:
    result = plan_from_documents(CONFIG, "node1", objects)
    dicts = [o for o in objects if isinstance(o, dict)]
    for route in result.routes:
        address = str(ipaddress.ip_network(route.prefix).network_address)
        address_type = "IPv4" if route.family is V4 else "IPv6"
        for key in route.services:
            namespace, name = key.split("/")
            svc = next(
                o
                for o in dicts
                if o.get("kind") == "Service"
                and isinstance(o.get("metadata"), dict)
                and (o["metadata"].get("namespace"), o["metadata"].get("name")) == (namespace, name)
            )
            endpoints = [
                ep
                for o in dicts
                if o.get("kind") == "EndpointSlice"
                and o["metadata"]["namespace"] == namespace
                and o["metadata"]["labels"].get("kubernetes.io/service-name") == name
                and o.get("addressType") == address_type
                for ep in o["endpoints"]
            ]
            node = "node1" if _local_only(svc["spec"], svc, address) else None
            assert any(_usable(ep, node) for ep in endpoints), (route, endpoints)


@settings(max_examples=200, deadline=None)
@given(clusters())
def test_one_familys_slices_do_not_change_the_other_familys_routes(objects: list[Any]) -> None:
    def without(address_type: str) -> list[Any]:
        return [
            o
            for o in objects
            if not (isinstance(o, dict) and o.get("kind") == "EndpointSlice")
            or o.get("addressType") != address_type
        ]

    full = plan_from_documents(CONFIG, "node1", objects).routes
    for family, other in ((V4, "IPv6"), (V6, "IPv4")):
        reduced = plan_from_documents(CONFIG, "node1", without(other)).routes
        assert [r for r in reduced if r.family is family] == [r for r in full if r.family is family]
        assert not [r for r in reduced if r.family is not family]
