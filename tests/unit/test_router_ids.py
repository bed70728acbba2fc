"""Router ids derived for IPv6-only nodes, and the check for two nodes with the same one."""

from __future__ import annotations

import hashlib
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cosmolet.config.schema import validate
from cosmolet.engine.model import Family
from cosmolet.engine.objects import Node, ObjectMeta
from cosmolet.engine.peers import NodeAddresses, resolve_peers, unsent_families
from cosmolet.engine.router_ids import (
    NodeIdentity,
    collisions,
    derive,
    derived_router_id,
    visible_router_id,
)

ipv6 = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)


def documented(data: bytes) -> str:
    """The formula as the README gives it."""
    digest = hashlib.sha256(data).digest()
    return str(ipaddress.IPv4Address(1 + int.from_bytes(digest[:8], "big") % (2**32 - 2)))


@given(ipv6)
def test_derived_from_an_ipv6_address_is_the_documented_value_and_never_0_or_broadcast(
    address: ipaddress.IPv6Address,
) -> None:
    found = derived_router_id(str(address), "ignored")
    assert found == (documented(address.packed), f"derived from NODE_IP {address}")
    assert found[0] not in {"0.0.0.0", "255.255.255.255"}
    assert derived_router_id(str(address), "other") == found  # stable: the name does not count


@given(st.binary(max_size=64))
def test_derive_stays_inside_1_to_2_to_the_32_minus_2(data: bytes) -> None:
    assert 1 <= int(derive(data)) <= 2**32 - 2


def test_the_same_address_written_differently_derives_the_same_id() -> None:
    assert derived_router_id("fd00:0:0:1::10", "") == derived_router_id(" fd00:0:0:1:0:0:0:10", "")


def test_racks_sharing_host_parts_derive_distinct_ids() -> None:
    """The low 32 bits of these are the same per host number: a hash of all 16 bytes is not."""
    addresses = [f"2001:db8:0:{rack:x}::{host:x}" for rack in range(1, 65) for host in range(1, 65)]
    ids = {derived_router_id(a, "")[0] for a in addresses}  # type: ignore[index]
    assert len(ids) == len(addresses) == 4096


@given(st.lists(ipv6, min_size=2, max_size=200, unique=True))
def test_distinct_addresses_in_a_sample_derive_distinct_ids(
    addresses: list[ipaddress.IPv6Address],
) -> None:
    ids = [derived_router_id(str(a), "")[0] for a in addresses]  # type: ignore[index]
    assert len(set(ids)) == len(ids)


def test_without_an_ipv6_node_ip_the_name_is_used_and_without_both_nothing() -> None:
    assert derived_router_id("", "node1") == (documented(b"node1"), "derived from node name node1")
    assert derived_router_id("10.0.0.1", "node1") == derived_router_id("", "node1")
    assert derived_router_id("not an address", "") is None


@pytest.mark.parametrize(
    ("node_ip", "peers", "expected"),
    [
        ("fd00::3", [{"address": "fd10::", "asn": 2, "localAddress": "fd10::1"}], "NODE_IP"),
        ("", [{"address": "fd10::", "asn": 2}], "name"),
        ("192.0.2.3", [], "ipv4"),
    ],
)
def test_resolve_peers_derives_last(node_ip: str, peers: list[object], expected: str) -> None:
    config = validate({"nodeName": "node1", "bgp": {"asn": 1, "peers": peers}})
    resolved = resolve_peers(config, None, NodeAddresses(), node_ip)
    if expected == "NODE_IP":
        address = ipaddress.IPv6Address(node_ip)
        want = (documented(address.packed), f"derived from NODE_IP {node_ip}")
    elif expected == "name":
        want = (documented(b"node1"), "derived from node name node1")
    else:
        want = ("192.0.2.3", "NODE_IP")
    assert (resolved.router_id, resolved.router_id_from) == want
    assert not resolved.problems


def test_the_annotation_still_comes_before_a_derived_id() -> None:
    config = validate(
        {"nodeName": "node1", "mode": "hybrid", "bgp": {"asn": 1, "interfaces": ["eth1"]}}
    )
    node = Node(ObjectMeta(name="node1", annotations={"cosmolet.io/router-id": "10.0.0.9"}))
    resolved = resolve_peers(config, node, NodeAddresses(), "fd00::3")
    assert (resolved.router_id, resolved.router_id_from) == (
        "10.0.0.9",
        "Node annotation cosmolet.io/router-id",
    )


def test_another_nodes_visible_id_follows_the_same_order() -> None:
    annotated = NodeIdentity("a", "10.0.0.9", ("fd00::1",))
    assert visible_router_id(annotated) == ("10.0.0.9", "Node annotation cosmolet.io/router-id")
    bad_annotation = NodeIdentity("b", "nope", ("10.0.0.2", "fd00::2"))
    assert visible_router_id(bad_annotation) == ("10.0.0.2", "InternalIP 10.0.0.2")
    v6 = NodeIdentity("c", None, ("fd00::3", "10.0.0.3"))  # hostIP is the first InternalIP
    assert visible_router_id(v6) == (
        documented(ipaddress.IPv6Address("fd00::3").packed),
        "derived from InternalIP fd00::3",
    )
    bare = NodeIdentity("d", None, ())
    assert visible_router_id(bare) == (documented(b"d"), "derived from node name d")


def test_collisions_name_the_other_nodes_and_never_ourselves() -> None:
    ours, _ = derived_router_id("fd00::1", "node1")  # type: ignore[misc]
    nodes = [
        NodeIdentity("node1", None, ("fd00::1",)),  # ourselves
        NodeIdentity("node3", ours, ()),  # an annotation that happens to be ours
        NodeIdentity("node2", None, ("fd00::2",)),
    ]
    found = collisions("node1", ours, nodes)
    assert [(c.node, c.origin) for c in found] == [
        ("node3", "Node annotation cosmolet.io/router-id")
    ]
    assert str(found[0]) == (
        f"node node3 has the same router id {ours} (Node annotation cosmolet.io/router-id)"
    )
    twin = NodeIdentity("twin", None, ("fd00::1",))  # a copied address derives the same id
    assert [c.node for c in collisions("node1", ours, [twin])] == ["twin"]
    assert collisions("node1", ours, nodes[2:]) == []


def test_a_node_without_internal_ip_is_seen_by_its_external_ip_as_its_host_ip_is() -> None:
    """The kubelet's ``status.hostIP`` is the first InternalIP, else the first ExternalIP: that
    node derives its id from its ExternalIP, so the check must too (not from its name)."""
    ours, _ = derived_router_id("2001:db8::7", "node1")  # type: ignore[misc]
    external_only = NodeIdentity("node2", None, (), ("2001:db8::7", "192.0.2.9"))
    assert visible_router_id(external_only) == (ours, "derived from ExternalIP 2001:db8::7")
    assert [c.node for c in collisions("node1", ours, [external_only])] == ["node2"]
    v4 = NodeIdentity("node3", None, (), ("192.0.2.9",))
    assert visible_router_id(v4) == ("192.0.2.9", "ExternalIP 192.0.2.9")
    both = NodeIdentity("node4", None, ("fd00::4",), ("2001:db8::7",))  # InternalIP first
    assert visible_router_id(both)[1] == "derived from InternalIP fd00::4"


def test_unsent_families_names_each_family_planned_that_no_session_carries() -> None:
    v4, v6 = Family.IPV4, Family.IPV6
    (problem,) = unsent_families([v4, v6, v4], [v6])
    assert str(problem) == "bgp.peers: IPv4 routes planned but no IPv4 session: sent to no peer"
    assert [p.message[:4] for p in unsent_families(iter([v6]), iter([v4]))] == ["IPv6"]
    assert unsent_families([v4, v6], [v4, v6]) == ()
    assert unsent_families([v4], []) == ()  # no session at all: other problems say why
