"""The route engine: cluster state + config + node -> the routes this node should advertise.

Pure functions, no I/O. ``evaluate_service`` decides one Service alone (so a watch event recomputes
only the Service it touches), ``assemble`` combines every Service's decision into a ``Plan`` (shared
IPs merged, node-level drain, ``maxRoutes``), and ``compute_plan`` does both for a whole snapshot.

Every route that is *not* advertised has a ``Skip`` with a stable ``code`` (for metrics) and a
human ``reason`` (for logs and ``cosmolet plan``).
"""

from __future__ import annotations

import functools
import ipaddress
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from cosmolet import bgp_values
from cosmolet.config import AdvertiseKind, Config, Family, IPNetwork
from cosmolet.objects import (
    ANNOTATION_PREFIX,
    EndpointSlice,
    Malformed,
    Node,
    Record,
    Service,
    decode_all,
)
from cosmolet.selector import LabelSelector

ADVERTISE_ANNOTATION = "cosmolet.io/advertise"
COMMUNITIES_ANNOTATION = "cosmolet.io/communities"
LARGE_COMMUNITIES_ANNOTATION = "cosmolet.io/large-communities"
LOCAL_PREFERENCE_ANNOTATION = "cosmolet.io/local-preference"
MED_ANNOTATION = "cosmolet.io/med"
PREPEND_ANNOTATION = "cosmolet.io/as-path-prepend"
EXCLUDE_NODE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


class SkipCode(StrEnum):
    """Why something is not advertised. A closed set: it labels a metric."""

    MALFORMED = "malformed"
    NOT_SELECTED = "not-selected"
    OPTED_OUT = "opted-out"
    EXTERNAL_NAME = "external-name"
    HEADLESS = "headless"
    NO_READY_ENDPOINTS = "no-ready-endpoints"
    NO_LOCAL_ENDPOINTS = "no-local-endpoints"
    BAD_ANNOTATION = "bad-annotation"
    BAD_ADDRESS = "bad-address"
    KIND_DISABLED = "kind-disabled"
    NOT_ALLOWED = "not-allowed"
    MAX_ROUTES = "max-routes"
    NODE_EXCLUDED = "node-excluded"
    NODE_CORDONED = "node-cordoned"
    API_LOST = "api-lost"


@dataclass(frozen=True, slots=True)
class Skip:
    """Something not advertised: the Service (``namespace/name``, or the node) and why."""

    service: str
    code: SkipCode
    reason: str


@dataclass(frozen=True, slots=True)
class Attributes:
    """The path attributes of a route. Routes that share them are announced in one batch."""

    communities: tuple[str, ...] = ()
    large_communities: tuple[str, ...] = ()
    local_preference: int | None = None
    med: int | None = None
    as_path_prepend: int = 0


@dataclass(frozen=True, slots=True)
class Route:
    """One host route to advertise: ``prefix`` is ``A.B.C.D/32`` or ``X::Y/128``, canonical."""

    prefix: str
    family: Family
    services: tuple[str, ...]
    attributes: Attributes
    sort_key: tuple[int, int] = field(default=(0, 0), compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.sort_key == (0, 0):
            object.__setattr__(self, "sort_key", prefix_sort_key(self.prefix))


@dataclass(frozen=True, slots=True)
class ServiceDecision:
    """What one Service contributes: its routes (before merging with other Services that share
    a prefix), what it skipped, and its creationTimestamp (for the maxRoutes ranking)."""

    service: str
    routes: tuple[Route, ...] = ()
    skipped: tuple[Skip, ...] = ()
    created: str = ""


@dataclass(frozen=True, slots=True)
class Plan:
    """The desired state: routes sorted by prefix, and everything skipped with its reason."""

    node: str
    routes: tuple[Route, ...] = ()
    skipped: tuple[Skip, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "node": self.node,
            "routes": [
                {
                    "prefix": route.prefix,
                    "family": str(route.family),
                    "services": list(route.services),
                    "communities": list(route.attributes.communities),
                    "largeCommunities": list(route.attributes.large_communities),
                    "localPreference": route.attributes.local_preference,
                    "med": route.attributes.med,
                    "asPathPrepend": route.attributes.as_path_prepend,
                }
                for route in self.routes
            ],
            "skipped": [
                {"service": skip.service, "code": str(skip.code), "reason": skip.reason}
                for skip in self.skipped
            ],
        }


@functools.lru_cache(maxsize=4096)
def prefix_sort_key(prefix: str) -> tuple[int, int]:
    """Sort IPv4 before IPv6, then by numeric address."""
    network = ipaddress.ip_network(prefix)
    return network.version, int(network.network_address)


@dataclass(frozen=True)
class Policy:
    """The parts of the config the engine reads, compiled once (selector parsed, sets built)."""

    namespaces: frozenset[str]
    exclude_namespaces: frozenset[str]
    selector: LabelSelector
    opt_in: bool
    cluster_ip: AdvertiseKind
    external_ips: AdvertiseKind
    load_balancer_ips: AdvertiseKind
    max_routes: int
    withdraw_when_cordoned: bool
    defaults: Attributes = field(default_factory=Attributes)

    @classmethod
    def from_config(cls, config: Config) -> Policy:
        services = config.services
        return cls(
            namespaces=frozenset(services.namespaces),
            exclude_namespaces=frozenset(services.exclude_namespaces),
            selector=services.selector,
            opt_in=services.opt_in,
            cluster_ip=services.advertise.cluster_ip,
            external_ips=services.advertise.external_ips,
            load_balancer_ips=services.advertise.load_balancer_ips,
            max_routes=services.max_routes,
            withdraw_when_cordoned=config.node.withdraw_when_cordoned,
            defaults=Attributes(
                communities=_canonical(config.bgp.communities),
                large_communities=_canonical(config.bgp.large_communities),
                local_preference=config.bgp.local_preference,
                med=config.bgp.med,
            ),
        )


def _selection_skip(policy: Policy, service: Service) -> Skip | None:
    """Is this Service one cosmolet looks at? ``None`` when it is."""
    meta = service.metadata
    key = service.key
    if policy.namespaces and meta.namespace not in policy.namespaces:
        return Skip(key, SkipCode.NOT_SELECTED, "namespace not in services.namespaces")
    if meta.namespace in policy.exclude_namespaces:
        return Skip(key, SkipCode.NOT_SELECTED, "namespace in services.excludeNamespaces")
    if not policy.selector.matches(meta.labels):
        return Skip(
            key, SkipCode.NOT_SELECTED, f"labels do not match selector {policy.selector.text!r}"
        )
    opt = (meta.annotations or {}).get(ADVERTISE_ANNOTATION)
    if opt is not None and opt.strip().lower() == "false":
        return Skip(key, SkipCode.OPTED_OUT, f'annotation {ADVERTISE_ANNOTATION}: "false"')
    if policy.opt_in and (opt is None or opt.strip().lower() != "true"):
        return Skip(
            key,
            SkipCode.OPTED_OUT,
            f'services.optIn is set and {ADVERTISE_ANNOTATION} is not "true"',
        )
    return None


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
        communities=_canonical(communities),
        large_communities=_canonical(large),
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


def _canonical(communities: Iterable[str]) -> tuple[str, ...]:
    """Communities deduplicated, in numeric order: equal sets compare equal."""
    return tuple(sorted(set(communities), key=_community_key))


def _community_key(community: str) -> tuple[int, ...]:
    """Numeric order for ``A:B`` and ``A:B:C``; well-known names after numbers."""
    if community[0].isdigit():
        return (0, *(int(part) for part in community.split(":")))
    return (1, *(ord(char) for char in community))


@functools.lru_cache(maxsize=1 << 17)
def host_prefix(text: str) -> tuple[str, Family, IPAddress]:
    """The canonical /32 or /128 for one unicast address.

    Raises:
        ValueError: when ``text`` is not an address that may be routed to a Service.
    """
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
        return f"{address}/32", Family.IPV4, address
    return f"{address}/128", Family.IPV6, address


def _allowed(networks: Sequence[IPNetwork], address: IPAddress) -> bool:
    return any(address in network for network in networks)


@dataclass(frozen=True, slots=True)
class Health:
    """What a Service's endpoints say: a ready one anywhere, and one on this node."""

    ready_anywhere: bool
    ready_here: bool

    def __or__(self, other: Health) -> Health:
        return HEALTH[self.ready_anywhere or other.ready_anywhere][
            self.ready_here or other.ready_here
        ]


#: The four possible values, shared (``HEALTH[anywhere][here]``): a slice costs no object.
HEALTH = {a: {h: Health(a, h) for h in (False, True)} for a in (False, True)}
UNHEALTHY = HEALTH[False][False]


def endpoint_health(slices: Iterable[EndpointSlice], node_name: str) -> Health:
    """Does the Service have a ready endpoint at all, and one on this node?"""
    anywhere = False
    for endpoint_slice in slices:
        for endpoint in endpoint_slice.endpoints or ():
            if endpoint.ready:
                anywhere = True
                if node_name and endpoint.node_name == node_name:
                    return HEALTH[True][True]
    return HEALTH[anywhere][False]


def evaluate_service(
    policy: Policy, node_name: str, service: Service, health: Health
) -> ServiceDecision:
    """Decide which of one Service's IPs this node should advertise, and why not the rest.

    ``health`` is ``endpoint_health`` of the Service's EndpointSlices.
    """
    key = service.key
    skip = _selection_skip(policy, service)
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
    if not health.ready_anywhere:
        return ServiceDecision(
            key, skipped=(Skip(key, SkipCode.NO_READY_ENDPOINTS, "no ready endpoints"),)
        )

    routes: dict[str, Route] = {}
    skipped: list[Skip] = []
    load_balancer = service.status.load_balancer if service.status else None
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
            [ingress.ip for ingress in (load_balancer.ingress or []) if ingress.ip]
            if load_balancer
            else [],
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
        if traffic_policy == "Local" and not health.ready_here:
            policy_name = "internal" if kind == "clusterIP" else "external"
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
                prefix, family, ip = host_prefix(address)
            except ValueError as error:
                skipped.append(Skip(key, SkipCode.BAD_ADDRESS, f"{kind} {address!r}: {error}"))
                continue
            allowlist = settings.allowed_cidrs
            if (allowlist or not empty_allows_all) and not _allowed(allowlist, ip):
                skipped.append(
                    Skip(
                        key,
                        SkipCode.NOT_ALLOWED,
                        f"{kind} {address} outside services.advertise.{kind}.allowedCIDRs",
                    )
                )
                continue
            routes.setdefault(
                prefix, Route(prefix, family, (key,), attributes, (ip.version, int(ip)))
            )
    created = service.metadata.creation_timestamp or ""
    return ServiceDecision(key, tuple(routes.values()), tuple(skipped), created)


def merge_routes(group: Iterable[Route]) -> Route:
    """One route for a prefix several Services want: the most attractive attributes win.

    The route is wanted while any of them is healthy, so it takes the highest local-preference,
    the lowest MED and the shortest prepend among them, and the union of their communities.
    """
    routes = list(group)
    if len(routes) == 1:
        return routes[0]
    first = routes[0]
    attrs = [route.attributes for route in routes]
    local_prefs = [a.local_preference for a in attrs if a.local_preference is not None]
    meds = [a.med for a in attrs if a.med is not None]
    merged = Attributes(
        communities=_canonical(c for a in attrs for c in a.communities),
        large_communities=_canonical(c for a in attrs for c in a.large_communities),
        local_preference=max(local_prefs) if local_prefs else None,
        med=min(meds) if meds else None,
        as_path_prepend=min(a.as_path_prepend for a in attrs),
    )
    services = tuple(sorted({service for route in routes for service in route.services}))
    return Route(first.prefix, first.family, services, merged, first.sort_key)


def node_skip(policy: Policy, node_name: str, node: Node | None) -> Skip | None:
    """A node-level reason to advertise nothing at all (graceful drain), or ``None``."""
    if node is None:
        return None
    if EXCLUDE_NODE_LABEL in (node.metadata.labels or {}):
        return Skip(node_name, SkipCode.NODE_EXCLUDED, f"node is labelled {EXCLUDE_NODE_LABEL}")
    if policy.withdraw_when_cordoned and node.cordoned:
        return Skip(
            node_name,
            SkipCode.NODE_CORDONED,
            "node is cordoned and node.withdrawWhenCordoned is set",
        )
    return None


def assemble(
    policy: Policy,
    node_name: str,
    node: Node | None,
    decisions: Iterable[ServiceDecision],
    extra_skips: Iterable[Skip] = (),
) -> Plan:
    """Combine per-Service decisions into the node's plan.

    Shared prefixes become one route. When more routes are wanted than ``maxRoutes``, the routes
    of the oldest Services are kept (by creationTimestamp, then prefix), so a new Service can never
    push an established one off the fabric.
    """
    skipped: list[Skip] = list(extra_skips)
    by_prefix: dict[str, list[Route]] = defaultdict(list)
    oldest: dict[str, str] = {}
    for decision in decisions:
        skipped.extend(decision.skipped)
        created = decision.created or "~"
        for route in decision.routes:
            by_prefix[route.prefix].append(route)
            oldest[route.prefix] = min(oldest.get(route.prefix, created), created)

    drain = node_skip(policy, node_name, node)
    if drain:
        skipped.insert(0, drain)
        by_prefix.clear()

    routes = [merge_routes(group) for group in by_prefix.values()]
    if len(routes) > policy.max_routes:
        routes.sort(key=lambda route: (oldest[route.prefix], route.sort_key))
        for route in routes[policy.max_routes :]:
            for service in route.services:
                skipped.append(
                    Skip(
                        service,
                        SkipCode.MAX_ROUTES,
                        f"{route.prefix}: over services.maxRoutes ({policy.max_routes})",
                    )
                )
        routes = routes[: policy.max_routes]
    routes.sort(key=lambda route: route.sort_key)
    skipped.sort(key=lambda skip: (skip.service, skip.code, skip.reason))
    return Plan(node_name, tuple(routes), tuple(skipped))


def index_slices(slices: Iterable[EndpointSlice]) -> dict[str, list[EndpointSlice]]:
    """EndpointSlices grouped by the ``namespace/name`` of their Service."""
    index: dict[str, list[EndpointSlice]] = defaultdict(list)
    for endpoint_slice in slices:
        service_key = endpoint_slice.service_key
        if service_key:
            index[service_key].append(endpoint_slice)
    return index


def compute_plan(
    config: Config,
    node_name: str,
    node: Node | None,
    services: Iterable[Service],
    slices: Iterable[EndpointSlice],
    extra_skips: Iterable[Skip] = (),
) -> Plan:
    """The whole plan for a snapshot of the cluster."""
    policy = Policy.from_config(config)
    by_service = index_slices(slices)
    unique = {service.key: service for service in services}
    decisions = (
        evaluate_service(
            policy, node_name, service, endpoint_health(by_service.get(key, ()), node_name)
        )
        for key, service in unique.items()
    )
    return assemble(policy, node_name, node, decisions, extra_skips)


def plan_from_documents(config: Config, node_name: str, documents: Iterable[object]) -> Plan:
    """Decode raw objects (as ``kubectl get -o json`` writes them) and compute the plan.

    Malformed objects are reported in ``skipped``; nothing in the input can make this raise.
    """
    records, malformed = decode_all(documents)
    return plan_from_records(config, node_name, records, malformed)


def plan_from_records(
    config: Config, node_name: str, records: Sequence[Record], malformed: Sequence[Malformed] = ()
) -> Plan:
    """The plan for decoded records, with malformed objects reported as skipped."""
    node = next((r for r in records if isinstance(r, Node) and r.metadata.name == node_name), None)
    bad = [
        Skip(item.key, SkipCode.MALFORMED, f"malformed {item.kind}: {item.reason}")
        for item in malformed
    ]
    return compute_plan(
        config,
        node_name,
        node,
        (r for r in records if isinstance(r, Service)),
        (r for r in records if isinstance(r, EndpointSlice)),
        bad,
    )
