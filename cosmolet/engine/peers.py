"""What one shared config's ``bgp.peers`` become on one node: its sessions, ASN and router id.

Pure: the node's Node object (labels, annotations) and its addresses (``NodeAddresses``, read
over netlink at the edge) come in; ``ResolvedPeers`` comes out, each peer with its origin (the
config entry, and the interface or gateway it was derived from) and every problem found,
naming the entry. A problem never stops the others: an entry that cannot be resolved here is
left out and the rest are peered, because one bad interface must not take a node off the fabric.

- ``interface: eth1``: the other address of eth1's /31 or /30 (IPv4) and /127 (IPv6), one
  session per family found, our address on it as the local address;
- ``address: gateway``: the default route's next hop, per family present;
- ``address: A``: as given;
- ``nodeSelector``: the entry applies only where the Node's labels match it (a node whose
  Node object is not known yet matches no selector);
- ASN: ``bgp.asn``, unless the Node's ``cosmolet.io/asn`` annotation gives one;
- router id: ``bgp.routerId``, else ``cosmolet.io/router-id``, else ``NODE_IP`` (IPv4), else the
  first IPv4 local address of the peers, else derived from the IPv6 ``NODE_IP`` or the node's
  name (``cosmolet.engine.router_ids``: IPv6-only nodes).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from cosmolet.config.peers import Peer
from cosmolet.config.schema import Config, Mode
from cosmolet.engine import bgp_values
from cosmolet.engine.model import Family, Link
from cosmolet.engine.objects import Node
from cosmolet.engine.router_ids import ROUTER_ID_ANNOTATION, derived_router_id, ipv4_router_id

ASN_ANNOTATION = "cosmolet.io/asn"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
#: The prefix lengths of a point-to-point link whose other end can be derived.
LINK_PREFIXES = {Family.IPV4: (31, 30), Family.IPV6: (127,)}


@dataclass(frozen=True)
class Gateway:
    """A default route's next hop and the interface it leaves by."""

    address: Address
    interface: str


@dataclass(frozen=True)
class NodeAddresses:
    """The node's interfaces' addresses (with prefix length) and its default gateways."""

    interfaces: Mapping[str, tuple[Interface, ...]] = field(default_factory=dict)
    gateways: Mapping[Family, Gateway] = field(default_factory=dict)

    def on_link(self, address: Address) -> tuple[str, Interface] | None:
        """Our interface and address on the subnet that holds ``address`` (not a host route)."""
        for name in sorted(self.interfaces):
            for own in self.interfaces[name]:
                network = own.network
                same_family = own.version == address.version and network.num_addresses > 1
                if same_family and address in network and address != own.ip:
                    return name, own
        return None


@dataclass(frozen=True)
class ResolvedPeer:
    """One BGP session of this node: one address, one family."""

    entry: int  # the index in ``bgp.peers``
    address: Address
    family: Family
    asn: int | None  # None: ``auto``, learned from the peer's OPEN
    local_address: Address | None = None  # None: the kernel's source address, at render time
    interface: str = ""  # the link it is on, where known
    derived: str = ""  # "interface eth1", "gateway via eth0", "" (an address as configured)

    @property
    def origin(self) -> str:
        """``bgp.peers[0] (interface eth1)``: the entry, and what it was derived from."""
        path = f"bgp.peers[{self.entry}]"
        return f"{path} ({self.derived})" if self.derived else path

    @property
    def link_local(self) -> bool:
        """An IPv6 link-local peer (a gateway learned from router advertisements): ExaBGP
        reaches it only through its interface, and names it with our link-local."""
        return self.address.version == 6 and self.address.is_link_local


@dataclass(frozen=True)
class PeerProblem:
    """Why an entry (``path``) or part of one is not peered here, or a value was not used."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class ResolvedPeers:
    peers: tuple[ResolvedPeer, ...]
    asn: int
    router_id: str | None  # None: nothing gives one, not even a node name (a problem says so)
    problems: tuple[PeerProblem, ...] = ()
    #: entries this node does not use (their nodeSelector does not match it), with why
    unused: tuple[PeerProblem, ...] = ()
    asn_from: str = "bgp.asn"  # where ``asn`` comes from: "bgp.asn" or the annotation
    #: "bgp.routerId", the annotation, "NODE_IP", a peer's origin, "derived from NODE_IP fd00::1"
    #: or "derived from node name node1"
    router_id_from: str = ""


def resolve_peers(
    config: Config, node: Node | None, links: NodeAddresses, node_ip: str = ""
) -> ResolvedPeers:
    """This node's peers, ASN and router id (see the module docstring)."""
    problems: list[PeerProblem] = []
    unused: list[PeerProblem] = []
    annotations = (node.metadata.annotations or {}) if node is not None else {}
    labels = (node.metadata.labels or {}) if node is not None else {}
    asn = _asn(config.bgp.asn, annotations.get(ASN_ANNOTATION), problems)
    asn_from = "bgp.asn" if asn == config.bgp.asn else f"Node annotation {ASN_ANNOTATION}"
    peers: list[ResolvedPeer] = []
    first: dict[tuple[Address, str], int] = {}
    entries = config.bgp.peers if config.mode is Mode.NUMBERED else ()
    for index, entry in enumerate(entries):
        path = f"bgp.peers[{index}]"
        selector = entry.node_selector
        if selector is not None and node is None:
            why = "not used until this node's Node object is known (its labels decide)"
            unused.append(PeerProblem(path, f"nodeSelector {selector.text}: {why}"))
            continue
        if selector is not None and not selector.selector.matches(labels):
            why = "does not match this node's labels"
            unused.append(PeerProblem(path, f"nodeSelector {selector.text} {why}"))
            continue
        for peer in _entry_peers(index, entry, links, problems):
            key = (peer.address, peer.interface if peer.link_local else "")
            other = first.setdefault(key, index)
            if other != index:
                message = f"{peer.address} is bgp.peers[{other}]'s peer here too: peered once"
                problems.append(PeerProblem(path, message))
                continue
            peers.append(peer)
    router_id, router_id_from = _router_id(
        config, annotations.get(ROUTER_ID_ANNOTATION), node_ip, peers, problems
    )
    return ResolvedPeers(
        tuple(peers), asn, router_id, tuple(problems), tuple(unused), asn_from, router_id_from
    )


def unsent_families(
    planned: Iterable[Family], carried: Iterable[Family]
) -> tuple[PeerProblem, ...]:
    """A ``bgp.peers`` problem for each family with routes planned (``planned``: the routes'
    families) but no session carrying it (``carried``: the sessions' families), such as the
    IPv4 address of a dual-stack Service on an IPv6-only numbered node: sent to no peer, which
    ``/status`` would otherwise show only as routes without peers. Nothing when there is no
    session at all: then nothing is sent, and the peers' own problems say why."""
    sessions, routes = set(carried), set(planned)
    if not sessions:
        return ()
    return tuple(
        PeerProblem("bgp.peers", f"{name} routes planned but no {name} session: sent to no peer")
        for family, name in ((Family.IPV4, "IPv4"), (Family.IPV6, "IPv6"))
        if family in routes and family not in sessions
    )


def bfd_links(config: Config, resolved: ResolvedPeers) -> frozenset[Link]:
    """bfdd's peers for numbered sessions: the single-hop ones (``multihop`` ones are not on a
    link), with their interface and our address where known."""
    entries = config.bgp.peers
    return frozenset(
        Link(peer.interface, str(peer.local_address or ""), str(peer.address))
        for peer in resolved.peers
        if not entries[peer.entry].multihop
    )


def _entry_peers(
    index: int, entry: Peer, links: NodeAddresses, problems: list[PeerProblem]
) -> list[ResolvedPeer]:
    asn = None if entry.asn == "auto" else int(entry.asn)
    if entry.interface is not None:
        return _from_interface(index, entry.interface, entry, asn, links, problems)
    address = entry.ip
    if address is None:
        return _from_gateway(index, entry, asn, links, problems)
    found = links.on_link(address)
    family = Family.IPV4 if address.version == 4 else Family.IPV6
    return [
        ResolvedPeer(index, address, family, asn, entry.local_address, found[0] if found else "")
    ]


def _from_interface(
    index: int,
    name: str,
    entry: Peer,
    asn: int | None,
    links: NodeAddresses,
    problems: list[PeerProblem],
) -> list[ResolvedPeer]:
    path = f"bgp.peers[{index}].interface"
    own = links.interfaces.get(name)
    if own is None:
        problems.append(PeerProblem(path, f"{name} is not present on this node"))
        return []
    peers = []
    reasons = []
    for family in entry.address_families:
        version = 4 if family is Family.IPV4 else 6
        of_family = sorted(
            (a for a in own if a.version == version and not a.ip.is_link_local), key=_order
        )
        usable = [a for a in of_family if a.network.prefixlen in LINK_PREFIXES[family]]
        lengths = " or ".join(f"/{n}" for n in LINK_PREFIXES[family])
        if not usable:
            if of_family:
                shown = ", ".join(str(a) for a in of_family)
                reasons.append(f"its {family} addresses ({shown}) are not on a {lengths}")
            elif entry.families:
                reasons.append(f"it has no {family} address")
            continue
        if len(usable) > 1:
            ignored = ", ".join(str(a) for a in usable[1:])
            problems.append(PeerProblem(path, f"{name}: peered from {usable[0]}, not {ignored}"))
        mine = usable[0]
        other = other_end(mine)
        if other is None:
            reasons.append(f"{mine} is the network or broadcast address of its /30")
            continue
        derived = f"interface {name}"
        peers.append(ResolvedPeer(index, other, family, asn, mine.ip, name, derived))
    if reasons:
        problems.append(PeerProblem(path, f"{name}: {'; '.join(reasons)}"))
    elif not peers:
        problems.append(PeerProblem(path, f"{name} has no /31, /30 or /127 address"))
    return peers


def _from_gateway(
    index: int, entry: Peer, asn: int | None, links: NodeAddresses, problems: list[PeerProblem]
) -> list[ResolvedPeer]:
    path = f"bgp.peers[{index}].address"
    peers = []
    for family in entry.address_families:
        gateway = links.gateways.get(family)
        if gateway is None:
            if entry.families:
                problems.append(PeerProblem(path, f"gateway: no {family} default route"))
            continue
        local = _local_for(gateway, links)
        if local is None:
            message = f"gateway {gateway.address}: no address of ours on {gateway.interface}"
            problems.append(PeerProblem(path, message))
            continue
        derived = f"gateway via {gateway.interface}"
        peers.append(
            ResolvedPeer(index, gateway.address, family, asn, local, gateway.interface, derived)
        )
    if not peers and not entry.families:
        problems.append(PeerProblem(path, "gateway: this node has no default route"))
    return peers


def _local_for(gateway: Gateway, links: NodeAddresses) -> Address | None:
    """Our address toward the gateway: on its subnet, or our link-local for a link-local one."""
    own = links.interfaces.get(gateway.interface, ())
    if gateway.address.version == 6 and gateway.address.is_link_local:
        local = [a.ip for a in own if a.version == 6 and a.ip.is_link_local]
        return min(local) if local else None
    on_subnet = [
        a.ip for a in own if a.version == gateway.address.version and gateway.address in a.network
    ]
    return min(on_subnet) if on_subnet else None


def other_end(own: Interface) -> Address | None:
    """The other address of a point-to-point link: the other of a /31 or /127 pair, the other
    host of a /30; ``None`` when ``own`` is a /30's network or broadcast address, or on no
    such link."""
    network = own.network
    if network.num_addresses == 2:
        return network[1] if own.ip == network[0] else network[0]
    if network.num_addresses != 4:
        return None  # not a point-to-point link
    hosts = [network[1], network[2]]
    if own.ip not in hosts:
        return None
    return hosts[1] if own.ip == hosts[0] else hosts[0]


def _order(item: Interface) -> tuple[int, int]:
    return item.version, int(item.ip)


def _asn(default: int, annotation: str | None, problems: list[PeerProblem]) -> int:
    if annotation is None:
        return default
    text = annotation.strip()
    if text.isascii() and text.isdigit() and 0 < int(text) <= bgp_values.MAX_U32:
        return int(text)
    problems.append(
        PeerProblem(
            f"Node annotation {ASN_ANNOTATION}",
            f"{annotation!r} is not an AS number 1-{bgp_values.MAX_U32}: using bgp.asn {default}",
        )
    )
    return default


def _router_id(
    config: Config,
    annotation: str | None,
    node_ip: str,
    peers: list[ResolvedPeer],
    problems: list[PeerProblem],
) -> tuple[str | None, str]:
    """The router id and where it comes from."""
    if config.bgp.router_id is not None:
        return str(config.bgp.router_id), "bgp.routerId"
    if annotation is not None:
        found = ipv4_router_id(annotation)
        if found is not None:
            return found, f"Node annotation {ROUTER_ID_ANNOTATION}"
        problems.append(
            PeerProblem(
                f"Node annotation {ROUTER_ID_ANNOTATION}",
                f"{annotation!r} is not an IPv4 address other than 0.0.0.0: not used",
            )
        )
    found = ipv4_router_id(node_ip)
    if found is not None:
        return found, "NODE_IP"
    for peer in peers:
        if peer.local_address is not None and peer.local_address.version == 4:
            return str(peer.local_address), f"the local address of {peer.origin}"
    derived = derived_router_id(node_ip, config.node_name)
    if derived is not None:
        return derived
    problems.append(
        PeerProblem(
            "bgp.routerId",
            "unset, and no cosmolet.io/router-id annotation, NODE_IP, IPv4 local address of a "
            "peer or node name (nodeName, NODE_NAME) gives one",
        )
    )
    return None, ""
