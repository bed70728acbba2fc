"""``lab.ucmp``'s readers against the JSON that ``ip -j route`` and FRR 8.4's ``show bgp ...
json`` print (shapes taken from the lab's runs), without namespaces: what the weighted-ECMP
integration test and the demo conclude rests on them."""

from __future__ import annotations

import math
from typing import Any, cast

from lab import ucmp
from lab.netns import FrrRouter, Namespace


class _Kernel:
    def __init__(self, routes: list[dict[str, Any]]) -> None:
        self.routes = routes
        self.asked: tuple[str, ...] = ()

    def ip_json(self, *args: str) -> list[dict[str, Any]]:
        self.asked = args
        return self.routes


class _Frr:
    def __init__(self, table: dict[str, Any]) -> None:
        self.table = table
        self.asked = ""

    def json(self, command: str) -> dict[str, Any]:
        self.asked = command
        return self.table


def weights(routes: list[dict[str, Any]], prefix: str = "198.51.100.10") -> dict[str, int]:
    return ucmp.fib_weights(cast(Namespace, _Kernel(routes)), prefix)


def test_multipath_weights_by_interface_and_only_from_bgp() -> None:
    routes: list[dict[str, Any]] = [
        {
            "dst": "198.51.100.10",
            "protocol": "bgp",
            "nexthops": [
                {"gateway": "169.254.0.1", "dev": "eth1", "weight": 75, "flags": ["onlink"]},
                {"gateway": "169.254.0.1", "dev": "eth2", "weight": 25, "flags": ["onlink"]},
            ],
        },
        {"dst": "198.51.100.10", "protocol": "static", "dev": "eth9"},
    ]
    assert weights(routes) == {"eth1": 75, "eth2": 25}


def test_a_single_next_hop_weighs_1_and_no_route_is_empty() -> None:
    single = [{"dst": "10.96.0.10", "protocol": "bgp", "gateway": "169.254.0.1", "dev": "eth2"}]
    assert weights(single, "10.96.0.10") == {"eth2": 1}
    assert weights([]) == {}


def test_the_family_follows_the_prefix() -> None:
    kernel = _Kernel([])
    ucmp.fib_weights(cast(Namespace, kernel), "fd00:96::11")
    assert kernel.asked[:1] == ("-6",)


def test_link_bandwidths_by_peer_with_none_for_an_untagged_path() -> None:
    table = {
        "paths": [
            {
                "peer": {"peerId": "fe80::1", "interface": "eth1"},
                "extendedCommunity": {"string": "LB:65001:375000 (3.000 Mbps)"},
            },
            {"peer": {"peerId": "fe80::2", "interface": "eth2"}},
            {
                "peer": {"peerId": "10.1.3.1"},
                "extendedCommunity": {"string": "RT:65001:1 LB:65102:500000 (4.000 Mbps)"},
            },
        ]
    }
    frr = _Frr(table)
    found = ucmp.link_bandwidths(cast(FrrRouter, frr), "fd00:96::11")
    assert found == {"eth1": 375000, "eth2": None, "10.1.3.1": 500000}
    assert frr.asked == "show bgp ipv6 unicast fd00:96::11 json"


def test_flow_split_ratio_and_loss() -> None:
    split = ucmp.FlowSplit(2000, {"node1": 1501, "node2": 499, "node3": 0})
    assert split.lost == 0
    assert round(split.ratio("node1", "node2"), 2) == 3.01
    assert split.ratio("node1", "node3") == math.inf
    assert ucmp.describe({"node2": 25, "node1": 75}) == "node1 weight 75, node2 weight 25"
