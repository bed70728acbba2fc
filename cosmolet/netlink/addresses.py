"""Numbered mode's view of the node: its interfaces' addresses and its default gateways.

``interface:`` and ``address: gateway`` peers are derived from them (``cosmolet.engine.peers``),
so the agent watches them: ``AddressWatcher`` listens to netlink (links, addresses, routes) and
re-reads only when the kernel reports a change, calling back only when what the resolution reads
changed (a pod's route added by the CNI changes nothing here); a 30 s re-read is only a safety
net. The same pattern as hybrid mode's ``cosmolet.hybrid.neighbors``.
"""

from __future__ import annotations

import ipaddress
import select
import threading
from collections.abc import Callable
from typing import Any

from cosmolet import logs
from cosmolet.engine.model import Family
from cosmolet.engine.peers import Gateway, Interface, NodeAddresses

log = logs.get("cosmolet.netlink")

AF_INET, AF_INET6 = 2, 10
IFA_F_TENTATIVE = 0x40
IFA_F_DADFAILED = 0x08
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV6_ROUTE = 0x400
GROUPS = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE
GROUPS |= RTMGRP_IPV6_ROUTE
SAFETY_NET_SECONDS = 30.0


def snapshot(ipr: Any | None = None) -> NodeAddresses:
    """Every interface's usable addresses (not tentative, not failed DAD) and, per family, the
    main table's default route with the lowest metric (its first next hop if multipath)."""
    from pyroute2 import IPRoute

    own = ipr is None
    ipr = ipr or IPRoute()
    try:
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        found: dict[str, list[Interface]] = {name: [] for name in names.values() if name}
        for address in ipr.get_addr():
            flags = address.get_attr("IFA_FLAGS") or address["flags"]
            name = names.get(address["index"])
            text = address.get_attr("IFA_ADDRESS")
            if name and text and not flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED):
                found[name].append(ipaddress.ip_interface(f"{text}/{address['prefixlen']}"))
        gateways = {}
        for family, number in ((Family.IPV4, AF_INET), (Family.IPV6, AF_INET6)):
            gateway = _default_gateway(ipr.get_default_routes(family=number), names)
            if gateway is not None:
                gateways[family] = gateway
    finally:
        if own:
            ipr.close()
    interfaces = {name: tuple(sorted(found[name], key=_order)) for name in sorted(found)}
    return NodeAddresses(interfaces, gateways)


def _default_gateway(routes: Any, names: dict[int, str]) -> Gateway | None:
    best: tuple[int, Gateway] | None = None
    for route in routes:
        if route.get_attr("RTA_TABLE") not in (None, 254):
            continue
        hops = [(route.get_attr("RTA_GATEWAY"), route.get_attr("RTA_OIF"))]
        multipath = route.get_attr("RTA_MULTIPATH")
        if hops[0][0] is None and multipath:
            hops = [(hop.get_attr("RTA_GATEWAY"), hop["oif"]) for hop in multipath]
        metric = route.get_attr("RTA_PRIORITY") or 0
        for address, index in hops:
            if address and index in names and (best is None or metric < best[0]):
                best = (metric, Gateway(ipaddress.ip_address(address), names[index]))
                break
    return best[1] if best else None


def _order(item: Interface) -> tuple[int, int]:
    return item.version, int(item.ip)


class AddressWatcher:
    """Calls ``on_change(addresses)`` with the whole view whenever it changes."""

    def __init__(self, on_change: Callable[[NodeAddresses], None]) -> None:
        self.on_change = on_change
        self.addresses: NodeAddresses | None = None

    def refresh(self) -> None:
        addresses = snapshot()
        if addresses != self.addresses:
            self.addresses = addresses
            log.debug("node addresses changed", interfaces=len(addresses.interfaces))
            self.on_change(addresses)

    def run(self, stop: threading.Event) -> None:
        from pyroute2 import IPRoute

        with IPRoute() as events:
            events.bind(groups=GROUPS)
            self.refresh()
            while not stop.is_set():
                ready, _, _ = select.select([events.fileno()], [], [], SAFETY_NET_SECONDS)
                if ready:
                    events.get()  # drain; the content does not matter, the new state does
                    stop.wait(0.05)  # a burst (an address replaced, a link flap) settles
                    while select.select([events.fileno()], [], [], 0)[0]:
                        events.get()
                self.refresh()
