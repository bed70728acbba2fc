"""The route engine, rule by rule: each case is a cluster snapshot and the expected plan."""

from __future__ import annotations

from typing import Any

import pytest

from cosmolet.config.schema import Config, validate
from cosmolet.engine.model import Attributes, Plan, SkipCode
from cosmolet.engine.plan import plan_from_documents
from tests.factories import config_dict, endpoint, family_slices, node, service, slice_

ALLOW_EXTERNAL = {
    "advertise": {
        "externalIPs": {"enabled": True, "allowedCIDRs": ["203.0.113.0/24", "2001:db8:e::/48"]},
        "loadBalancerIPs": {"enabled": True, "allowedCIDRs": ["198.51.100.0/24"]},
    }
}


def plan(
    objects: list[dict[str, Any]], config: Config | None = None, node_name: str = "node1"
) -> Plan:
    return plan_from_documents(config or validate(config_dict()), node_name, objects)


def prefixes(result: Plan) -> list[str]:
    return [route.prefix for route in result.routes]


def codes(result: Plan) -> dict[str, set[SkipCode]]:
    found: dict[str, set[SkipCode]] = {}
    for skip in result.skipped:
        found.setdefault(skip.service, set()).add(skip.code)
    return found


# --- ClusterIPs and health -------------------------------------------------------------------


def test_healthy_cluster_ip_is_a_host_route() -> None:
    result = plan([service("web"), slice_("web")])
    assert prefixes(result) == ["10.96.0.10/32"]
    assert result.routes[0].services == ("default/web",)
    assert result.skipped == ()


def test_dual_stack_gives_a_32_and_a_128() -> None:
    cluster_ips = ("10.96.0.10", "fd00:96:0:0::a")
    result = plan([service("web", cluster_ips=cluster_ips), *family_slices("web", cluster_ips)])
    assert prefixes(result) == ["10.96.0.10/32", "fd00:96::a/128"]
    assert [str(route.family) for route in result.routes] == ["ipv4", "ipv6"]


def test_cluster_ip_field_is_used_when_cluster_ips_is_absent() -> None:
    svc = service("web")
    del svc["spec"]["clusterIPs"]
    assert prefixes(plan([svc, slice_("web")])) == ["10.96.0.10/32"]


@pytest.mark.parametrize(
    ("endpoints", "healthy"),
    [
        ([endpoint(ready=True)], True),
        ([endpoint(ready=None)], True),  # absent means ready
        ([endpoint(ready=False)], False),
        # Ready whatever terminating says (publishNotReadyAddresses): kube-proxy forwards to it.
        ([endpoint(ready=True, terminating=True)], True),
        ([endpoint(ready=None, terminating=True)], True),
        # Not ready: only serving-and-terminating ones, kube-proxy's fallback (KEP-1669).
        ([endpoint(ready=False, serving=True, terminating=True)], True),
        ([endpoint(ready=False, serving=None, terminating=True)], True),  # absent: serving
        ([endpoint(ready=False, serving=False, terminating=True)], False),
        ([endpoint(ready=False, serving=True, terminating=False)], False),
        ([endpoint(ready=False, serving=True)], False),
        ([endpoint(ready=False), endpoint(ready=True, node="node2")], True),
        ([], False),
    ],
)
def test_health_follows_endpoint_conditions(endpoints: list[dict[str, Any]], healthy: bool) -> None:
    result = plan([service("web"), slice_("web", endpoints)])
    assert bool(result.routes) is healthy
    if not healthy:
        assert codes(result) == {"default/web": {SkipCode.NO_READY_ENDPOINTS}}


def test_no_slices_is_unhealthy() -> None:
    assert codes(plan([service("web")])) == {"default/web": {SkipCode.NO_READY_ENDPOINTS}}


def test_endpoint_with_no_conditions_object_is_ready() -> None:
    ep = endpoint()
    del ep["conditions"]
    assert prefixes(plan([service("web"), slice_("web", [ep])])) == ["10.96.0.10/32"]


def test_an_address_needs_a_slice_of_its_own_family() -> None:
    result = plan(
        [
            service("web", cluster_ips=("10.96.0.10", "fd00::a")),
            slice_("web", [endpoint("fd00:244::5")], address_type="IPv6"),
        ]
    )
    assert prefixes(result) == ["fd00::a/128"]
    (skip,) = result.skipped
    assert skip.code is SkipCode.NO_READY_ENDPOINTS
    assert skip.reason == "clusterIP 10.96.0.10: no ready IPv4 endpoints"


def test_any_of_several_slices_makes_it_healthy() -> None:
    result = plan(
        [
            service("web"),
            slice_("web", [endpoint(ready=False)], suffix="a"),
            slice_("web", [endpoint(ready=True)], suffix="b"),
        ]
    )
    assert prefixes(result) == ["10.96.0.10/32"]


def test_slice_of_same_name_in_another_namespace_does_not_count() -> None:
    result = plan([service("web"), slice_("web", namespace="other")])
    assert result.routes == ()


def test_headless_and_external_name_are_skipped() -> None:
    external = service("ext", cluster_ips=None, type="ExternalName")
    result = plan([service("headless", cluster_ips=("None",)), slice_("headless"), external])
    assert result.routes == ()
    assert codes(result) == {
        "default/headless": {SkipCode.HEADLESS},
        "default/ext": {SkipCode.EXTERNAL_NAME},
    }


# --- Traffic policies --------------------------------------------------------------------------


def test_internal_traffic_policy_local_needs_a_ready_endpoint_on_this_node() -> None:
    svc = service("web", internal_policy="Local")
    here = plan([svc, slice_("web", [endpoint(node="node1")])])
    elsewhere = plan([svc, slice_("web", [endpoint(node="node2")])])
    not_ready_here = plan(
        [svc, slice_("web", [endpoint(node="node1", ready=False), endpoint(node="node2")])]
    )
    assert prefixes(here) == ["10.96.0.10/32"]
    assert elsewhere.routes == ()
    assert codes(elsewhere) == {"default/web": {SkipCode.NO_LOCAL_ENDPOINTS}}
    assert not_ready_here.routes == ()


def test_external_traffic_policy_local_applies_to_external_and_lb_ips_only() -> None:
    config = validate(config_dict(**ALLOW_EXTERNAL))
    svc = service(
        "lb",
        type="LoadBalancer",
        external_policy="Local",
        external_ips=["203.0.113.7"],
        lb_ips=["198.51.100.7"],
    )
    here = plan([svc, slice_("lb", [endpoint(node="node1")])], config)
    elsewhere = plan([svc, slice_("lb", [endpoint(node="node2")])], config)
    assert prefixes(here) == ["10.96.0.10/32", "198.51.100.7/32", "203.0.113.7/32"]
    assert prefixes(elsewhere) == ["10.96.0.10/32"]
    assert codes(elsewhere) == {"default/lb": {SkipCode.NO_LOCAL_ENDPOINTS}}


# --- External and load-balancer IPs: allowlists ------------------------------------------------


def test_external_and_lb_ips_are_off_by_default() -> None:
    svc = service("lb", type="LoadBalancer", external_ips=["203.0.113.7"], lb_ips=["198.51.100.7"])
    result = plan([svc, slice_("lb")])
    assert prefixes(result) == ["10.96.0.10/32"]
    assert codes(result) == {"default/lb": {SkipCode.KIND_DISABLED}}


def test_enabled_with_empty_allowlist_allows_nothing() -> None:
    config = validate(config_dict(advertise={"externalIPs": {"enabled": True}}))
    result = plan([service("web", external_ips=["203.0.113.7"]), slice_("web")], config)
    assert prefixes(result) == ["10.96.0.10/32"]
    assert codes(result) == {"default/web": {SkipCode.NOT_ALLOWED}}


def test_allowlists_admit_only_their_cidrs() -> None:
    config = validate(config_dict(**ALLOW_EXTERNAL))
    svc = service(
        "web",
        external_ips=["203.0.113.7", "192.0.2.66", "2001:db8:e::1", "2001:db8:f::1"],
        lb_ips=["198.51.100.9", "203.0.113.8"],
    )
    result = plan([svc, *family_slices("web", ("10.96.0.10", "2001:db8:e::1"))], config)
    assert prefixes(result) == [
        "10.96.0.10/32",
        "198.51.100.9/32",
        "203.0.113.7/32",
        "2001:db8:e::1/128",
    ]
    reasons = [skip.reason for skip in result.skipped]
    assert any("192.0.2.66" in reason for reason in reasons)
    assert any("2001:db8:f::1" in reason for reason in reasons)
    assert any("loadBalancerIPs 203.0.113.8" in reason for reason in reasons)


def test_cluster_ip_allowlist_when_given() -> None:
    config = validate(
        config_dict(advertise={"clusterIP": {"enabled": True, "allowedCIDRs": ["10.96.0.0/12"]}})
    )
    result = plan(
        [service("a"), slice_("a"), service("b", cluster_ips=("172.16.0.1",)), slice_("b")], config
    )
    assert prefixes(result) == ["10.96.0.10/32"]
    assert codes(result) == {"default/b": {SkipCode.NOT_ALLOWED}}


def test_cluster_ip_can_be_disabled() -> None:
    config = validate(config_dict(advertise={"clusterIP": {"enabled": False}}))
    result = plan([service("web"), slice_("web")], config)
    assert result.routes == ()
    assert codes(result) == {"default/web": {SkipCode.KIND_DISABLED}}


@pytest.mark.parametrize(
    "address",
    [
        "garbage",
        "0.0.0.0",
        "127.0.0.1",
        "224.0.0.1",
        "169.254.1.1",
        "fe80::1",
        "::",
        "::ffff:10.0.0.1",
        "255.255.255.255",
        "10.96.0.1/32",
        "2001:db8::1%eth0",
        " 10.0.0.1\n",
    ],
)
def test_unroutable_or_garbage_addresses_are_skipped(address: str) -> None:
    result = plan([service("web", cluster_ips=(address,)), slice_("web")])
    assert result.routes == ()
    assert codes(result) == {"default/web": {SkipCode.BAD_ADDRESS}}


# --- Selection ---------------------------------------------------------------------------------


def test_namespaces_and_exclusions() -> None:
    config = validate(config_dict(namespaces=["prod", "staging"], excludeNamespaces=["staging"]))
    objects = []
    for index, namespace in enumerate(["prod", "staging", "dev"]):
        objects += [
            service("web", namespace, (f"10.96.0.{index + 1}",)),
            slice_("web", namespace=namespace),
        ]
    result = plan(objects, config)
    assert prefixes(result) == ["10.96.0.1/32"]
    assert codes(result) == {
        "staging/web": {SkipCode.NOT_SELECTED},
        "dev/web": {SkipCode.NOT_SELECTED},
    }


def test_label_selector() -> None:
    config = validate(config_dict(labelSelector="expose=fabric,tier notin (internal)"))
    objects = [
        service("a", cluster_ips=("10.96.0.1",), labels={"expose": "fabric"}),
        service("b", cluster_ips=("10.96.0.2",), labels={"expose": "fabric", "tier": "internal"}),
        service("c", cluster_ips=("10.96.0.3",)),
        slice_("a"),
        slice_("b"),
        slice_("c"),
    ]
    assert prefixes(plan(objects, config)) == ["10.96.0.1/32"]


@pytest.mark.parametrize(
    ("opt_in", "annotation", "advertised"),
    [
        (False, None, True),
        (False, "false", False),
        (False, "FALSE", False),
        (False, "true", True),
        (True, None, False),
        (True, "true", True),
        (True, "yes", False),
        (True, "false", False),
    ],
)
def test_opt_in_and_opt_out(opt_in: bool, annotation: str | None, advertised: bool) -> None:
    config = validate(config_dict(optIn=opt_in))
    annotations = {"cosmolet.io/advertise": annotation} if annotation is not None else None
    result = plan([service("web", annotations=annotations), slice_("web")], config)
    assert bool(result.routes) is advertised
    if not advertised:
        assert codes(result) == {"default/web": {SkipCode.OPTED_OUT}}


# --- Attributes ------------------------------------------------------------------------------


def test_attributes_from_config_and_annotations() -> None:
    data = config_dict()
    data["bgp"].update(
        communities=["65001:100"], largeCommunities=["65001:1:1"], localPreference=100, med=5
    )
    config = validate(data)
    plain = plan([service("plain"), slice_("plain")], config)
    assert plain.routes[0].attributes == Attributes(("65001:100",), ("65001:1:1",), 100, 5, 0)
    tuned = plan(
        [
            service(
                "tuned",
                annotations={
                    "cosmolet.io/communities": "65001:200, no-export 65001:100",
                    "cosmolet.io/large-communities": "65001:2:2",
                    "cosmolet.io/local-preference": "300",
                    "cosmolet.io/med": "0",
                    "cosmolet.io/as-path-prepend": "3",
                },
            ),
            slice_("tuned"),
        ],
        config,
    )
    assert tuned.routes[0].attributes == Attributes(
        ("65001:100", "65001:200", "no-export"), ("65001:1:1", "65001:2:2"), 300, 0, 3
    )


@pytest.mark.parametrize(
    ("annotation", "value"),
    [
        ("cosmolet.io/communities", "65001:70000"),
        ("cosmolet.io/communities", "65001:1\nannounce route 0.0.0.0/0 next-hop self"),
        ("cosmolet.io/communities", "65001:1 med 5"),
        ("cosmolet.io/large-communities", "1:2"),
        ("cosmolet.io/local-preference", "-1"),
        ("cosmolet.io/local-preference", "4294967296"),
        ("cosmolet.io/med", "ten"),
        ("cosmolet.io/as-path-prepend", "11"),
        ("cosmolet.io/as-path-prepend", "²"),
    ],
)
def test_malformed_annotation_skips_the_service_and_names_it(annotation: str, value: str) -> None:
    result = plan([service("web", annotations={annotation: value}), slice_("web")])
    assert result.routes == ()
    (skip,) = result.skipped
    assert skip.code is SkipCode.BAD_ANNOTATION
    assert annotation in skip.reason


def test_shared_ip_is_one_route_healthy_if_any_with_merged_attributes() -> None:
    config = validate(config_dict(**ALLOW_EXTERNAL))
    a = service(
        "a",
        cluster_ips=("10.96.0.1",),
        lb_ips=["198.51.100.20"],
        type="LoadBalancer",
        annotations={
            "cosmolet.io/communities": "65001:1",
            "cosmolet.io/local-preference": "100",
            "cosmolet.io/med": "20",
            "cosmolet.io/as-path-prepend": "2",
        },
    )
    b = service(
        "b",
        cluster_ips=("10.96.0.2",),
        lb_ips=["198.51.100.20"],
        type="LoadBalancer",
        annotations={
            "cosmolet.io/communities": "65001:2",
            "cosmolet.io/local-preference": "200",
            "cosmolet.io/med": "10",
        },
    )
    both = plan([a, b, slice_("a"), slice_("b")], config)
    shared = next(route for route in both.routes if route.prefix == "198.51.100.20/32")
    assert shared.services == ("default/a", "default/b")
    assert shared.attributes == Attributes(("65001:1", "65001:2"), (), 200, 10, 0)

    only_b = plan([a, b, slice_("a", [endpoint(ready=False)]), slice_("b")], config)
    shared = next(route for route in only_b.routes if route.prefix == "198.51.100.20/32")
    assert shared.services == ("default/b",)
    assert prefixes(only_b) == ["10.96.0.2/32", "198.51.100.20/32"]

    neither = plan([a, b], config)
    assert neither.routes == ()


# --- Node ------------------------------------------------------------------------------------


def test_node_excluded_from_load_balancers_gets_an_empty_plan() -> None:
    excluded = node(labels={"node.kubernetes.io/exclude-from-external-load-balancers": ""})
    result = plan([service("web"), slice_("web"), excluded])
    assert result.routes == ()
    assert codes(result)["node1"] == {SkipCode.NODE_EXCLUDED}


def test_cordoned_node_drains_only_when_configured() -> None:
    objects = [service("web"), slice_("web"), node(unschedulable=True)]
    assert prefixes(plan(objects)) == ["10.96.0.10/32"]
    config = validate({**config_dict(), "node": {"withdrawWhenCordoned": True}})
    result = plan(objects, config)
    assert result.routes == ()
    assert codes(result)["node1"] == {SkipCode.NODE_CORDONED}


def test_other_nodes_do_not_drain_this_one() -> None:
    other = node("node2", labels={"node.kubernetes.io/exclude-from-external-load-balancers": ""})
    assert prefixes(plan([service("web"), slice_("web"), other])) == ["10.96.0.10/32"]


# --- maxRoutes ---------------------------------------------------------------------------------


def test_max_routes_keeps_the_oldest_services() -> None:
    config = validate(config_dict(maxRoutes=2))
    objects = [
        service("new", cluster_ips=("10.96.0.1",), created="2024-06-03T00:00:00Z"),
        service("old", cluster_ips=("10.96.0.9",), created="2024-01-01T00:00:00Z"),
        service("mid", cluster_ips=("10.96.0.5", "fd00::5"), created="2024-03-01T00:00:00Z"),
        slice_("new"),
        slice_("old"),
        *family_slices("mid", ("10.96.0.5", "fd00::5")),
    ]
    result = plan(objects, config)
    assert prefixes(result) == ["10.96.0.5/32", "10.96.0.9/32"]
    assert {(skip.service, skip.code) for skip in result.skipped} == {
        ("default/mid", SkipCode.MAX_ROUTES),
        ("default/new", SkipCode.MAX_ROUTES),
    }


# --- Malformed input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {
            "kind": "Service",
            "metadata": {"name": "x", "namespace": "d"},
            "spec": {"clusterIPs": "1"},
        },
        {"kind": "Service", "metadata": {"namespace": "d"}},
        {"kind": "Service", "metadata": {"name": "x"}},
        {"kind": "Service", "metadata": "nope"},
        {"kind": "EndpointSlice", "metadata": {"name": "s", "namespace": "d"}, "endpoints": [1]},
        {"kind": "Node", "metadata": {"name": "node1"}, "spec": {"unschedulable": "yes"}},
        {"metadata": {"name": "x"}},
        "a string",
        42,
    ],
)
def test_malformed_objects_are_reported_not_raised(bad: Any) -> None:
    result = plan([service("web"), slice_("web"), bad])
    assert prefixes(result) == ["10.96.0.10/32"]
    assert [skip.code for skip in result.skipped] == [SkipCode.MALFORMED]


def test_unknown_kinds_are_ignored() -> None:
    result = plan([service("web"), slice_("web"), {"kind": "ConfigMap", "metadata": {"name": "c"}}])
    assert prefixes(result) == ["10.96.0.10/32"]
    assert result.skipped == ()


def test_typed_lists_and_nested_lists_are_flattened() -> None:
    documents = [
        {
            "kind": "ServiceList",
            "items": [{k: v for k, v in service("web").items() if k != "kind"}],
        },
        {"kind": "List", "items": [{"kind": "EndpointSliceList", "items": [slice_("web")]}]},
    ]
    result = plan_from_documents(validate(config_dict()), "node1", documents)
    assert prefixes(result) == ["10.96.0.10/32"]


def test_plan_json_shape() -> None:
    result = plan([service("web"), slice_("web"), service("down", cluster_ips=("10.96.0.2",))])
    assert result.to_json() == {
        "node": "node1",
        "share": {
            "cluster": {"ipv4": 1, "ipv6": 0},
            "local": {"ipv4": 0, "ipv6": 0},
            "aggregate": {"ipv4": 0, "ipv6": 0},
        },
        "routes": [
            {
                "prefix": "10.96.0.10/32",
                "family": "ipv4",
                "kind": "cluster",
                "services": ["default/web"],
                "linkBandwidthMbps": None,
                "communities": [],
                "largeCommunities": [],
                "localPreference": None,
                "med": None,
                "asPathPrepend": 0,
            }
        ],
        "skipped": [
            {
                "service": "default/down",
                "code": "no-ready-endpoints",
                "reason": "no ready endpoints",
            }
        ],
    }
