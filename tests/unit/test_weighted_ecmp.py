"""Weighted ECMP: a Local-policy route carries a link bandwidth in proportion to this node's
usable endpoints of its family, on the wire as ExaBGP reads it; a count change re-announces."""

from __future__ import annotations

import io
import ipaddress
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosmolet.agent.journal import Journal
from cosmolet.agent.reconciler import Reconciler
from cosmolet.agent.speaker import Speaker
from cosmolet.config.schema import validate
from cosmolet.engine.builder import PlanBuilder
from cosmolet.engine.model import Attributes, Family, Plan, Route, RouteKind
from cosmolet.engine.objects import decode_object
from cosmolet.engine.plan import plan_from_documents
from cosmolet.engine.weights import MAX_LINK_BANDWIDTH
from cosmolet.exabgp.api import Session, announce
from cosmolet.exabgp.config import sessions
from tests.factories import config_dict, endpoint, service, slice_
from tests.unit.test_agent import cluster

LB = {"loadBalancerIPs": {"enabled": True, "allowedCIDRs": ["192.0.2.0/24", "2001:db8::/32"]}}
MBIT = 125_000  # bytes per second


def config(**services: Any) -> Any:
    return validate(config_dict(advertise=LB, **services))


def endpoints(here: int, elsewhere: int = 0, **conditions: Any) -> list[dict[str, Any]]:
    return [endpoint(f"10.244.0.{i}", "node1", **conditions) for i in range(here)] + [
        endpoint(f"10.244.1.{i}", "node2", **conditions) for i in range(elsewhere)
    ]


def lb_service(name: str, ip: str, policy: str = "Local", **kw: Any) -> dict[str, Any]:
    """A LoadBalancer Service (by default with no ClusterIP, to keep to the LB IP's route)."""
    kw.setdefault("cluster_ips", None)
    return service(name, type="LoadBalancer", lb_ips=[ip], external_policy=policy, **kw)


def plan(objects: list[Any], **services: Any) -> Plan:
    return plan_from_documents(config(**services), "node1", objects)


def route(result: Plan, prefix: str) -> Route:
    return next(r for r in result.routes if r.prefix == prefix)


def test_counts_three_and_one_give_values_three_to_one() -> None:
    result = plan(
        [
            lb_service("big", "192.0.2.1", cluster_ips=("10.96.0.1",)),
            slice_("big", endpoints(3, elsewhere=2)),
            lb_service("small", "192.0.2.2", cluster_ips=("10.96.0.2",)),
            slice_("small", endpoints(1, elsewhere=4)),
        ]
    )
    big, small = route(result, "192.0.2.1/32"), route(result, "192.0.2.2/32")
    assert (big.kind, big.local_endpoints) == (RouteKind.LOCAL, 3)
    assert (small.kind, small.local_endpoints) == (RouteKind.LOCAL, 1)
    assert big.attributes.link_bandwidth == 3 * MBIT  # default 1 Mbit/s per endpoint
    assert small.attributes.link_bandwidth == 1 * MBIT
    # the ClusterIPs have a Cluster internal policy: plain ECMP
    assert route(result, "10.96.0.1/32").kind is RouteKind.CLUSTER
    assert route(result, "10.96.0.1/32").attributes.link_bandwidth is None


def test_cluster_policy_and_disabled_carry_no_bandwidth() -> None:
    objects = [
        lb_service("web", "192.0.2.1", policy="Cluster"),
        slice_("web", endpoints(3)),
        lb_service("loc", "192.0.2.2"),
        slice_("loc", endpoints(2)),
    ]
    cluster_route = route(plan(objects), "192.0.2.1/32")
    assert cluster_route.kind is RouteKind.CLUSTER
    assert cluster_route.attributes == Attributes()
    off = route(plan(objects, weightedEcmp={"enabled": False}), "192.0.2.2/32")
    assert (off.kind, off.local_endpoints, off.attributes) == (RouteKind.LOCAL, 2, Attributes())
    unit = route(plan(objects, weightedEcmp={"mbpsPerEndpoint": 5}), "192.0.2.2/32")
    assert unit.attributes.link_bandwidth == 2 * 5 * MBIT


def test_internal_traffic_policy_local_clusterip_is_weighted_per_family() -> None:
    dual = ("10.96.0.5", "fd00:96::5")
    objects = [
        service("web", cluster_ips=dual, internal_policy="Local"),
        slice_("web", endpoints(2, elsewhere=1), suffix="v4"),
        slice_("web", endpoints(1), suffix="v4b"),  # endpoints are counted, not slices
        slice_(
            "web",
            [endpoint(f"fd00:244::{i}", "node1") for i in range(5)],
            suffix="v6",
            address_type="IPv6",
        ),
        slice_("web", [endpoint("x.example", "node1")], suffix="fq", address_type="FQDN"),
    ]
    result = plan(objects)
    assert route(result, "10.96.0.5/32").local_endpoints == 3
    assert route(result, "fd00:96::5/128").local_endpoints == 5
    assert route(result, "fd00:96::5/128").attributes.link_bandwidth == 5 * MBIT


def test_serving_terminating_endpoints_count_only_when_none_is_ready_here() -> None:
    terminating = [endpoint(f"10.244.2.{i}", "node1", ready=False, serving=True, terminating=True)
                   for i in range(4)]  # fmt: skip
    objects = [lb_service("web", "192.0.2.1"), slice_("web", endpoints(1) + terminating)]
    assert route(plan(objects), "192.0.2.1/32").local_endpoints == 1
    objects = [lb_service("web", "192.0.2.1"), slice_("web", terminating), slice_("web", endpoints(
        0, elsewhere=3), suffix="b")]  # fmt: skip
    assert route(plan(objects), "192.0.2.1/32").local_endpoints == 4


def test_services_sharing_an_address_sum_their_endpoints_unless_one_is_cluster() -> None:
    objects = [
        lb_service("a", "192.0.2.1", cluster_ips=("10.96.0.1",)),
        slice_("a", endpoints(2)),
        lb_service("b", "192.0.2.1", cluster_ips=("10.96.0.2",)),
        slice_("b", endpoints(3)),
    ]
    shared = route(plan(objects), "192.0.2.1/32")
    assert (shared.kind, shared.local_endpoints) == (RouteKind.LOCAL, 5)
    assert shared.attributes.link_bandwidth == 5 * MBIT
    objects[2] = lb_service("b", "192.0.2.1", policy="Cluster", cluster_ips=("10.96.0.2",))
    mixed = route(plan(objects), "192.0.2.1/32")
    assert (mixed.kind, mixed.attributes.link_bandwidth) == (RouteKind.CLUSTER, None)


def test_the_value_is_capped_where_exabgp_stops() -> None:
    objects = [lb_service("web", "192.0.2.1"), slice_("web", endpoints(3500))]
    capped = route(plan(objects, weightedEcmp={"mbpsPerEndpoint": 10}), "192.0.2.1/32")
    assert capped.attributes.link_bandwidth == MAX_LINK_BANDWIDTH == 2**32 - 1


V4 = Session(ipaddress.ip_address("10.0.1.0"), 65001, 65101, (Family.IPV4,))


def exabgp_parses(line: str) -> list[str]:
    """What ExaBGP's API makes of an ``announce attributes`` line (its own parser, as the
    running process calls it): each route as ExaBGP writes it, or ``[]`` when refused."""
    from exabgp.configuration.configuration import Configuration
    from exabgp.environment import getenv
    from exabgp.logger import log
    from exabgp.reactor.api import API
    from exabgp.reactor.api.command.limit import extract_neighbors

    log.init(getenv())
    api = API(Configuration([]))
    _neighbors, command = extract_neighbors(line)
    return [change.extensive() for change in api.api_attributes(command, ["x"])]


@pytest.mark.parametrize(
    ("local_as", "field", "hex_as"), [(65001, 65001, "FDE9"), (4200000001, 23456, "5BA0")]
)
def test_the_wire_line_is_what_exabgp_parses(local_as: int, field: int, hex_as: str) -> None:
    session = Session(ipaddress.ip_address("10.0.1.0"), local_as, 65101, (Family.IPV4,))
    attributes = Attributes(communities=("65001:1",), link_bandwidth=3 * MBIT)
    (command,) = announce(session, attributes, ["192.0.2.1/32", "192.0.2.2/32"])
    assert command.line == (
        "neighbor 10.0.1.0 announce attributes next-hop self community [65001:1] "
        f"extended-community [bandwidth:{field}:375000] nlri 192.0.2.1/32 192.0.2.2/32"
    )
    # type 0x40 0x04 (link bandwidth, non-transitive), the AS, 375000.0 as an IEEE float
    assert exabgp_parses(command.line) == [
        f"{prefix} next-hop self community 65001:1 extended-community 0x4004{hex_as}48B71B00"
        for prefix in ("192.0.2.1/32", "192.0.2.2/32")
    ]


def test_exabgp_refuses_a_fraction_or_more_than_32_bits() -> None:
    """Why the value is whole bytes and capped (``cosmolet.engine.weights``)."""
    head = "neighbor 10.0.1.0 announce attributes next-hop self extended-community"
    assert exabgp_parses(f"{head} [bandwidth:65001:{MAX_LINK_BANDWIDTH}] nlri 192.0.2.1/32")
    assert exabgp_parses(f"{head} [bandwidth:65001:375000.5] nlri 192.0.2.1/32") == []
    assert (
        exabgp_parses(f"{head} [bandwidth:65001:{MAX_LINK_BANDWIDTH + 1}] nlri 192.0.2.1/32") == []
    )


V4 = Session(ipaddress.ip_address("10.0.1.0"), 65001, 65101, (Family.IPV4,))


def test_a_count_change_is_one_reannounce_and_no_withdraw() -> None:
    builder = PlanBuilder(config(), "node1")
    speaker = Speaker([V4])
    builder.set_service("default/web", decode_object(lb_service("web", "192.0.2.1")))  # type: ignore[arg-type]
    previous = 0
    for count in (3, 1, 1, 4):
        slice_record = decode_object(slice_("web", endpoints(count, elsewhere=count)))
        builder.set_slice("default/web-abcde", slice_record)  # type: ignore[arg-type]
        changes = speaker.update_routes(builder.take_delta())
        assert changes.withdrawn == set()
        if count == previous:
            assert changes.lines == []  # the same count: nothing at all
        else:
            assert changes.lines == [
                "neighbor 10.0.1.0 announce attributes next-hop self extended-community "
                f"[bandwidth:65001:{count * MBIT}] nlri 192.0.2.1/32"
            ]
        previous = count


def test_the_agent_reannounces_a_count_change_at_once_not_held(tmp_path: Path) -> None:
    clock = [100.0]
    cfg = config()
    out = io.StringIO()
    agent = Reconciler(cfg, sessions(cfg), out, Journal(tmp_path / "j"), clock=lambda: clock[0])
    for count in (3, 1):
        objects = [lb_service("web", "192.0.2.1"), slice_("web", endpoints(count))]
        agent.handle_batch(cluster(agent, objects=objects))
        clock[0] += 0.1  # well inside the flap hold's riseSeconds
    lines = out.getvalue().splitlines()
    assert [line.split()[2] for line in lines] == ["announce", "announce"]
    assert lines[-1].endswith(f"[bandwidth:65001:{MBIT}] nlri 192.0.2.1/32")
    assert not agent.hold.held


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=2, max_size=5))
def test_values_are_in_the_ratio_of_the_counts(counts: list[tuple[int, int]]) -> None:
    """Any spread of ready endpoints here and elsewhere: a route exactly when one is here, its
    value ``count`` units, so any two routes' values are in the ratio of their counts."""
    objects: list[Any] = []
    for index, (here, elsewhere) in enumerate(counts):
        name = f"s{index}"
        objects += [lb_service(name, f"192.0.2.{index + 1}", cluster_ips=(f"10.96.0.{index + 1}",))]
        objects += [slice_(name, endpoints(here, elsewhere))]
    result = plan(objects)
    for index, (here, _elsewhere) in enumerate(counts):
        wanted = [r for r in result.routes if r.prefix == f"192.0.2.{index + 1}/32"]
        assert len(wanted) == (1 if here else 0)
        if here:
            assert wanted[0].local_endpoints == here
            assert wanted[0].attributes.link_bandwidth == here * MBIT
