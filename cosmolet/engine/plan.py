"""The node's plan: every Service's decision combined (shared addresses merged, node-level
drain, ``services.maxRoutes``), and the whole computation for a snapshot of the cluster.

``compute_plan`` is the reference the incremental ``PlanBuilder`` is property-tested against.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from cosmolet.config.schema import Config
from cosmolet.engine.bgp_values import canonical_communities
from cosmolet.engine.endpoints import endpoint_state
from cosmolet.engine.model import (
    Attributes,
    Plan,
    Route,
    RouteKind,
    ServiceDecision,
    Skip,
    SkipCode,
)
from cosmolet.engine.objects import EndpointSlice, Malformed, Node, Record, Service, decode_all
from cosmolet.engine.policy import Policy, node_skip
from cosmolet.engine.rules import evaluate_service
from cosmolet.engine.weights import summed_bandwidth


def aggregate_route(candidate: Route, members: int) -> Route:
    """An aggregate's route, from one of its Services' candidates: the node's default
    attributes, no Service named (``members`` of them inside it are healthy)."""
    return Route(
        candidate.prefix,
        candidate.family,
        (),
        candidate.attributes,
        candidate.sort_key,
        RouteKind.AGGREGATE,
        members=members,
    )


def merge_routes(group: Iterable[Route]) -> Route:
    """One route for a prefix several Services want: the most attractive attributes win.

    The route is wanted while any of them is healthy, so it takes the highest local-preference,
    the lowest MED and the shortest prepend among them, and the union of their communities.
    Services sharing an address all under a Local traffic policy (one LB IP, different ports)
    make a Local route weighted by the sum of their endpoints here: kube-proxy sends each port's
    traffic to its own Service's endpoints, so all of them take the address's traffic. If any
    of them has a Cluster policy, every node with it healthy anywhere advertises the address and
    traffic arriving at this node may go anywhere: a Cluster route, no weight (plain ECMP).
    """
    routes = list(group)
    first = routes[0]
    if first.kind is RouteKind.AGGREGATE:
        return aggregate_route(first, len(routes))
    if len(routes) == 1:
        return routes[0]
    attrs = [route.attributes for route in routes]
    local = all(route.kind is RouteKind.LOCAL for route in routes)
    local_prefs = [a.local_preference for a in attrs if a.local_preference is not None]
    meds = [a.med for a in attrs if a.med is not None]
    merged = Attributes(
        communities=canonical_communities(c for a in attrs for c in a.communities),
        large_communities=canonical_communities(c for a in attrs for c in a.large_communities),
        local_preference=max(local_prefs) if local_prefs else None,
        med=min(meds) if meds else None,
        as_path_prepend=min(a.as_path_prepend for a in attrs),
        link_bandwidth=summed_bandwidth([a.link_bandwidth for a in attrs]) if local else None,
    )
    services = tuple(sorted({service for route in routes for service in route.services}))
    if not local:
        return Route(first.prefix, first.family, services, merged, first.sort_key)
    count = sum(route.local_endpoints for route in routes)
    return Route(first.prefix, first.family, services, merged, first.sort_key, first.kind, count)


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
            # each Service's own candidate: an aggregate's route names none of them
            for service in (wanted.services[0] for wanted in by_prefix[route.prefix]):
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
        _evaluate(policy, node_name, service, by_service.get(key, ()))
        for key, service in unique.items()
    )
    return assemble(policy, node_name, node, decisions, extra_skips)


def _evaluate(
    policy: Policy, node_name: str, service: Service, slices: Iterable[EndpointSlice]
) -> ServiceDecision:
    health, counts = endpoint_state(slices, node_name)
    return evaluate_service(policy, node_name, service, health, counts=counts)


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
