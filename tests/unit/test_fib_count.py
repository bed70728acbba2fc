"""``lab.bench.fib``: counting the Services' FIB routes and next-hop groups on captured tables.

The samples are two leaves of the lab's fabric (FRR 8.4.4, kernel 6.18, hybrid mode: IPv4 over
IPv6 next hops) with four nodes in two racks, cosmolet advertising five ClusterIPs with
weighted ECMP on: ``ip -j route show`` (both families) and ``ip -j nexthop show``. leaf1's
zebra installs kernel nexthop objects, leaf2's plain multipath routes
(``no zebra nexthop kernel enable``, so its IPv4 next hops read ``169.254.0.1 onlink``):

- 10.96.0.1 Local, pods 2 + 1 on the rack's two nodes -> weights 66 / 33;
- 10.96.0.2 Local, one pod on each node -> 50 / 50;
- 10.96.0.3 Cluster -> both nodes, no link bandwidth -> 1 / 1;
- 10.96.0.4 Local, pods on rack 1 only (leaf1: the 50 / 50 group again; leaf2: via the spine);
- 10.96.0.5 Local, one pod in rack 2 (leaf1: via the spine; leaf2: one node).
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

from lab.bench.fib import FibCount, count, destination, hop

SAMPLES = Path(__file__).parent / "samples"
SERVICES = [ipaddress.ip_network("10.96.0.0/16")]


def sample(name: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    tables = json.loads((SAMPLES / name).read_text())
    return [*tables["route4"], *tables["route6"]], tables["nexthop"]


def test_nexthop_objects_and_multipath_sets_agree() -> None:
    routes, nexthops = sample("ip-json-leaf-nexthop-objects.json")
    # Four multipath routes, three groups: 10.96.0.2 and .4 share theirs (nhid 18).
    assert count(routes, nexthops, SERVICES) == FibCount(5, 4, 3, 3)


def test_plain_multipath_routes_have_no_objects() -> None:
    routes, nexthops = sample("ip-json-leaf-plain-routes.json")
    assert nexthops == []
    assert count(routes, nexthops, SERVICES) == FibCount(5, 3, 3, None)


def test_weights_split_groups_over_the_same_ports() -> None:
    """Weighted ECMP: 66/33, 50/50 and 1/1 over the same two ports are three groups."""
    routes, _ = sample("ip-json-leaf-plain-routes.json")
    multipath = [r for r in routes if len(r.get("nexthops", [])) > 1]
    ports = {frozenset(entry["dev"] for entry in r["nexthops"]) for r in multipath}
    assert ports == {frozenset({"eth1", "eth2"})}
    assert count(routes, [], SERVICES).nexthop_sets == 3


def test_only_bgp_routes_inside_the_cidrs_count() -> None:
    routes, nexthops = sample("ip-json-leaf-nexthop-objects.json")
    # The client's subnet behind the spine (10.2.0.0/24, BGP too) joins with a wider CIDR.
    wider = count(routes, nexthops, [ipaddress.ip_network("10.0.0.0/8")])
    assert (wider.routes, wider.nexthop_sets) == (6, 3)
    assert count(routes, nexthops, [ipaddress.ip_network("fd00:96::/112")]).routes == 0
    unrelated = {"dst": "10.96.9.9", "protocol": "kernel", "dev": "lo"}
    assert count([unrelated], [], SERVICES).routes == 0


def test_destinations_and_hops_as_ip_json_writes_them() -> None:
    assert destination({"dst": "10.96.0.1"}) == ipaddress.ip_network("10.96.0.1/32")
    assert destination({"dst": "10.96.0.0/16"}) == ipaddress.ip_network("10.96.0.0/16")
    assert destination({"dst": "default"}) is None
    via = {"via": {"family": "inet6", "host": "fe80::1"}, "dev": "eth2", "weight": 33}
    assert hop(via) == ("fe80::1", "eth2", 33)
    assert hop({"gateway": "169.254.0.1", "dev": "eth1"}) == ("169.254.0.1", "eth1", 1)
