"""Peer resolution (``cosmolet.engine.peers``): one shared config, one node's peers, ASN and
router id from its Node and its addresses. Table tests for each rule and each bad input, and
properties over generated interfaces and labels."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosmolet.config.schema import Config, validate
from cosmolet.engine.model import Family
from cosmolet.engine.objects import Node, decode_object
from cosmolet.engine.peers import (
    Gateway,
    NodeAddresses,
    ResolvedPeers,
    bfd_links,
    other_end,
    resolve_peers,
)
from tests.factories import node as node_dict

V4, V6 = Family.IPV4, Family.IPV6


def config(*peers: dict[str, Any], **bgp: Any) -> Config:
    """``routerId`` 192.0.2.254 unless given (``None``: left out)."""
    data = {"asn": 65001, "routerId": "192.0.2.254", "peers": list(peers), **bgp}
    return validate({"nodeName": "node1", "bgp": {k: v for k, v in data.items() if v is not None}})


def a_node(labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> Node:
    found = decode_object(node_dict("node1", labels, annotations=annotations))
    assert isinstance(found, Node)
    return found


def addresses(
    interfaces: dict[str, str], gateways: dict[Family, Gateway] | None = None
) -> NodeAddresses:
    """``{"eth1": "10.0.1.1/31 fd00:1::1/127"}``: each interface's addresses, space-separated."""
    return NodeAddresses(
        {
            name: tuple(ipaddress.ip_interface(a) for a in text.split())
            for name, text in interfaces.items()
        },
        gateways or {},
    )


def peers(resolved: ResolvedPeers) -> list[tuple[str, str, str, str]]:
    """(address, family, local address, origin) of each resolved peer."""
    return [(str(p.address), str(p.family), str(p.local_address), p.origin) for p in resolved.peers]


def problems(resolved: ResolvedPeers) -> list[str]:
    return [str(problem) for problem in resolved.problems]


RACK = addresses({"eth1": "10.1.1.1/31 fd10:1:1::1/127 fe80::a/64", "eth2": "10.9.1.1/31"})


# --- interface peers ------------------------------------------------------------------------


def test_an_interface_gives_the_other_end_of_its_31_and_127() -> None:
    resolved = resolve_peers(config({"interface": "eth1", "asn": 65101}), None, RACK)
    assert peers(resolved) == [
        ("10.1.1.0", "ipv4", "10.1.1.1", "bgp.peers[0] (interface eth1)"),
        ("fd10:1:1::", "ipv6", "fd10:1:1::1", "bgp.peers[0] (interface eth1)"),
    ]
    assert [p.asn for p in resolved.peers] == [65101, 65101]
    assert [p.interface for p in resolved.peers] == ["eth1", "eth1"]
    assert resolved.problems == ()


@pytest.mark.parametrize(
    ("own", "other"),
    [
        ("10.0.0.0/31", "10.0.0.1"),
        ("10.0.0.1/31", "10.0.0.0"),
        ("10.0.0.1/30", "10.0.0.2"),
        ("10.0.0.2/30", "10.0.0.1"),
        ("10.0.0.0/30", None),  # the network address: no other host
        ("10.0.0.3/30", None),  # the broadcast address
        ("fd00::/127", "fd00::1"),
        ("fd00::1/127", "fd00::"),
    ],
)
def test_the_other_end(own: str, other: str | None) -> None:
    found = other_end(ipaddress.ip_interface(own))
    assert (None if found is None else str(found)) == other


def test_families_limit_what_an_interface_peers_for() -> None:
    resolved = resolve_peers(
        config({"interface": "eth1", "asn": 65101, "families": ["ipv6"]}), None, RACK
    )
    assert [str(p.address) for p in resolved.peers] == ["fd10:1:1::"]


@pytest.mark.parametrize(
    ("interfaces", "expected"),
    [
        (
            {"eth1": "10.1.1.1/24"},
            "bgp.peers[0].interface: eth1: its ipv4 addresses (10.1.1.1/24) are not on a /31 or "
            "/30",
        ),
        ({"eth0": "10.1.1.1/31"}, "bgp.peers[0].interface: eth1 is not present on this node"),
        ({"eth1": "fe80::a/64"}, "bgp.peers[0].interface: eth1 has no /31, /30 or /127 address"),
        ({"eth1": ""}, "bgp.peers[0].interface: eth1 has no /31, /30 or /127 address"),
        (
            {"eth1": "10.1.1.0/30 fd00::1/64"},
            "bgp.peers[0].interface: eth1: 10.1.1.0/30 is the network or broadcast address of "
            "its /30; its ipv6 addresses (fd00::1/64) are not on a /127",
        ),
    ],
)
def test_an_interface_that_gives_no_peer_is_a_problem_naming_the_entry(
    interfaces: dict[str, str], expected: str
) -> None:
    """The other entries keep working: the explicit peer is resolved whatever eth1 has."""
    resolved = resolve_peers(
        config({"interface": "eth1", "asn": 65101}, {"address": "192.0.2.1", "asn": 65000}),
        None,
        addresses(interfaces),
    )
    assert problems(resolved) == [expected]
    assert [str(p.address) for p in resolved.peers] == ["192.0.2.1"]


def test_a_second_link_address_is_reported_and_the_first_used() -> None:
    resolved = resolve_peers(
        config({"interface": "eth1", "asn": 1, "families": ["ipv4"]}),
        None,
        addresses({"eth1": "10.1.1.3/31 10.1.1.1/31"}),
    )
    assert [str(p.address) for p in resolved.peers] == ["10.1.1.0"]
    assert problems(resolved) == [
        "bgp.peers[0].interface: eth1: peered from 10.1.1.1/31, not 10.1.1.3/31"
    ]


# --- the gateway ----------------------------------------------------------------------------


def test_the_gateway_per_family_present() -> None:
    links = addresses(
        {"eth0": "10.0.0.7/24 2001:db8::7/64 fe80::7/64"},
        {
            V4: Gateway(ipaddress.ip_address("10.0.0.1"), "eth0"),
            V6: Gateway(ipaddress.ip_address("fe80::1"), "eth0"),
        },
    )
    resolved = resolve_peers(config({"address": "gateway", "asn": 65000}), None, links)
    assert peers(resolved) == [
        ("10.0.0.1", "ipv4", "10.0.0.7", "bgp.peers[0] (gateway via eth0)"),
        ("fe80::1", "ipv6", "fe80::7", "bgp.peers[0] (gateway via eth0)"),
    ]
    assert [p.link_local for p in resolved.peers] == [False, True]


@pytest.mark.parametrize(
    ("families", "expected"),
    [
        (None, "bgp.peers[0].address: gateway: this node has no default route"),
        (["ipv6"], "bgp.peers[0].address: gateway: no ipv6 default route"),
    ],
)
def test_a_gateway_that_does_not_exist(families: list[str] | None, expected: str) -> None:
    entry: dict[str, Any] = {"address": "gateway", "asn": 65000}
    if families:
        entry["families"] = families
    resolved = resolve_peers(config(entry), None, addresses({"eth0": "10.0.0.7/24"}))
    assert resolved.peers == ()
    assert problems(resolved) == [expected]


def test_only_the_families_present_without_a_problem() -> None:
    links = addresses(
        {"eth0": "10.0.0.7/24"}, {V4: Gateway(ipaddress.ip_address("10.0.0.1"), "eth0")}
    )
    resolved = resolve_peers(config({"address": "gateway", "asn": 65000}), None, links)
    assert [str(p.address) for p in resolved.peers] == ["10.0.0.1"]
    assert resolved.problems == ()


# --- nodeSelector ---------------------------------------------------------------------------

SELECTED = {"address": "192.0.2.9", "asn": 65000}


@pytest.mark.parametrize(
    ("selector", "labels", "used"),
    [
        ({"matchLabels": {"rack": "r1"}}, {"rack": "r1"}, True),
        ({"matchLabels": {"rack": "r1"}}, {"rack": "r2"}, False),
        (
            {"matchExpressions": [{"key": "rack", "operator": "In", "values": ["r1", "r3"]}]},
            {"rack": "r3"},
            True,
        ),
        ({"matchExpressions": [{"key": "rack", "operator": "NotIn", "values": ["r1"]}]}, {}, True),
        (
            {"matchExpressions": [{"key": "rack", "operator": "NotIn", "values": ["r1"]}]},
            {"rack": "r1"},
            False,
        ),
        ({"matchExpressions": [{"key": "edge", "operator": "Exists"}]}, {"edge": ""}, True),
        ({"matchExpressions": [{"key": "edge", "operator": "DoesNotExist"}]}, {"edge": "x"}, False),
        (
            {
                "matchLabels": {"rack": "r1"},
                "matchExpressions": [{"key": "edge", "operator": "Exists"}],
            },
            {"rack": "r1"},
            False,
        ),
        ({}, {}, True),  # empty: every node, as in Kubernetes
    ],
)
def test_a_node_selector_on_the_nodes_labels(
    selector: dict[str, Any], labels: dict[str, str], used: bool
) -> None:
    resolved = resolve_peers(
        config({**SELECTED, "nodeSelector": selector}), a_node(labels), NodeAddresses()
    )
    assert bool(resolved.peers) is used
    assert bool(resolved.unused) is not used
    assert resolved.problems == ()


def test_a_selector_that_matches_nothing_here_is_named_and_the_rest_peer() -> None:
    resolved = resolve_peers(
        config(
            {**SELECTED, "nodeSelector": {"matchLabels": {"rack": "r9"}}},
            {"address": "192.0.2.1", "asn": 65000},
        ),
        a_node({"rack": "r1"}),
        NodeAddresses(),
    )
    assert [str(u) for u in resolved.unused] == [
        "bgp.peers[0]: nodeSelector rack=r9 does not match this node's labels"
    ]
    assert [str(p.address) for p in resolved.peers] == ["192.0.2.1"]


def test_without_the_node_object_no_selector_matches() -> None:
    resolved = resolve_peers(
        config({**SELECTED, "nodeSelector": {"matchLabels": {"rack": "r1"}}}), None, NodeAddresses()
    )
    assert resolved.peers == ()
    assert "not used until this node's Node object is known" in str(resolved.unused[0])


def test_two_entries_for_one_switch_peer_once() -> None:
    resolved = resolve_peers(
        config({"interface": "eth2", "asn": 65000}, {"address": "10.9.1.0", "asn": 65000}),
        None,
        RACK,
    )
    assert [p.origin for p in resolved.peers] == ["bgp.peers[0] (interface eth2)"]
    assert problems(resolved) == [
        "bgp.peers[1]: 10.9.1.0 is bgp.peers[0]'s peer here too: peered once"
    ]


def test_an_address_peer_is_located_on_its_link() -> None:
    resolved = resolve_peers(config({"address": "10.9.1.0", "asn": 65000}), None, RACK)
    (peer,) = resolved.peers
    assert (peer.interface, peer.local_address, peer.origin) == ("eth2", None, "bgp.peers[0]")


# --- ASN and router id ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotation", "asn", "problem"),
    [
        (None, 65001, None),
        ("65002", 65002, None),
        (" 4200000001 ", 4200000001, None),
        ("abc", 65001, "'abc' is not an AS number 1-4294967295: using bgp.asn 65001"),
        ("0", 65001, "'0' is not an AS number"),
        ("4294967296", 65001, "'4294967296' is not an AS number"),
        ("-5", 65001, "'-5' is not an AS number"),
    ],
)
def test_the_asn_annotation(annotation: str | None, asn: int, problem: str | None) -> None:
    node = a_node(annotations={"cosmolet.io/asn": annotation} if annotation is not None else None)
    resolved = resolve_peers(config(routerId="192.0.2.1"), node, NodeAddresses())
    assert resolved.asn == asn
    found = [p for p in resolved.problems if p.path == "Node annotation cosmolet.io/asn"]
    assert found[0].message.startswith(problem) if problem else not found, found
    if annotation is not None and problem is None:
        assert resolved.asn_from == "Node annotation cosmolet.io/asn"


@pytest.mark.parametrize(
    ("router_id", "annotation", "node_ip", "expected", "source"),
    [
        ("192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.1", "bgp.routerId"),
        (None, "192.0.2.2", "192.0.2.3", "192.0.2.2", "Node annotation cosmolet.io/router-id"),
        (None, None, "192.0.2.3", "192.0.2.3", "NODE_IP"),
        (None, "nope", "192.0.2.3", "192.0.2.3", "NODE_IP"),
        (None, None, "fd00::3", "10.1.1.1", "the local address of bgp.peers[0] (interface eth1)"),
        (None, "0.0.0.0", "", "10.1.1.1", "the local address of bgp.peers[0] (interface eth1)"),
    ],
)
def test_the_router_id_order(
    router_id: str | None, annotation: str | None, node_ip: str, expected: str, source: str
) -> None:
    bgp = {"routerId": router_id}
    node = a_node(annotations={"cosmolet.io/router-id": annotation} if annotation else None)
    resolved = resolve_peers(config({"interface": "eth1", "asn": 1}, **bgp), node, RACK, node_ip)
    assert (resolved.router_id, resolved.router_id_from) == (expected, source)
    bad = [p for p in resolved.problems if "router-id" in p.path]
    assert bool(bad) is (annotation in {"nope", "0.0.0.0"})


def test_no_router_id_at_all_is_a_problem() -> None:
    no_id = config({"interface": "eth1", "asn": 1}, routerId=None)
    nameless = no_id.model_copy(update={"node_name": ""})
    resolved = resolve_peers(nameless, None, NodeAddresses())
    assert resolved.router_id is None
    assert any(p.path == "bgp.routerId" for p in resolved.problems)


def test_hybrid_mode_takes_the_asn_annotation_and_no_peer_entry() -> None:
    hybrid = validate(
        {"mode": "hybrid", "bgp": {"asn": 65001, "routerId": "192.0.2.1", "interfaces": ["e*"]}}
    )
    resolved = resolve_peers(hybrid, a_node(annotations={"cosmolet.io/asn": "65007"}), RACK)
    assert (resolved.asn, resolved.peers) == (65007, ())


def test_bfd_follows_the_single_hop_peers() -> None:
    cfg = config(
        {"interface": "eth1", "asn": 1},
        {"address": "192.0.2.254", "asn": 2, "multihop": 3},
        {"address": "10.9.1.0", "asn": 3},
    )
    resolved = resolve_peers(cfg, None, RACK)
    assert sorted((x.interface, x.local, x.peer) for x in bfd_links(cfg, resolved)) == [
        ("eth1", "10.1.1.1", "10.1.1.0"),
        ("eth1", "fd10:1:1::1", "fd10:1:1::"),
        ("eth2", "", "10.9.1.0"),
    ]


# --- properties -----------------------------------------------------------------------------

V4_HOSTS = st.integers(min_value=0x0A000000, max_value=0x0AFFFFFF).map(ipaddress.IPv4Address)
V6_HOSTS = st.integers(min_value=0, max_value=2**64).map(
    lambda n: ipaddress.IPv6Address(0xFD00 << 112 | n)
)
INTERFACE = st.one_of(
    st.tuples(V4_HOSTS, st.sampled_from([24, 29, 30, 31, 32])).map(
        lambda a: ipaddress.ip_interface(f"{a[0]}/{a[1]}")
    ),
    st.tuples(V6_HOSTS, st.sampled_from([64, 126, 127, 128])).map(
        lambda a: ipaddress.ip_interface(f"{a[0]}/{a[1]}")
    ),
)
NAMES = st.sampled_from(["eth0", "eth1", "eth2", "swp1"])
LINKS = st.dictionaries(NAMES, st.lists(INTERFACE, max_size=3).map(tuple), max_size=4)


@given(INTERFACE)
def test_the_other_end_of_a_link_is_on_it_and_back(own: Any) -> None:
    other = other_end(own)
    if own.network.prefixlen not in (30, 31, 127) or own.network.num_addresses > 4:
        return
    if other is None:
        assert own.network.prefixlen == 30 and own.ip in (own.network[0], own.network[3])
        return
    assert other in own.network and other != own.ip
    assert other_end(ipaddress.ip_interface(f"{other}/{own.network.prefixlen}")) == own.ip


@settings(max_examples=200)
@given(
    LINKS,
    st.lists(st.sampled_from(["eth0", "eth1", "eth2", "swp1", "eth9"]), min_size=1, max_size=4),
)
def test_resolution_never_fails_and_every_peer_is_across_its_own_link(
    interfaces: dict[str, tuple[Any, ...]], names: list[str]
) -> None:
    """Whatever the addresses: no exception, one family per peer, no switch twice, each derived
    peer on the subnet of our address on that interface, every problem naming an entry."""
    cfg = config(*({"interface": name, "asn": 65100 + i} for i, name in enumerate(names)))
    resolved = resolve_peers(cfg, None, NodeAddresses(interfaces), "192.0.2.1")
    seen = set()
    for peer in resolved.peers:
        assert peer.address not in seen
        seen.add(peer.address)
        assert any(
            a.ip == peer.local_address and peer.address in a.network and peer.address != a.ip
            for a in interfaces[peer.interface]
        )
        assert peer.family is (V4 if peer.address.version == 4 else V6)
    entries = {f"bgp.peers[{i}]" for i in range(len(names))}
    for problem in resolved.problems:
        assert problem.path.split(".interface")[0] in entries


LABEL_KEYS = st.sampled_from(["rack", "zone", "edge"])
LABEL_VALUES = st.sampled_from(["a", "b", "c"])
REQUIREMENT: st.SearchStrategy[tuple[str, str, list[str]]] = st.one_of(
    st.tuples(LABEL_KEYS, st.sampled_from(["In", "NotIn"]), st.lists(LABEL_VALUES, min_size=1)),
    st.tuples(LABEL_KEYS, st.sampled_from(["Exists", "DoesNotExist"]), st.just([])),
)


def kubernetes_matches(
    match_labels: dict[str, str], expressions: list[Any], labels: dict[str, str]
) -> bool:
    """LabelSelector semantics as k8s.io/apimachinery states them."""
    if any(labels.get(key) != value for key, value in match_labels.items()):
        return False
    for key, operator, values in expressions:
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


@given(
    st.dictionaries(LABEL_KEYS, LABEL_VALUES, max_size=2),
    st.lists(REQUIREMENT, max_size=3),
    st.dictionaries(LABEL_KEYS, LABEL_VALUES, max_size=3),
)
def test_node_selectors_match_as_kubernetes_does(
    match_labels: dict[str, str], expressions: list[Any], labels: dict[str, str]
) -> None:
    selector = {
        "matchLabels": match_labels,
        "matchExpressions": [
            {"key": k, "operator": o, **({"values": v} if v else {})} for k, o, v in expressions
        ],
    }
    resolved = resolve_peers(
        config({**SELECTED, "nodeSelector": selector}), a_node(labels), NodeAddresses()
    )
    assert bool(resolved.peers) is kubernetes_matches(match_labels, expressions, labels)
