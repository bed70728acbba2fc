"""The configured policy, compiled once: which Services and which nodes the engine looks at.

``selection_skip`` and ``namespace_wanted`` are the same rule (``namespace_refusal``) seen from
two sides: the live source uses ``namespace_wanted`` to not even keep objects of namespaces never
advertised, and ``cosmolet plan`` reports those Services with the same ``not-selected`` skip.
``api_loss_skip`` is the live source's one decision of its own: when losing the API server
withdraws everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cosmolet.config.schema import Config
from cosmolet.config.services import AdvertiseKind, IPNetwork
from cosmolet.engine.bgp_values import canonical_communities
from cosmolet.engine.model import BYTES_PER_MBPS, Attributes, Family, Skip, SkipCode
from cosmolet.engine.objects import Node, Service
from cosmolet.engine.selector import LabelSelector

ADVERTISE_ANNOTATION = "cosmolet.io/advertise"
EXCLUDE_NODE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
#: The cluster autoscaler's taint on a node it is about to delete; the service controller takes
#: such a node out of load balancers as it does a node with ``EXCLUDE_NODE_LABEL``.
AUTOSCALER_DELETION_TAINT = "ToBeDeletedByClusterAutoscaler"


@dataclass(frozen=True, slots=True)
class Aggregate:
    """One ``services.advertise.clusterIP.aggregate`` CIDR, as integers for a cheap test."""

    prefix: str
    family: Family
    version: int
    network: int
    mask: int

    @classmethod
    def of(cls, network: IPNetwork) -> Aggregate:
        family = Family.IPV4 if network.version == 4 else Family.IPV6
        return cls(
            str(network),
            family,
            network.version,
            int(network.network_address),
            int(network.netmask),
        )

    @property
    def sort_key(self) -> tuple[int, int]:
        return self.version, self.network


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
    ignore_exclude_label: bool
    defaults: Attributes = field(default_factory=Attributes)
    #: weighted ECMP: the link bandwidth one local endpoint is worth, or None when it is off
    bytes_per_endpoint: float | None = None
    aggregates: tuple[Aggregate, ...] = ()

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
            ignore_exclude_label=config.node.ignore_exclude_label,
            defaults=Attributes(
                communities=canonical_communities(config.bgp.communities),
                large_communities=canonical_communities(config.bgp.large_communities),
                local_preference=config.bgp.local_preference,
                med=config.bgp.med,
            ),
            bytes_per_endpoint=(
                services.weighted_ecmp.mbps_per_endpoint * BYTES_PER_MBPS
                if services.weighted_ecmp.enabled
                else None
            ),
            aggregates=tuple(Aggregate.of(n) for n in services.advertise.cluster_ip.aggregate),
        )


def selection_skip(policy: Policy, service: Service) -> Skip | None:
    """Is this Service one cosmolet looks at? ``None`` when it is."""
    meta = service.metadata
    key = service.key
    unwanted = namespace_refusal(policy, meta.namespace)
    if unwanted is not None:
        return Skip(key, SkipCode.NOT_SELECTED, unwanted)
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


def namespace_refusal(policy: Policy, namespace: str) -> str | None:
    """Why no Service of this namespace is ever advertised, or ``None`` if one may be."""
    if policy.namespaces and namespace not in policy.namespaces:
        return "namespace not in services.namespaces"
    if namespace in policy.exclude_namespaces:
        return "namespace in services.excludeNamespaces"
    return None


def namespace_wanted(policy: Policy, namespace: str) -> bool:
    """Can a Service (or EndpointSlice) of this namespace ever be advertised?"""
    return namespace_refusal(policy, namespace) is None


def node_skip(policy: Policy, node_name: str, node: Node | None) -> Skip | None:
    """A node-level reason to advertise nothing at all (graceful drain), or ``None``."""
    if node is None:
        return None
    if not policy.ignore_exclude_label and EXCLUDE_NODE_LABEL in (node.metadata.labels or {}):
        return Skip(node_name, SkipCode.NODE_EXCLUDED, f"node is labelled {EXCLUDE_NODE_LABEL}")
    taints = node.spec.taints if node.spec else None
    if any(taint.key == AUTOSCALER_DELETION_TAINT for taint in taints or ()):
        return Skip(
            node_name,
            SkipCode.NODE_EXCLUDED,
            f"node is tainted {AUTOSCALER_DELETION_TAINT} (the cluster autoscaler deletes it)",
        )
    if policy.withdraw_when_cordoned and node.cordoned:
        return Skip(
            node_name,
            SkipCode.NODE_CORDONED,
            "node is cordoned and node.withdrawWhenCordoned is set",
        )
    return None


def api_loss_skip(
    node_name: str, limit_s: float | None, synced: bool, lost_for_s: float
) -> Skip | None:
    """Withdraw every route after ``limit_s`` seconds without the API server, or ``None``.

    By default (``limit_s`` None) routes outlive the API server indefinitely: the data plane
    does not depend on the control plane. A source that never completed a list has nothing to
    withdraw, so it is never lost either.
    """
    if limit_s is None or not synced or lost_for_s < limit_s:
        return None
    return Skip(
        node_name,
        SkipCode.API_LOST,
        f"API server unreachable for over {limit_s:g} s (kubernetes.withdrawAfterApiLossSeconds)",
    )
