"""Hybrid mode's neighbor discovery: the fabric switches' link-local addresses, from netlink.

On each fabric interface the switch sends IPv6 router advertisements (FRR's ``neighbor ethX
interface``), which leave a router entry in the node's neighbour table; the node's own
link-local address is on the interface. A ``Link`` pairs them: ExaBGP peers with ``peer`` from
``local`` over ``interface``, and every route sent there carries ``local`` as its next hop.

``NeighborWatcher`` listens to netlink (links, addresses, neighbours) and recomputes the set
only when the kernel reports a change; a 30 s re-read is only a safety net.
"""

from __future__ import annotations

import fnmatch
import select
import threading
from collections.abc import Callable, Iterable
from typing import Any

from cosmolet import logs
from cosmolet.engine.model import Link

log = logs.get("cosmolet.hybrid.neighbors")

AF_INET6 = 10
SCOPE_LINK = 253
IFA_F_TENTATIVE = 0x40
IFA_F_DADFAILED = 0x08
NTF_ROUTER = 0x80
NUD_INCOMPLETE = 0x01
NUD_FAILED = 0x20
RTMGRP_LINK = 0x1
RTMGRP_NEIGH = 0x4
RTMGRP_IPV6_IFADDR = 0x100
SAFETY_NET_SECONDS = 30.0


def matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def snapshot(patterns: tuple[str, ...], ipr: Any | None = None) -> tuple[set[Link], list[str]]:
    """The links present now, and the literal interface names configured but missing."""
    from pyroute2 import IPRoute

    own = ipr is None
    ipr = ipr or IPRoute()
    try:
        interfaces = {}
        for link in ipr.get_links():
            name = link.get_attr("IFLA_IFNAME")
            if name and matches(name, patterns):
                interfaces[link["index"]] = (name, link.get_attr("IFLA_OPERSTATE") == "UP")
        local: dict[int, str] = {}
        for address in ipr.get_addr(family=AF_INET6):
            flags = address.get_attr("IFA_FLAGS") or address["flags"]
            if (
                address["index"] in interfaces
                and address["scope"] == SCOPE_LINK
                and not flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED)
            ):
                local.setdefault(address["index"], address.get_attr("IFA_ADDRESS"))
        links = set()
        for neighbour in ipr.get_neighbours(family=AF_INET6):
            index = neighbour["ifindex"]
            if (
                index in interfaces
                and interfaces[index][1]
                and index in local
                and neighbour["flags"] & NTF_ROUTER
                and not neighbour["state"] & (NUD_INCOMPLETE | NUD_FAILED)
            ):
                peer = neighbour.get_attr("NDA_DST")
                if peer and peer.startswith("fe80:"):
                    links.add(Link(interfaces[index][0], local[index], peer))
    finally:
        if own:
            ipr.close()
    present = {name for name, _ in interfaces.values()}
    missing = [p for p in patterns if not any(c in p for c in "*?[") and p not in present]
    return links, missing


class NeighborWatcher:
    """Calls ``on_change(links)`` with the whole set whenever it changes."""

    def __init__(self, patterns: tuple[str, ...], on_change: Callable[[set[Link]], None]) -> None:
        self.patterns = patterns
        self.on_change = on_change
        self.links: set[Link] | None = None
        self._missing: list[str] = []

    def refresh(self) -> None:
        links, missing = snapshot(self.patterns)
        if missing != self._missing:
            self._missing = missing
            if missing:
                log.warning(
                    "fabric interfaces not present (used when they appear)", interfaces=missing
                )
        if links != self.links:
            self.links = links
            log.info("fabric neighbors", links=[f"{x.interface}:{x.peer}" for x in sorted(links)])
            self.on_change(set(links))

    def run(self, stop: threading.Event) -> None:
        from pyroute2 import IPRoute

        with IPRoute() as events:
            events.bind(groups=RTMGRP_LINK | RTMGRP_NEIGH | RTMGRP_IPV6_IFADDR)
            self.refresh()
            while not stop.is_set():
                ready, _, _ = select.select([events.fileno()], [], [], SAFETY_NET_SECONDS)
                if ready:
                    events.get()  # drain; the content does not matter, the new state does
                    # A burst of messages (a link flap) settles in a few milliseconds.
                    stop.wait(0.05)
                    while select.select([events.fileno()], [], [], 0)[0]:
                        events.get()
                self.refresh()
