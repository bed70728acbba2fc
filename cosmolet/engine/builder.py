"""The route engine kept up to date incrementally, for sources that report changes one by one.

``compute_plan`` (in ``cosmolet.engine.plan``) is the reference: a whole snapshot in, a whole plan
out. A Kubernetes watch delivers one object at a time, and recomputing 10,000 Services for each
would cost a CPU core under churn; ``PlanBuilder`` instead re-evaluates only the Service an event
touches (``evaluate_service``), keeps the candidates of every prefix, merges only the prefixes that
changed, and hands the speaker just the difference (``take_delta``). The property tests check
that it always agrees with ``compute_plan`` on the same objects.

A builder is not thread-safe: ``cosmolet.sources.state.ClusterState`` wraps it with a
lock for the source threads and the reconciler.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from cosmolet.config.schema import Config
from cosmolet.engine.endpoints import combine, slice_state
from cosmolet.engine.model import (
    NO_LOCAL,
    UNHEALTHY,
    Delta,
    Health,
    LocalCounts,
    Plan,
    Route,
    RouteKind,
    ServiceDecision,
    Skip,
    SkipCode,
)
from cosmolet.engine.objects import EndpointSlice, Malformed, Node, Service
from cosmolet.engine.plan import aggregate_route, assemble, merge_routes
from cosmolet.engine.policy import Policy, node_skip
from cosmolet.engine.rules import evaluate_service

#: Skips that mean a Service asked for something the policy forbids: logged and counted as they
#: appear (once per Service and reason), not just shown in the skipped gauge, and posted as an
#: Event on the Service (an ``ipMode: Proxy`` ingress included: its owner asked for an address
#: the node must not attract traffic for). A kind turned off
#: (load-balancer IPs, by default) is the operator's choice, not a Service's fault: not here.
REFUSALS = frozenset(
    {
        SkipCode.NOT_ALLOWED,
        SkipCode.BAD_ADDRESS,
        SkipCode.BAD_ANNOTATION,
        SkipCode.MAX_ROUTES,
        SkipCode.LB_IP_MODE_PROXY,
    }
)
MAX_PENDING_REFUSALS = 1000

#: A Service is kept packed (msgpack, ~130 bytes for a ClusterIP Service, where its record's
#: objects take ~350) and unpacked when it is evaluated again (~1 us): at 100,000 Services, 20 MB.
_PACK = msgspec.msgpack.Encoder()
_UNPACK = msgspec.msgpack.Decoder(Service)


class PlanBuilder:
    """Cluster records, each Service's decision, and the merged routes, updated per event."""

    def __init__(self, config: Config, node_name: str) -> None:
        self.policy = Policy.from_config(config)
        self.node_name = node_name
        self.services: dict[str, bytes] = {}  # packed (``_PACK``)
        # Of an EndpointSlice only its owner and what it says about health and this node's
        # endpoints are kept (``SliceState``); a Service's slices are one key, or a set of keys
        # when it has several.
        self.slices: dict[str, tuple[str | None, Health, int]] = {}
        self.slices_of: dict[str, str | set[str]] = {}
        self.node: Node | None = None
        self.malformed: dict[str, Skip] = {}
        self.decisions: dict[str, ServiceDecision] = {}
        # prefix -> the one Service's route, or {service: route} when Services share the
        # prefix (a dict per prefix would cost ~2 MB per 10,000 Services for the rare case).
        self.candidates: dict[str, Route | dict[str, Route]] = {}
        self.merged: dict[str, Route] = {}
        self.withdraw_all_reason: Skip | None = None  # e.g. the API server lost for too long
        self._published: dict[str, Route] = {}
        self._dirty: set[str] = set()
        self._full = True  # the next delta must be computed against everything
        # Policy refusals not yet reported (logged and counted by the agent), oldest first.
        self.refusals: list[Skip] = []
        self.refusals_dropped = 0
        # A Service's standing refusals, kept while it is unhealthy (its addresses are not
        # looked at then), so endpoints flapping do not report them again and again.
        self.refused: dict[str, frozenset[Skip]] = {}
        self._over_limit = False

    # --- inputs -------------------------------------------------------------------------------

    def set_service(self, key: str, service: Service | None) -> None:
        if service is None:
            self.services.pop(key, None)
        else:
            self.services[key] = _PACK.encode(service)
        self._refresh(key, service)

    def set_slice(self, key: str, endpoint_slice: EndpointSlice | None) -> None:
        info = (
            None
            if endpoint_slice is None
            else (endpoint_slice.service_key, *slice_state(endpoint_slice, self.node_name))
        )
        self._set_slice_info(key, info)

    def _set_slice_info(self, key: str, info: tuple[str | None, Health, int] | None) -> None:
        old = self.slices.get(key)
        if old == info:
            return  # an update that changes nothing the engine reads (addresses, say)
        if old is not None:
            del self.slices[key]
            if old[0]:
                self._unlink(old[0], key)
        if info is not None:
            self.slices[key] = info
            if info[0]:
                self._link(info[0], key)
        for owner in {i[0] for i in (old, info) if i is not None and i[0]}:
            self._refresh(owner)

    def set_node(self, node: Node | None) -> None:
        before = node_skip(self.policy, self.node_name, self.node)
        self.node = node
        if node_skip(self.policy, self.node_name, node) != before:
            self._full = True
        # ready-here depends on the node *name* only, so no Service needs re-evaluating.

    def set_malformed(self, key: str, item: Malformed | None) -> None:
        if item is None:
            self.malformed.pop(key, None)
        else:
            self.malformed[key] = Skip(
                item.key, SkipCode.MALFORMED, f"malformed {item.kind}: {item.reason}"
            )

    def replace_services(self, services: Iterable[Service]) -> None:
        """A relist: set the Services to exactly these, touching only what differs."""
        fresh = {service.key: service for service in services}
        for key in set(self.services) - set(fresh):
            self.set_service(key, None)
        for key, service in fresh.items():
            if self.services.get(key) != _PACK.encode(service):
                self.set_service(key, service)

    def replace_slices(self, slices: Iterable[EndpointSlice]) -> None:
        fresh = {s.key: (s.service_key, *slice_state(s, self.node_name)) for s in slices}
        for key in set(self.slices) - set(fresh):
            self._set_slice_info(key, None)
        for key, info in fresh.items():
            self._set_slice_info(key, info)

    def recompute_all(self) -> None:
        """Re-evaluate every Service from the cache: the periodic safety net. Only a decision
        that differs changes a route, so a correct state produces an empty delta."""
        for key in list(self.services):
            self._refresh(key)

    def set_withdraw_all(self, reason: Skip | None) -> None:
        if reason != self.withdraw_all_reason:
            self.withdraw_all_reason = reason
            self._full = True

    # --- outputs ------------------------------------------------------------------------------

    def take_refusals(self) -> tuple[list[Skip], int]:
        """Policy refusals since the last call, and how many more were not kept."""
        refusals, dropped = self.refusals, self.refusals_dropped
        self.refusals, self.refusals_dropped = [], 0
        return refusals, dropped

    def _refuse(self, skip: Skip) -> None:
        if len(self.refusals) < MAX_PENDING_REFUSALS:
            self.refusals.append(skip)
        else:
            self.refusals_dropped += 1

    def take_delta(self) -> Delta:
        """What changed in the effective routes since the last call (``None``: withdraw)."""
        over_limit = len(self.merged) > self.policy.max_routes
        if over_limit and not self._over_limit:
            self._refuse(
                Skip(
                    f"node/{self.node_name}",
                    SkipCode.MAX_ROUTES,
                    f"{len(self.merged)} routes wanted, services.maxRoutes is "
                    f"{self.policy.max_routes}: the oldest Services' routes are kept",
                )
            )
        self._over_limit = over_limit
        drained = self._drained()
        if self._full or over_limit or drained:
            effective = {} if drained else self._effective_limited()
            touched: Iterable[str] = set(effective) | set(self._published)
        else:
            effective = self.merged
            touched = self._dirty
        delta: Delta = {}
        for prefix in touched:
            route = effective.get(prefix)
            if self._published.get(prefix) != route:
                delta[prefix] = route
                if route is None:
                    self._published.pop(prefix, None)
                else:
                    self._published[prefix] = route
        self._dirty = set()
        self._full = over_limit or drained
        return delta

    def take_announcements(self) -> dict[str, Route]:
        """Before the first complete list: the routes wanted so far and not yet handed over,
        and nothing else. Withdrawals wait for ``take_delta``, which still compares the whole
        set then; so does a node drain, or a set over ``maxRoutes`` (the oldest Services win,
        which only the complete list can tell): nothing is handed over meanwhile."""
        if not self._full or self._drained() or len(self.merged) > self.policy.max_routes:
            return {}
        touched, self._dirty = self._dirty, set()
        delta: dict[str, Route] = {}
        for prefix in touched:
            route = self.merged.get(prefix)
            if route is not None and self._published.get(prefix) != route:
                delta[prefix] = self._published[prefix] = route
        return delta

    def plan(self) -> Plan:
        """The full plan (sorted routes and every skip), for status and logs."""
        extra = list(self.malformed.values())
        if self.withdraw_all_reason is not None:
            return Plan(self.node_name, (), (self.withdraw_all_reason, *extra))
        return assemble(self.policy, self.node_name, self.node, self.decisions.values(), extra)

    # --- internals ----------------------------------------------------------------------------

    def _drained(self) -> bool:
        return (
            self.withdraw_all_reason is not None
            or node_skip(self.policy, self.node_name, self.node) is not None
        )

    def _effective_limited(self) -> dict[str, Route]:
        if len(self.merged) <= self.policy.max_routes:
            return self.merged
        plan = assemble(self.policy, self.node_name, None, self.decisions.values())
        return {route.prefix: route for route in plan.routes}

    def _refresh(self, service_key: str, service: Service | None = None) -> None:
        """Evaluate the Service again (``service``: its record, when the caller has it)."""
        old = self.decisions.pop(service_key, None)
        if service is None:
            packed = self.services.get(service_key)
            service = None if packed is None else _UNPACK.decode(packed)
        new = None
        if service is not None:
            health, counts = self._state(service_key)
            new = evaluate_service(
                self.policy, self.node_name, service, health, service_key, counts
            )
            if new == old and old is not None:
                # The same decision (the periodic recompute, a slice change that matters not):
                # keep the objects in place, so 100,000 of them are not reallocated every time.
                self.decisions[service_key] = old
                return
            self.decisions[service_key] = new
            self._note_refusals(service_key, new)
        else:
            self.refused.pop(service_key, None)
        touched: set[str] = set()
        for route in old.routes if old else ():
            touched.add(route.prefix)
            self._remove_candidate(route)
        for route in new.routes if new else ():
            touched.add(route.prefix)
            self._add_candidate(route)
        for prefix in touched:
            entry = self.candidates.get(prefix)
            if entry is None:
                self.merged.pop(prefix, None)
            elif isinstance(entry, dict):
                # an aggregate may hold thousands of candidates: counted, not merged again
                first = next(iter(entry.values()))
                self.merged[prefix] = (
                    aggregate_route(first, len(entry))
                    if first.kind is RouteKind.AGGREGATE
                    else merge_routes(entry.values())
                )
            elif entry.kind is RouteKind.AGGREGATE:
                self.merged[prefix] = aggregate_route(entry, 1)
            else:
                self.merged[prefix] = entry
        self._dirty |= touched

    def _note_refusals(self, service_key: str, decision: ServiceDecision) -> None:
        """Report the refusals the Service had not got (a new one, or a new reason). Those it
        had are forgotten only when it is advertised without them: an unhealthy Service is not
        looked at address by address, so its refusals vanish until it is healthy again."""
        refusals = frozenset(skip for skip in decision.skipped if skip.code in REFUSALS)
        known = self.refused.get(service_key, frozenset())
        for skip in decision.skipped:
            if skip in refusals and skip not in known:
                self._refuse(skip)
        if refusals:
            self.refused[service_key] = refusals
        elif decision.routes:
            self.refused.pop(service_key, None)

    def _add_candidate(self, route: Route) -> None:
        service = route.services[0]
        entry = self.candidates.get(route.prefix)
        if entry is None or (isinstance(entry, Route) and entry.services[0] == service):
            self.candidates[route.prefix] = route
        elif isinstance(entry, Route):
            self.candidates[route.prefix] = {entry.services[0]: entry, service: route}
        else:
            entry[service] = route

    def _remove_candidate(self, route: Route) -> None:
        service = route.services[0]
        entry = self.candidates.get(route.prefix)
        if isinstance(entry, Route):
            if entry.services[0] == service:
                del self.candidates[route.prefix]
        elif entry is not None:
            entry.pop(service, None)
            if len(entry) == 1:
                self.candidates[route.prefix] = next(iter(entry.values()))

    def _link(self, service_key: str, slice_key: str) -> None:
        entry = self.slices_of.get(service_key)
        if entry is None or entry == slice_key:
            self.slices_of[service_key] = slice_key
        elif isinstance(entry, str):
            self.slices_of[service_key] = {entry, slice_key}
        else:
            entry.add(slice_key)

    def _unlink(self, service_key: str, slice_key: str) -> None:
        entry = self.slices_of.get(service_key)
        if entry == slice_key:
            del self.slices_of[service_key]
        elif isinstance(entry, set):
            entry.discard(slice_key)
            if len(entry) == 1:
                self.slices_of[service_key] = next(iter(entry))

    def _state(self, service_key: str) -> tuple[Health, LocalCounts]:
        """The Service's health and this node's endpoints per family, from its slices."""
        entry = self.slices_of.get(service_key)
        if entry is None:
            return UNHEALTHY, NO_LOCAL
        if isinstance(entry, str):
            _owner, health, local = self.slices[entry]
            if not local:
                return health, NO_LOCAL  # the common case, without allocating
            return combine([(health, local)])
        return combine(self.slices[slice_key][1:] for slice_key in entry)
