"""The engine's vocabulary: the values every other part of cosmolet passes around.

A leaf module: it imports nothing of cosmolet's and no library. Routes, their attributes and the
reasons for not advertising something (``Skip``) are frozen and hashable, so plans can be diffed
and shared between threads without copies.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Family(StrEnum):
    IPV4 = "ipv4"
    IPV6 = "ipv6"


class RouteKind(StrEnum):
    """What a route stands for: a Cluster-policy address (every node with the Service healthy
    anywhere advertises it, plain ECMP), a Local-policy one (only nodes with an endpoint, weighted
    by their endpoints under UCMP), or an aggregate of Cluster-policy ClusterIPs."""

    CLUSTER = "cluster"
    LOCAL = "local"
    AGGREGATE = "aggregate"


class SkipCode(StrEnum):
    """Why something is not advertised. A closed set: it labels a metric."""

    MALFORMED = "malformed"
    NOT_SELECTED = "not-selected"
    OPTED_OUT = "opted-out"
    EXTERNAL_NAME = "external-name"
    HEADLESS = "headless"
    NO_READY_ENDPOINTS = "no-ready-endpoints"
    NO_LOCAL_ENDPOINTS = "no-local-endpoints"
    LB_IP_MODE_PROXY = "lb-ip-mode-proxy"
    BAD_ANNOTATION = "bad-annotation"
    BAD_ADDRESS = "bad-address"
    KIND_DISABLED = "kind-disabled"
    NOT_ALLOWED = "not-allowed"
    MAX_ROUTES = "max-routes"
    NODE_EXCLUDED = "node-excluded"
    NODE_CORDONED = "node-cordoned"
    API_LOST = "api-lost"
    DATAPLANE_GATE = "dataplane-gate"


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
    #: The link-bandwidth extended community's value, in bytes per second (weighted ECMP)
    link_bandwidth: int | None = None


@dataclass(frozen=True, slots=True)
class Route:
    """One route to advertise: ``prefix`` is ``A.B.C.D/32`` or ``X::Y/128``, canonical, or an
    aggregate's CIDR.

    ``kind`` and ``local_endpoints`` (this node's usable endpoints behind a Local-policy route,
    what its weight stands for) compare like the rest: a change reaches ``/status`` and the plan,
    and the speaker re-announces only when ``attributes`` differ. An aggregate names no Service
    (thousands may lie inside it, and ``/status`` must stay bounded): ``members`` counts the
    healthy ones.
    """

    prefix: str
    family: Family
    services: tuple[str, ...]
    attributes: Attributes
    sort_key: tuple[int, int] = field(default=(0, 0), compare=False, repr=False)
    kind: RouteKind = RouteKind.CLUSTER
    local_endpoints: int = 0
    members: int = 0

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
            "share": route_share(self.routes),
            "routes": [
                {
                    **route_json(route),
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


#: Bytes per second in one Mbit/s: the link-bandwidth community carries bytes per second.
BYTES_PER_MBPS = 125_000


def route_json(route: Route) -> dict[str, object]:
    """What ``/status`` and ``cosmolet plan`` say of a route besides its attributes."""
    bandwidth = route.attributes.link_bandwidth
    return {
        "prefix": route.prefix,
        "family": str(route.family),
        "kind": str(route.kind),
        "services": list(route.services),
        **({"serviceCount": route.members} if route.kind is RouteKind.AGGREGATE else {}),
        **({"localEndpoints": route.local_endpoints} if route.kind is RouteKind.LOCAL else {}),
        "linkBandwidthMbps": None if bandwidth is None else bandwidth / BYTES_PER_MBPS,
    }


def route_share(routes: Iterable[Route]) -> dict[str, dict[str, int]]:
    """The node's share of the fabric: its routes counted by kind and family (every pair
    present, zeros included, so a dashboard or a diff sees the same keys every time)."""
    share = {str(kind): {str(family): 0 for family in Family} for kind in RouteKind}
    for route in routes:
        share[route.kind][route.family] += 1
    return share


@functools.lru_cache(maxsize=4096)
def prefix_sort_key(prefix: str) -> tuple[int, int]:
    """Sort IPv4 before IPv6, then by numeric address."""
    network = ipaddress.ip_network(prefix)
    return network.version, int(network.network_address)


#: Health bits: a usable endpoint of the family anywhere, and one on this node.
_ANYWHERE = {Family.IPV4: 1, Family.IPV6: 4}
_HERE = {Family.IPV4: 2, Family.IPV6: 8}


@dataclass(frozen=True, slots=True)
class Health:
    """What a Service's endpoints say, per IP family: a usable endpoint anywhere, and one on
    this node.

    Per family because kube-proxy runs one proxier per family, each reading only the
    EndpointSlices of its ``addressType``: an IPv6 address is served only by IPv6 endpoints.
    ``bits`` holds the four answers (see ``health_of``); the 16 values are shared (``HEALTH``),
    so the builder's per-slice health costs no object.
    """

    bits: int

    def anywhere(self, family: Family) -> bool:
        return bool(self.bits & _ANYWHERE[family])

    def here(self, family: Family) -> bool:
        return bool(self.bits & _HERE[family])

    @property
    def usable(self) -> bool:
        """A usable endpoint of either family anywhere."""
        return bool(self.bits & (_ANYWHERE[Family.IPV4] | _ANYWHERE[Family.IPV6]))

    @property
    def usable_here(self) -> bool:
        """A usable endpoint of either family on this node."""
        return bool(self.bits & (_HERE[Family.IPV4] | _HERE[Family.IPV6]))

    def __or__(self, other: Health) -> Health:
        return HEALTH[self.bits | other.bits]


def health_of(family: Family, anywhere: bool, here: bool) -> Health:
    """The shared ``Health`` of one family's answers (the other family unhealthy); an endpoint
    here is one anywhere too."""
    return HEALTH[(_ANYWHERE[family] if anywhere or here else 0) | (_HERE[family] if here else 0)]


#: The 16 possible values, shared and indexed by ``bits``.
HEALTH = tuple(Health(bits) for bits in range(16))
UNHEALTHY = HEALTH[0]

#: This node's usable endpoints of a Service, (IPv4, IPv6): what a Local traffic policy's
#: routes are weighted by. ``local_count`` reads it by family.
LocalCounts = tuple[int, int]
NO_LOCAL: LocalCounts = (0, 0)


def local_count(counts: LocalCounts, family: Family) -> int:
    return counts[0] if family is Family.IPV4 else counts[1]


#: A difference between two route sets: prefix -> the new route, or ``None`` to withdraw it.
Delta = dict[str, Route | None]


@dataclass(frozen=True, order=True)
class Link:
    """Hybrid mode: one fabric link with a switch on it: where to peer, and from which address."""

    interface: str
    local: str  # the node's link-local address on the interface
    peer: str  # the switch's link-local address
