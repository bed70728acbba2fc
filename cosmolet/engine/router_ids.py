"""Router ids derived for nodes that have no IPv4 address to take one from, and the check that
two nodes did not derive the same one.

A BGP router id is 32 bits and must be unique within the AS (RFC 6286); an IPv6-only node has
no IPv4 address to borrow. So, when nothing else gives one, the id is derived from what makes a
node unique in its cluster: its IPv6 ``NODE_IP`` (``status.hostIP``), else its name::

    1 + int.from_bytes(sha256(data).digest()[:8], "big") % (2**32 - 2)

with ``data`` the address's 16 bytes (or the name's UTF-8 bytes), read as an IPv4 address.

Why a hash of all 16 bytes and not, say, the low 32 bits: racks are numbered in the /64 and
hosts in the interface id, so ``2001:db8:0:1::10`` and ``2001:db8:0:2::10`` share their low 32
bits (as would XOR-folds of the four words for rack 1 host 2 and rack 2 host 1). A
cryptographic hash turns any structure into uniform draws: the collision odds are the birthday
bound, n(n-1)/2 / (2**32 - 2), about 1 in 8,600 for 1,000 nodes and 1 in 86 for 10,000. The
range 1 .. 2**32 - 2 leaves out 0.0.0.0 (not a router id) and 255.255.255.255 by construction,
with no retry to document. Collisions, rare as they are, are detected: ``collisions`` compares
ours with every other Node's id as its Node object shows it (``visible_router_id``).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: The Node annotation that gives a node's router id (an IPv4 address other than 0.0.0.0).
ROUTER_ID_ANNOTATION = "cosmolet.io/router-id"
_SPAN = 2**32 - 2


def derive(data: bytes) -> ipaddress.IPv4Address:
    """The router id derived from ``data`` (see the module docstring): never 0.0.0.0 nor
    255.255.255.255."""
    digest = hashlib.sha256(data).digest()
    return ipaddress.IPv4Address(1 + int.from_bytes(digest[:8], "big") % _SPAN)


def derived_router_id(
    node_ip: str, node_name: str, address_is: str = "NODE_IP"
) -> tuple[str, str] | None:
    """The derived router id and where it comes from: from ``node_ip`` when it is an IPv6
    address (``address_is`` says what that address is), else from ``node_name``; ``None`` when
    neither is there."""
    try:
        address = ipaddress.ip_address(node_ip.strip())
    except ValueError:
        address = None
    if isinstance(address, ipaddress.IPv6Address):
        return str(derive(address.packed)), f"derived from {address_is} {address}"
    if node_name:
        return str(derive(node_name.encode())), f"derived from node name {node_name}"
    return None


def ipv4_router_id(text: str) -> str | None:
    """``text`` as a router id: an IPv4 address other than 0.0.0.0, else ``None``."""
    try:
        address = ipaddress.IPv4Address(text.strip())
    except ValueError:
        return None
    return None if address.is_unspecified else str(address)


@dataclass(frozen=True)
class NodeIdentity:
    """What another node's router id is computed from, as its Node object shows it."""

    name: str
    annotation: str | None  # cosmolet.io/router-id
    internal_ips: Sequence[str]  # status.addresses of type InternalIP, in order
    external_ips: Sequence[str] = ()  # and of type ExternalIP

    @property
    def host_ip(self) -> tuple[str, str]:
        """The address the kubelet gives as ``status.hostIP`` (that node's ``NODE_IP``), and
        its type: the first InternalIP, else the first ExternalIP (``("", "")``: neither)."""
        if self.internal_ips:
            return self.internal_ips[0], "InternalIP"
        if self.external_ips:
            return self.external_ips[0], "ExternalIP"
        return "", ""


def visible_router_id(node: NodeIdentity) -> tuple[str, str]:
    """Another node's router id as far as its Node object tells: the annotation, its
    ``host_ip`` (that node's ``NODE_IP``) when IPv4, else derived from it or from the name, as
    that node derives its own. What only that node's config knows (``bgp.routerId``, a peer's
    IPv4 ``localAddress``) is not visible here."""
    if node.annotation is not None:
        found = ipv4_router_id(node.annotation)
        if found is not None:
            return found, f"Node annotation {ROUTER_ID_ANNOTATION}"
    address, kind = node.host_ip
    found = ipv4_router_id(address)
    if found is not None:
        return found, f"{kind} {found}"
    derived = derived_router_id(address, node.name, kind)
    assert derived is not None  # a Node has a name (``kube.router_ids`` skips one without)
    return derived


@dataclass(frozen=True)
class Collision:
    """Another node whose router id is ours."""

    node: str
    router_id: str
    origin: str  # where that node's id comes from

    def __str__(self) -> str:
        return f"node {self.node} has the same router id {self.router_id} ({self.origin})"


def collisions(own_name: str, router_id: str, others: Iterable[NodeIdentity]) -> list[Collision]:
    """The other nodes (by name) whose visible router id is ``router_id``."""
    found = []
    for node in sorted(others, key=lambda n: n.name):
        if node.name == own_name:
            continue
        theirs, origin = visible_router_id(node)
        if theirs == router_id:
            found.append(Collision(node.name, theirs, origin))
    return found
