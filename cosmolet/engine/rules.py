"""The rules for one Service: which of its addresses this node advertises, with what attributes,
and a ``Skip`` with a stable code and a human reason for each one it does not.

``evaluate_service`` decides one Service alone, so a watch event recomputes only the Service it
touches; ``cosmolet.engine.plan`` combines the decisions.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Mapping, Sequence

from cosmolet.config.services import IPNetwork
from cosmolet.engine import bgp_values
from cosmolet.engine.bgp_values import canonical_communities
from cosmolet.engine.endpoints import FAMILY_NAMES
from cosmolet.engine.model import (
    NO_LOCAL,
    Attributes,
    Family,
    Health,
    IPAddress,
    LocalCounts,
    Route,
    RouteKind,
    ServiceDecision,
    Skip,
    SkipCode,
    local_count,
)
from cosmolet.engine.objects import ANNOTATION_PREFIX, LoadBalancerIngress, Service
from cosmolet.engine.policy import Aggregate, Policy, selection_skip
from cosmolet.engine.weights import with_bandwidth

COMMUNITIES_ANNOTATION = "cosmolet.io/communities"
LARGE_COMMUNITIES_ANNOTATION = "cosmolet.io/large-communities"
LOCAL_PREFERENCE_ANNOTATION = "cosmolet.io/local-preference"
MED_ANNOTATION = "cosmolet.io/med"
PREPEND_ANNOTATION = "cosmolet.io/as-path-prepend"
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def service_attributes(defaults: Attributes, annotations: Mapping[str, str] | None) -> Attributes:
    """Config defaults overridden by the Service's annotations.

    Communities from annotations are *added* to the configured ones (a site's tagging community
    cannot be removed by a Service owner); local-preference, MED and prepend replace the default.

    Raises:
        ValueError: naming the annotation and what was expected.
    """
    if not annotations or not any(key.startswith(ANNOTATION_PREFIX) for key in annotations):
        return defaults
    communities = list(defaults.communities)
    large = list(defaults.large_communities)
    local_preference = defaults.local_preference
    med = defaults.med
    prepend = defaults.as_path_prepend
    if (text := annotations.get(COMMUNITIES_ANNOTATION)) is not None:
        communities += _annotated_list(COMMUNITIES_ANNOTATION, text, bgp_values.parse_community)
    if (text := annotations.get(LARGE_COMMUNITIES_ANNOTATION)) is not None:
        large += _annotated_list(
            LARGE_COMMUNITIES_ANNOTATION, text, bgp_values.parse_large_community
        )
    if (text := annotations.get(LOCAL_PREFERENCE_ANNOTATION)) is not None:
        local_preference = _annotated(LOCAL_PREFERENCE_ANNOTATION, text, "local-preference")
    if (text := annotations.get(MED_ANNOTATION)) is not None:
        med = _annotated(MED_ANNOTATION, text, "MED")
    if (text := annotations.get(PREPEND_ANNOTATION)) is not None:
        try:
            prepend = bgp_values.parse_prepend(text)
        except ValueError as error:
            raise ValueError(f"annotation {PREPEND_ANNOTATION}: {error}") from None
    return Attributes(
        communities=canonical_communities(communities),
        large_communities=canonical_communities(large),
        local_preference=local_preference,
        med=med,
        as_path_prepend=prepend,
    )


def _annotated_list(annotation: str, text: str, parse: Callable[[str], str]) -> list[str]:
    try:
        return [parse(item) for item in bgp_values.split_list(text)]
    except ValueError as error:
        raise ValueError(f"annotation {annotation}: {error}") from None


def _annotated(annotation: str, text: str, what: str) -> int:
    try:
        return bgp_values.parse_u32(text, what)
    except ValueError as error:
        raise ValueError(f"annotation {annotation}: {error}") from None


def host_prefix(text: str) -> tuple[str, Family, int, int]:
    """The canonical /32 or /128 for one unicast address, with its IP version and integer
    value (the route's sort key).

    A canonical dotted quad (what the API server writes) is read here, with integer checks: at
    100,000 Services ``ipaddress`` was half the cost of evaluating them, and a cache of its
    results ~20 MB. Anything else (IPv6, or an IPv4 form to refuse or canonicalise) goes
    through ``ipaddress``, so the same addresses are refused with the same message.

    Raises:
        ValueError: when ``text`` is not an address that may be routed to a Service.
    """
    value = _dotted_quad(text)
    if value is None:
        return _parsed_prefix(text)
    if (
        value == 0  # unspecified
        or value >> 24 == 127  # loopback
        or value >> 28 == 0xE  # multicast
        or value >> 16 == 0xA9FE  # link-local
        or value == 0xFFFFFFFF  # broadcast
    ):
        raise ValueError(f"{text} is not a unicast address that can be routed")
    return text + "/32", Family.IPV4, 4, value


def _dotted_quad(text: str) -> int | None:
    """The value of a canonical IPv4 address (four decimal octets, no leading zero), else
    ``None``."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    value = 0
    for part in parts:
        if not part.isascii() or not part.isdigit() or len(part) > 3 or part[:1] == "0" != part:
            return None
        octet = int(part)
        if octet > 255:
            return None
        value = value << 8 | octet
    return value


@functools.lru_cache(maxsize=1 << 17)
def _parsed_prefix(text: str) -> tuple[str, Family, int, int]:
    address: IPAddress = ipaddress.IPv6Address(text) if ":" in text else ipaddress.IPv4Address(text)
    if (
        (isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None)
        or address.is_unspecified
        or address.is_loopback
        or address.is_multicast
        or address.is_link_local
        or (isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None)
        or address == _BROADCAST
    ):
        raise ValueError(f"{text} is not a unicast address that can be routed")
    if address.version == 4:
        return f"{address}/32", Family.IPV4, 4, int(address)
    return f"{address}/128", Family.IPV6, 6, int(address)


def _allowed(networks: Sequence[IPNetwork], version: int, value: int) -> bool:
    address = ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value)
    return any(address in network for network in networks)


def evaluate_service(
    policy: Policy,
    node_name: str,
    service: Service,
    health: Health,
    key: str | None = None,
    counts: LocalCounts = NO_LOCAL,
) -> ServiceDecision:
    """Decide which of one Service's IPs this node should advertise, and why not the rest.

    ``health`` and ``counts`` are ``endpoint_state`` of the Service's EndpointSlices. An address
    is advertised when kube-proxy here would forward it: an endpoint of its own IP family exists
    (on this node, under a Local traffic policy) and, for a load-balancer IP, its ``ipMode`` is
    VIP. A Local-policy route carries this node's endpoints of its family (``counts``), and with
    weighted ECMP a link bandwidth in proportion; a Cluster-policy ClusterIP inside an aggregate
    CIDR gives that CIDR's route instead of its own. ``key`` is the Service's ``namespace/name``
    as the caller keeps it, so that its routes hold that string rather than a copy (100,000 of
    them); by default it is built.
    """
    key = service.key if key is None else key
    skip = selection_skip(policy, service)
    if skip:
        return ServiceDecision(key, skipped=(skip,))
    spec = service.spec
    if spec.type == "ExternalName":
        return ServiceDecision(key, skipped=(Skip(key, SkipCode.EXTERNAL_NAME, "ExternalName"),))
    cluster_ips = [ip for ip in (spec.cluster_ips or [spec.cluster_ip or ""]) if ip]
    if any(ip == "None" for ip in cluster_ips):
        return ServiceDecision(
            key, skipped=(Skip(key, SkipCode.HEADLESS, "headless (clusterIP None)"),)
        )
    try:
        attributes = service_attributes(policy.defaults, service.metadata.annotations)
    except ValueError as error:
        return ServiceDecision(key, skipped=(Skip(key, SkipCode.BAD_ANNOTATION, str(error)),))
    if not health.usable:
        return ServiceDecision(
            key, skipped=(Skip(key, SkipCode.NO_READY_ENDPOINTS, "no ready endpoints"),)
        )

    routes: dict[str, Route] = {}
    skipped: list[Skip] = []
    load_balancer = service.status.load_balancer if service.status else None
    ingress = (load_balancer.ingress or []) if load_balancer else []
    sources = (
        ("clusterIP", policy.cluster_ip, cluster_ips, spec.internal_traffic_policy, True),
        (
            "externalIPs",
            policy.external_ips,
            spec.external_ips or [],
            spec.external_traffic_policy,
            False,
        ),
        (
            "loadBalancerIPs",
            policy.load_balancer_ips,
            [entry.ip for entry in ingress if entry.ip],
            spec.external_traffic_policy,
            False,
        ),
    )
    for kind, settings, addresses, traffic_policy, empty_allows_all in sources:
        if not addresses:
            continue
        if not settings.enabled:
            skipped.append(
                Skip(
                    key,
                    SkipCode.KIND_DISABLED,
                    f"{kind} {', '.join(addresses)}: services.advertise.{kind}.enabled is false",
                )
            )
            continue
        if kind == "loadBalancerIPs":
            addresses = _vip_mode_only(key, ingress, skipped)
        local = traffic_policy == "Local"
        policy_name = "internal" if kind == "clusterIP" else "external"
        if addresses and local and not health.usable_here:
            skipped.append(
                Skip(
                    key,
                    SkipCode.NO_LOCAL_ENDPOINTS,
                    f"{kind} {', '.join(addresses)}: {policy_name}TrafficPolicy Local and no ready "
                    f"endpoint on node {node_name or '?'}",
                )
            )
            continue
        for address in addresses:
            try:
                prefix, family, version, value = host_prefix(address)
            except ValueError as error:
                skipped.append(Skip(key, SkipCode.BAD_ADDRESS, f"{kind} {address!r}: {error}"))
                continue
            if not health.anywhere(family):
                skipped.append(
                    Skip(
                        key,
                        SkipCode.NO_READY_ENDPOINTS,
                        f"{kind} {address}: no ready {FAMILY_NAMES[family]} endpoints",
                    )
                )
                continue
            if local and not health.here(family):
                skipped.append(
                    Skip(
                        key,
                        SkipCode.NO_LOCAL_ENDPOINTS,
                        f"{kind} {address}: {policy_name}TrafficPolicy Local and no ready "
                        f"{FAMILY_NAMES[family]} endpoint on node {node_name or '?'}",
                    )
                )
                continue
            allowlist = settings.allowed_cidrs
            if (allowlist or not empty_allows_all) and not _allowed(allowlist, version, value):
                skipped.append(
                    Skip(
                        key,
                        SkipCode.NOT_ALLOWED,
                        f"{kind} {address} outside services.advertise.{kind}.allowedCIDRs",
                    )
                )
                continue
            aggregate = (
                _aggregate_of(policy.aggregates, version, value)
                if policy.aggregates and kind == "clusterIP" and not local
                else None
            )
            if local:
                count = local_count(counts, family)
                route = Route(
                    prefix,
                    family,
                    (key,),
                    with_bandwidth(attributes, count, policy.bytes_per_endpoint),
                    (version, value),
                    RouteKind.LOCAL,
                    count,
                )
            elif aggregate is not None:
                route = Route(
                    aggregate.prefix,
                    aggregate.family,
                    (key,),
                    policy.defaults,
                    aggregate.sort_key,
                    RouteKind.AGGREGATE,
                    members=1,
                )
            else:
                route = Route(prefix, family, (key,), attributes, (version, value))
            routes.setdefault(route.prefix, route)
    created = service.metadata.creation_timestamp or ""
    return ServiceDecision(key, tuple(routes.values()), tuple(skipped), created)


def _aggregate_of(aggregates: Sequence[Aggregate], version: int, value: int) -> Aggregate | None:
    """The aggregate a Cluster-policy ClusterIP is advertised as, if any (the config refuses
    overlapping aggregates, so there is at most one)."""
    for aggregate in aggregates:
        if aggregate.version == version and value & aggregate.mask == aggregate.network:
            return aggregate
    return None


def _vip_mode_only(
    key: str, ingress: Sequence[LoadBalancerIngress], skipped: list[Skip]
) -> list[str]:
    """The load-balancer IPs kube-proxy handles: ``ipMode`` VIP or absent (KEP-1860).

    With ``Proxy`` the load balancer itself proxies to the nodes' ports and kube-proxy installs
    nothing for the address, so no node may attract its traffic; any other value (the API allows
    none) is not VIP either, as kube-proxy's ``IsVIPMode`` reads it.
    """
    addresses: list[str] = []
    for entry in ingress:
        if not entry.ip:
            continue
        if entry.ip_mode is None or entry.ip_mode == "VIP":
            addresses.append(entry.ip)
        else:
            skipped.append(
                Skip(
                    key,
                    SkipCode.LB_IP_MODE_PROXY,
                    f"loadBalancerIPs {entry.ip}: ipMode {entry.ip_mode}, the load balancer "
                    "proxies to the nodes and kube-proxy does not handle the address",
                )
            )
    return addresses
