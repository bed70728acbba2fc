"""The aggregate mode: a ClusterIP CIDR advertised as one route while a Cluster-policy
ClusterIP inside it is healthy; Local-policy ClusterIPs still as host routes (weighted)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosmolet.config.schema import Config, ConfigError, validate
from cosmolet.engine.builder import PlanBuilder
from cosmolet.engine.model import Attributes, Family, Plan, Route, RouteKind, route_json
from cosmolet.engine.objects import EndpointSlice, Service, decode_object
from cosmolet.engine.plan import compute_plan, plan_from_documents
from cosmolet.plan_diff import diff_nodes, format_text, to_json
from tests.factories import config_dict, endpoint, service, slice_

AGGREGATES = ["10.96.0.0/24", "fd00:96::/120"]


def config(aggregate: list[str] | None = None, **services: Any) -> Config:
    cluster_ip = {"enabled": True, "aggregate": AGGREGATES if aggregate is None else aggregate}
    return validate(config_dict(advertise={"clusterIP": cluster_ip}, **services))


def healthy(name: str, *ips: str, here: int = 1, elsewhere: int = 1, **kw: Any) -> list[Any]:
    """A Service and one slice per family of its ClusterIPs, with endpoints here and elsewhere."""
    objects: list[Any] = [service(name, cluster_ips=ips, **kw)]
    for family in sorted({"IPv6" if ":" in ip else "IPv4" for ip in ips}):
        base = "fd00:244::" if family == "IPv6" else "10.244.0."
        endpoints = [endpoint(f"{base}{i}", "node1") for i in range(here)]
        endpoints += [endpoint(f"{base}{100 + i}", "node2") for i in range(elsewhere)]
        objects.append(slice_(name, endpoints, suffix=family.lower(), address_type=family))
    return objects


def plan(objects: list[Any], cfg: Config | None = None) -> Plan:
    return plan_from_documents(cfg or config(), "node1", objects)


def by_prefix(result: Plan) -> dict[str, Route]:
    return {route.prefix: route for route in result.routes}


def test_cluster_services_inside_become_the_aggregate_local_ones_stay_host_routes() -> None:
    result = plan(
        healthy("a", "10.96.0.1")
        + healthy("b", "10.96.0.2")
        + healthy("loc", "10.96.0.3", here=3, internal_policy="Local")
        + healthy("out", "10.96.7.7")  # outside every aggregate: its own /32
        + healthy("lb", "10.96.0.4", type="LoadBalancer")
    )
    routes = by_prefix(result)
    assert sorted(routes) == ["10.96.0.0/24", "10.96.0.3/32", "10.96.7.7/32"]
    aggregate = routes["10.96.0.0/24"]
    assert (aggregate.kind, aggregate.services, aggregate.members) == (
        RouteKind.AGGREGATE,
        (),
        3,
    )
    assert aggregate.attributes == Attributes()  # the node's defaults, no bandwidth
    local = routes["10.96.0.3/32"]
    assert (local.kind, local.local_endpoints, local.attributes.link_bandwidth) == (
        RouteKind.LOCAL,
        3,
        3 * 125_000,
    )
    assert routes["10.96.7.7/32"].kind is RouteKind.CLUSTER
    assert result.to_json()["share"] == {
        "cluster": {"ipv4": 1, "ipv6": 0},
        "local": {"ipv4": 1, "ipv6": 0},
        "aggregate": {"ipv4": 1, "ipv6": 0},
    }
    assert route_json(aggregate)["serviceCount"] == 3


def test_the_aggregate_carries_the_nodes_attributes_not_a_services() -> None:
    cfg = validate(
        {
            **config_dict(advertise={"clusterIP": {"enabled": True, "aggregate": AGGREGATES}}),
            "bgp": {"asn": 65001, "communities": ["65001:7"], "peers": []},
        }
    )
    tagged = healthy("a", "10.96.0.1", annotations={"cosmolet.io/communities": "65001:9"})
    aggregate = by_prefix(plan(tagged, cfg))["10.96.0.0/24"]
    assert aggregate.attributes == Attributes(communities=("65001:7",))


def test_present_exactly_while_one_inside_is_healthy_anywhere() -> None:
    nowhere_here = healthy("a", "10.96.0.1", here=0, elsewhere=2)
    assert "10.96.0.0/24" in by_prefix(plan(nowhere_here))  # Cluster policy: healthy anywhere
    unhealthy = healthy("a", "10.96.0.1", here=0, elsewhere=0)
    only_local = healthy("loc", "10.96.0.3", internal_policy="Local")
    assert by_prefix(plan(unhealthy + only_local)).keys() == {"10.96.0.3/32"}


def test_withdrawn_when_the_last_one_inside_goes() -> None:
    builder = PlanBuilder(config(), "node1")
    for name, ip in (("a", "10.96.0.1"), ("b", "10.96.0.2")):
        svc, endpoint_slice = healthy(name, ip)
        builder.set_service(f"default/{name}", decode_object(svc))  # type: ignore[arg-type]
        builder.set_slice(f"default/{name}-ipv4", decode_object(endpoint_slice))  # type: ignore[arg-type]
    first = builder.take_delta()
    assert list(first) == ["10.96.0.0/24"] and first["10.96.0.0/24"].members == 2  # type: ignore[union-attr]
    builder.set_service("default/a", None)
    (kept,) = builder.take_delta().values()  # one member fewer: the same attributes
    assert kept is not None and kept.members == 1 and kept.attributes == Attributes()
    builder.set_slice("default/b-ipv4", None)
    assert builder.take_delta() == {"10.96.0.0/24": None}


def test_ipv6_aggregate() -> None:
    routes = by_prefix(
        plan(healthy("dual", "10.96.0.1", "fd00:96::5") + healthy("v6", "fd00:96::6"))
    )
    assert sorted(routes) == ["10.96.0.0/24", "fd00:96::/120"]
    assert routes["fd00:96::/120"].family is Family.IPV6
    assert routes["fd00:96::/120"].members == 2
    v4_down = healthy("dual", "10.96.0.1", "fd00:96::5")
    v4_down[1] = slice_("dual", [endpoint(node="node1", ready=False)], suffix="ipv4")
    assert by_prefix(plan(v4_down)).keys() == {"fd00:96::/120"}  # per family


def test_the_aggregate_counts_once_for_max_routes() -> None:
    many = [obj for i in range(1, 6) for obj in healthy(f"s{i}", f"10.96.0.{i}")]
    result = plan(many + healthy("out", "10.96.7.7"), config(maxRoutes=2))
    assert [r.prefix for r in result.routes] == ["10.96.0.0/24", "10.96.7.7/32"]
    result = plan(
        many + healthy("out", "10.96.7.7", created="2020-01-01T00:00:00Z"), config(maxRoutes=1)
    )
    assert [r.prefix for r in result.routes] == ["10.96.7.7/32"]
    # each Service inside the aggregate left out is told why
    assert sorted(s.service for s in result.skipped) == [f"default/s{i}" for i in range(1, 6)]


@pytest.mark.parametrize(
    ("cluster_ip", "message"),
    [
        (
            {"aggregate": ["10.96.0.0/16", "10.96.1.0/24"]},
            r"aggregate: aggregate\[1\] \(10.96.1.0/24\) overlaps aggregate\[0\]",
        ),
        ({"aggregate": ["10.96.0.1/32"]}, r"aggregate\[0\] \(10.96.0.1/32\) is a host route"),
        ({"aggregate": ["fd00::1/128"]}, r"aggregate\[0\] \(fd00::1/128\) is a host route"),
        (
            {"aggregate": ["10.128.0.0/16"], "allowedCIDRs": ["10.96.0.0/12", "fd00::/64"]},
            r"aggregate\[0\] \(10.128.0.0/16\) is not inside clusterIP.allowedCIDRs",
        ),
        (
            {"aggregate": ["10.96.0.0/16"], "enabled": False},
            "aggregate: set while clusterIP.enabled is false",
        ),
        ({"aggregate": ["10.96.0.0/33"]}, "expected a CIDR"),
    ],
)
def test_config_errors_name_the_aggregate(cluster_ip: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate(config_dict(advertise={"clusterIP": {"enabled": True, **cluster_ip}}))


@pytest.mark.parametrize(
    "selection",
    [
        {"excludeNamespaces": ["kube-system"]},
        {"namespaces": ["web"]},
        {"labelSelector": "tier=web"},
        {"optIn": True},
    ],
)
def test_an_aggregate_cannot_be_combined_with_a_selection(selection: dict[str, Any]) -> None:
    """The aggregate would carry the left-out Services' ClusterIPs to the fabric anyway."""
    key = next(iter(selection))
    cluster_ip = {"enabled": True, "aggregate": ["10.96.0.0/16"]}
    with pytest.raises(ConfigError, match=rf"aggregate cannot be combined with services.{key}"):
        validate(config_dict(advertise={"clusterIP": cluster_ip}, **selection))
    validate(config_dict(**selection))


def test_the_unit_per_endpoint_stays_where_a_leafs_sum_fits_32_bits() -> None:
    with pytest.raises(ConfigError, match="mbpsPerEndpoint"):
        validate(config_dict(weightedEcmp={"mbpsPerEndpoint": 11}))


IPS = ["10.96.0.1", "10.96.0.2", "10.96.0.3", "10.96.7.7", "fd00:96::1", "fd00:96::2"]


@st.composite
def steps(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """Services appearing, changing policy and health, and going, in any order."""
    ops: list[tuple[str, Any]] = []
    for _ in range(draw(st.integers(1, 30))):
        index = draw(st.integers(0, len(IPS) - 1))
        name = f"s{index}"
        if draw(st.integers(0, 4)) == 0:
            ops.append((name, None))
            continue
        policy = draw(st.sampled_from(["Cluster", "Local"]))
        here, elsewhere = draw(st.integers(0, 3)), draw(st.integers(0, 2))
        ops.append(
            (
                name,
                healthy(name, IPS[index], here=here, elsewhere=elsewhere, internal_policy=policy),
            )
        )
    return ops


@settings(max_examples=200, deadline=None)
@given(steps(), st.integers(1, 4))
def test_incremental_aggregates_equal_the_reference(ops: list[tuple[str, Any]], every: int) -> None:
    """Many Services sharing one aggregate (the general property test rarely makes two): the
    builder's route, member count and withdrawals agree with ``compute_plan`` at every step."""
    cfg = config()
    builder = PlanBuilder(cfg, "node1")
    current: dict[str, list[Any]] = {}
    published: dict[str, Route] = {}
    for step, (name, objects) in enumerate(ops):
        old = current.pop(name, None)
        for obj in old or ():
            if obj["kind"] == "EndpointSlice":
                builder.set_slice(f"default/{obj['metadata']['name']}", None)
        if objects is None:
            builder.set_service(f"default/{name}", None)
        else:
            current[name] = objects
            for obj in objects:
                record = decode_object(obj)
                if isinstance(record, Service):
                    builder.set_service(record.key, record)
                elif isinstance(record, EndpointSlice):
                    builder.set_slice(record.key, record)
        if step % every == 0 or step == len(ops) - 1:
            for prefix, route in builder.take_delta().items():
                if route is None:
                    published.pop(prefix, None)
                else:
                    published[prefix] = route
    records = [decode_object(obj) for objects in current.values() for obj in objects]
    reference = compute_plan(
        cfg,
        "node1",
        None,
        [r for r in records if isinstance(r, Service)],
        [r for r in records if isinstance(r, EndpointSlice)],
    )
    assert published == {route.prefix: route for route in reference.routes}
    assert builder.plan() == reference


def test_cosmolet_diff_shows_turning_on_aggregates_and_weights() -> None:
    """``cosmolet diff`` of a config change: the /32s replaced by the aggregate (named by its
    count), and a Local route's weight as a changed attribute."""
    objects = (
        healthy("a", "10.96.0.1")
        + healthy("b", "10.96.0.2")
        + healthy("loc", "10.96.0.3", here=2, internal_policy="Local")
    )
    records = [record for record in map(decode_object, objects) if record is not None]
    old = config(aggregate=[], weightedEcmp={"enabled": False})
    (diff,) = diff_nodes(old, config(), ["node1"], records)  # type: ignore[arg-type]
    assert [r.prefix for r in diff.added] == ["10.96.0.0/24"]
    assert sorted(r.prefix for r in diff.removed) == ["10.96.0.1/32", "10.96.0.2/32"]
    text = format_text([diff])
    assert f"+ {'10.96.0.0/24':<26} aggregate of 2 Services" in text
    assert f"~ {'10.96.0.3/32':<26} linkBandwidthMbps - -> 2.0" in text
    (changed,) = to_json([diff])["nodes"][0]["changed"]  # type: ignore[index]
    assert (changed["old"]["linkBandwidthMbps"], changed["new"]["linkBandwidthMbps"]) == (None, 2.0)
