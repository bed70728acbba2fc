"""``cosmolet render frr``: the node's FRR configuration. Pure, golden-tested.

In hybrid mode FRR's first job on the node is neighbor discovery for BGP unnumbered: zebra
sends IPv6 router advertisements on every fabric interface, so that the switch (``neighbor swpN
interface``) learns the node's link-local address, and its own RAs teach the node the switch's.
In numbered mode FRR runs only for BFD: zebra (which bfdd needs) with no interface stanza, so no
router advertisement. There is never a bgpd: ExaBGP speaks BGP. With ``bgp.bfd.enabled``, bfdd
runs too, with a profile and one peer per session (the agent keeps them in step through vtysh).
"""

from __future__ import annotations

from collections.abc import Iterable

from cosmolet import __version__
from cosmolet.config.schema import Config, Mode
from cosmolet.engine.model import Link
from cosmolet.hybrid.neighbors import matches

BFD_PROFILE = "cosmolet"


def peer_line(link: Link) -> str:
    """bfdd's ``peer`` line for a session: its interface and local address where known."""
    line = f"peer {link.peer}"
    if link.interface:
        line += f" interface {link.interface}"
    if link.local:
        line += f" local-address {link.local}"
    return line


def fabric_interfaces(config: Config, present: Iterable[str]) -> list[str]:
    """Literal names as configured (zebra applies them when they appear), plus every present
    interface matching a glob."""
    patterns = config.bgp.interfaces
    literal = [p for p in patterns if not any(c in p for c in "*?[")]
    globbed = [name for name in present if matches(name, patterns) and name not in literal]
    return sorted(set(literal) | set(globbed))


def render(config: Config, interfaces: Iterable[str], links: Iterable[Link] = ()) -> str:
    bgp = config.bgp
    job = "sends router advertisements on the fabric links"
    if config.mode is Mode.NUMBERED:
        job, interfaces = "sends no router advertisement (numbered mode: bfdd needs it)", []
    lines = [
        f"! Rendered by cosmolet {__version__} for node {config.node_name or '(unset)'}.",
        f"! zebra {job}; no bgpd runs on the node.",
        "frr defaults datacenter",
        f"hostname {config.node_name or 'cosmolet'}",
        "!",
    ]
    for interface in interfaces:
        lines += [
            f"interface {interface}",
            f" ipv6 nd ra-interval {bgp.router_advertisement_interval}",
            " no ipv6 nd suppress-ra",
            "!",
        ]
    if bgp.bfd.enabled:
        lines += [
            "bfd",
            f" profile {BFD_PROFILE}",
            f"  receive-interval {bgp.bfd.min_rx_ms}",
            f"  transmit-interval {bgp.bfd.min_tx_ms}",
            f"  detect-multiplier {bgp.bfd.multiplier}",
            " !",
        ]
        for link in sorted(links):
            lines += [f" {peer_line(link)}", f"  profile {BFD_PROFILE}", " !"]
        lines.append("!")
    return "\n".join(lines) + "\n"
