"""Valid but probably unintended settings: warnings, printed by ``check-config`` and logged at
start, each naming the key.

They are not errors because the config still runs as written; but a key the mode never reads, or
a namespace both selected and excluded, is almost always a mistake someone wants to hear about
before the routes are missing. Errors (what ``start`` cannot run with) are the schema's.
"""

from __future__ import annotations

from cosmolet.config.schema import Bgp, Config, Mode, Problem
from cosmolet.exabgp.config import resolve


def warnings_for(config: Config) -> list[Problem]:
    """Every warning for ``config``, in the order of the keys in the config reference."""
    warnings = []
    advertise = config.services.advertise
    for key, kind in (
        ("externalIPs", advertise.external_ips),
        ("loadBalancerIPs", advertise.load_balancer_ips),
    ):
        if kind.enabled and not kind.allowed_cidrs:
            warnings.append(
                Problem(
                    f"services.advertise.{key}.allowedCIDRs",
                    "enabled with an empty allowlist, so nothing of this kind will be advertised",
                )
            )
    if config.mode is Mode.NUMBERED and not config.bgp.peers:
        warnings.append(Problem("bgp.peers", "no peers: nothing will be advertised"))
    if not config.node_name:
        warnings.append(
            Problem("nodeName", "empty and NODE_NAME is unset: give it, or --node, before start")
        )
    return warnings + _unused_in_mode(config) + _excluded_and_selected(config)


def _unused_in_mode(config: Config) -> list[Problem]:
    """Keys of the other mode: numbered mode peers with ``bgp.peers`` only; hybrid mode renders a
    neighbor per switch discovered on ``bgp.interfaces`` and never one from ``bgp.peers``
    (``bgp.bfd`` serves both)."""
    bgp = config.bgp
    if config.mode is Mode.HYBRID:
        if not bgp.peers:
            return []
        return [
            Problem(
                "bgp.peers",
                "ignored in hybrid mode: the switches on bgp.interfaces are the peers",
            )
        ]
    default = Bgp(asn=bgp.asn)
    set_keys = [
        ("bgp.interfaces", bgp.interfaces != default.interfaces),
        ("bgp.peerAsn", bgp.peer_asn != default.peer_asn),
        (
            "bgp.routerAdvertisementInterval",
            bgp.router_advertisement_interval != default.router_advertisement_interval,
        ),
    ]
    return [
        Problem(key, "ignored in numbered mode (a hybrid mode setting)")
        for key, is_set in set_keys
        if is_set
    ]


def _excluded_and_selected(config: Config) -> list[Problem]:
    services = config.services
    return [
        Problem(
            f"services.excludeNamespaces[{index}]",
            f"{namespace!r} is also in services.namespaces: excluded wins, so nothing there "
            "is advertised",
        )
        for index, namespace in enumerate(services.exclude_namespaces)
        if namespace in services.namespaces
    ]


def router_id_warnings(config: Config, node_ip: str) -> list[Problem]:
    """When nothing would give ``start`` a router id here: a warning, since the chart sets
    ``NODE_IP`` (``status.hostIP``) and ``NODE_NAME`` on the node and ``check-config`` often runs
    elsewhere. The order (``cosmolet.engine.peers``): ``bgp.routerId``, the
    ``cosmolet.io/router-id`` annotation, an IPv4 ``NODE_IP``, a peer's IPv4 local address, then
    an id derived from an IPv6 ``NODE_IP`` or the node's name, which any node has."""
    if resolve(config, environ={"NODE_IP": node_ip}).router_id is not None:
        return []
    return [
        Problem(
            "bgp.routerId",
            f"unset, and neither NODE_IP ({node_ip or 'unset'} here) nor the node's name "
            "(nodeName, NODE_NAME: unset here) gives one: start fails unless they are set on "
            "the node (the chart sets both) or the node carries a cosmolet.io/router-id "
            "annotation",
        )
    ]
