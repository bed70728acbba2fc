"""FRR configurations for the lab's switches (leaves, spine) and numbered test peers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

#: The lab's BFD timers on the switches: 100 ms x 3.
BFD_PROFILE = [
    "bfd",
    " profile fabric",
    "  receive-interval 100",
    "  transmit-interval 100",
    "  detect-multiplier 3",
    " !",
    "!",
]

#: What a leaf re-advertises carries the sum of its paths' link bandwidth (``unnumbered_leaf``).
UCMP_ROUTE_MAP = [
    "route-map UCMP permit 10",
    " set extcommunity bandwidth cumulative",
    "!",
]


@dataclass(frozen=True)
class Neighbor:
    """A numbered BGP neighbor of an FRR router; ``remote_as`` a number or FRR's ``external``
    (any AS but ours: a node whose AS comes from its own Node annotation); ``bfd``: ask BFD of
    the session (profile ``fabric``)."""

    address: str
    remote_as: int | str
    password: str | None = None
    bfd: bool = False

    @property
    def family(self) -> str:
        return "ipv6" if ":" in self.address else "ipv4"


def numbered_router(
    name: str,
    asn: int,
    router_id: str,
    neighbors: Sequence[Neighbor],
    graceful_restart: bool = True,
) -> str:
    """An FRR router with numbered neighbors, datacenter timers (3/9 s) and fast reconnects."""
    lines = ["frr defaults datacenter", f"hostname {name}", "!"]
    if any(neighbor.bfd for neighbor in neighbors):
        lines += BFD_PROFILE
    lines += [
        f"router bgp {asn}",
        f" bgp router-id {router_id}",
        " no bgp ebgp-requires-policy",
        " no bgp default ipv4-unicast",
        " no bgp network import-check",
    ]
    if graceful_restart:
        lines.append(" bgp graceful-restart")
    for neighbor in neighbors:
        lines += _numbered_neighbor(neighbor)
    for family in ("ipv4", "ipv6"):
        members = [n for n in neighbors if n.family == family]
        if members:
            lines.append(f" address-family {family} unicast")
            lines += [f"  neighbor {n.address} activate" for n in members]
            lines.append(" exit-address-family")
    lines.append("!")
    return "\n".join(lines) + "\n"


def _numbered_neighbor(neighbor: Neighbor) -> list[str]:
    lines = [
        f" neighbor {neighbor.address} remote-as {neighbor.remote_as}",
        f" neighbor {neighbor.address} timers 3 9",
        f" neighbor {neighbor.address} timers connect 1",
    ]
    if neighbor.password:
        lines.append(f" neighbor {neighbor.address} password {neighbor.password}")
    if neighbor.bfd:
        lines.append(f" neighbor {neighbor.address} bfd profile fabric")
    return lines


def unnumbered_leaf(
    name: str,
    asn: int,
    router_id: str,
    fabric: Sequence[str],
    bfd: bool = False,
    kernel_nexthops: bool = True,
    numbered: Sequence[Neighbor] = (),
    cumulative_bandwidth: bool = True,
) -> str:
    """A leaf peering BGP unnumbered on ``fabric`` interfaces (``neighbor X interface``), as
    Cumulus/SONiC/FRR fabrics do, with RAs every 3 s and datacenter timers; ``numbered``
    neighbors (nodes in numbered mode) besides.

    Weighted ECMP: FRR installs the nodes' paths weighted by their link-bandwidth community
    (cosmolet's endpoint counts) on its own; only when every path carries one, so Cluster-policy
    routes, which carry none, stay plain ECMP (FRR's default; ``bgp bestpath bandwidth
    skip-missing`` would drop untagged nodes, ``default-weight-for-missing`` starve them).
    ``cumulative_bandwidth``: re-advertise on the ``fabric`` sessions the sum over the paths
    (route-map ``UCMP``), so the spine weights the leaves by what is behind them: the nodes'
    community is non-transitive and FRR does not pass it to an eBGP peer. Harmless towards the
    nodes (ExaBGP ignores what it receives).

    ``kernel_nexthops=False`` (``no zebra nexthop kernel enable``): with kernel nexthop objects,
    FRR 8.4's zebra kept an ECMP route's group at one member after a link flap (its RIB had both
    paths, the kernel one), which the demo caught; plain multipath routes do not have that
    fault. IPv4 routes then show in the kernel as ``via 169.254.0.1 dev X onlink``.
    """
    lines = ["frr defaults datacenter", f"hostname {name}"]
    if not kernel_nexthops:
        lines.append("no zebra nexthop kernel enable")
    lines.append("!")
    if bfd or any(neighbor.bfd for neighbor in numbered):  # the fabric's BFD timers
        lines += BFD_PROFILE
    for interface in fabric:
        lines += [
            f"interface {interface}",
            " ipv6 nd ra-interval 3",
            " no ipv6 nd suppress-ra",
            "!",
        ]
    if cumulative_bandwidth:
        lines += UCMP_ROUTE_MAP
    lines += [
        f"router bgp {asn}",
        f" bgp router-id {router_id}",
        " no bgp ebgp-requires-policy",
        " no bgp default ipv4-unicast",
        " bgp graceful-restart",
        " neighbor fabric peer-group",
        " neighbor fabric remote-as external",
        " neighbor fabric timers 3 9",
        " neighbor fabric timers connect 1",
    ]
    if bfd:
        lines.append(" neighbor fabric bfd profile fabric")
    lines += [f" neighbor {interface} interface peer-group fabric" for interface in fabric]
    for neighbor in numbered:
        lines += _numbered_neighbor(neighbor)
    for family in ("ipv4", "ipv6"):
        lines += [f" address-family {family} unicast", "  neighbor fabric activate"]
        if cumulative_bandwidth:
            lines.append("  neighbor fabric route-map UCMP out")
        lines += [f"  neighbor {n.address} activate" for n in numbered if n.family == family]
        lines.append(" exit-address-family")
    lines.append("!")
    return "\n".join(lines) + "\n"


def spine(name: str, asn: int, router_id: str, fabric: Sequence[str]) -> str:
    """The spine: unnumbered to the leaves, ECMP across them (weighted by the leaves' cumulative
    link bandwidth when each carries one), its client subnet redistributed."""
    config = unnumbered_leaf(
        name, asn, router_id, fabric, kernel_nexthops=False, cumulative_bandwidth=False
    )
    return (
        config.replace(
            " bgp graceful-restart\n",
            " bgp graceful-restart\n bgp bestpath as-path multipath-relax\n",
        )
        .replace(
            " address-family ipv4 unicast\n",
            " address-family ipv4 unicast\n  redistribute connected\n",
        )
        .replace(
            " address-family ipv6 unicast\n",
            " address-family ipv6 unicast\n  redistribute connected\n",
        )
    )
