"""What a switch's forwarding table holds for the Services, read from its kernel: routes and
next-hop groups (``lab.bench.economy``).

A switch's scarce resource is not its FIB but its ECMP group table: merchant silicon holds a few
thousand next-hop groups, and every distinct set of two or more next hops (with their weights)
that some prefix uses takes one. A prefix with a single next hop points at that next hop's entry
and takes no group. Two readings of the same table, when the kernel offers both:

- ``nexthop_sets``: the distinct sets of (gateway, device, weight) over the multipath routes, as
  ``ip -j route`` expands them. This is what an ASIC programs, whatever the software does.
- ``nexthop_objects``: the distinct kernel nexthop *group* objects (``ip -j nexthop``) the
  routes point at (``nhid``), when zebra installs nexthop objects (``zebra nexthop kernel
  enable``, FRR's default). Zebra shares one object per distinct set, so the two agree unless
  it keeps two objects for one set; ``None`` when no route uses an object at all (zebra
  installs plain routes: ``no zebra nexthop kernel enable``).

Pure: it parses the JSON it is given, so that its tests run on captured samples.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class FibCount:
    """The Services' share of one router's kernel FIB (BGP routes inside the given CIDRs)."""

    routes: int
    multipath_routes: int
    nexthop_sets: int
    nexthop_objects: int | None


def destination(route: dict[str, Any]) -> Network | None:
    """A route's destination as a network (``ip -j`` writes host routes without a length);
    ``None`` for ``default`` and what is not an address."""
    dst = str(route.get("dst", ""))
    try:
        return ipaddress.ip_network(dst, strict=False)
    except ValueError:
        return None


def hop(entry: dict[str, Any]) -> tuple[str, str, int]:
    """A next hop as (gateway, device, weight). IPv4 over an IPv6 next hop (RFC 5549) has its
    gateway under ``via``; the weight is 1 when the kernel prints none (a single next hop)."""
    via = entry.get("via")
    gateway = entry.get("gateway") or (via.get("host", "") if isinstance(via, dict) else "")
    return str(gateway), str(entry.get("dev", "")), int(entry.get("weight", 1))


def inside(network: Network, cidrs: Sequence[Network]) -> bool:
    return any(
        network.version == cidr.version and network.subnet_of(cidr)  # type: ignore[arg-type]
        for cidr in cidrs
    )


def count(
    routes: Iterable[dict[str, Any]], nexthops: Iterable[dict[str, Any]], cidrs: Sequence[Network]
) -> FibCount:
    """Count the BGP routes of ``routes`` (``ip -j route show``, both families concatenated)
    inside ``cidrs``, their distinct multipath sets, and the nexthop group objects of
    ``nexthops`` (``ip -j nexthop show``) they use."""
    groups = {int(obj["id"]) for obj in nexthops if obj.get("group")}
    total = multipath = 0
    sets: set[frozenset[tuple[str, str, int]]] = set()
    objects: set[int] = set()
    uses_objects = False
    for route in routes:
        network = destination(route)
        if route.get("protocol") != "bgp" or network is None or not inside(network, cidrs):
            continue
        total += 1
        hops = frozenset(hop(entry) for entry in route.get("nexthops") or [route])
        if len(hops) > 1:
            multipath += 1
            sets.add(hops)
        uses_objects = uses_objects or "nhid" in route
        if route.get("nhid") in groups:
            objects.add(int(route["nhid"]))
    return FibCount(total, multipath, len(sets), len(objects) if uses_objects else None)
