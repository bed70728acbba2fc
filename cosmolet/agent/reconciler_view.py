"""The reconciler's read-only side: ``cosmolet.agent.view.AgentView`` for the HTTP threads and
the metrics, kept apart from the loop that writes. Called from any thread while the reconciler
runs, it takes no lock and returns copies only (a dict copy is atomic in CPython)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cosmolet.agent.brake import BrakeView
from cosmolet.agent.gate import GateView
from cosmolet.agent.guards import Guards
from cosmolet.agent.peering import Peering
from cosmolet.agent.speaker import SessionState, Speaker
from cosmolet.agent.view import PeeringView, PeerView
from cosmolet.config.schema import Config
from cosmolet.engine.hold import RiseHold
from cosmolet.engine.model import Route, Skip
from cosmolet.engine.peers import unsent_families
from cosmolet.sources import ApiHealth, Source
from cosmolet.sources.state import ClusterState

#: /healthz fails when the loop has not turned for this long (it turns every second when idle;
#: only a write to ExaBGP blocked this long, or a bug, can stop it).
HEALTH_STALL_SECONDS = 120.0


class ReconcilerView:
    """What the reconciler shows; the ``Reconciler`` sets every attribute declared here."""

    config: Config
    state: ClusterState
    speaker: Speaker
    neighbors: Peering
    hold: RiseHold
    guards: Guards
    source: Source | None
    clock: Callable[[], float]
    first_sent: bool
    draining: bool
    heartbeat: float
    error_count: int

    @property
    def node_name(self) -> str:
        return self.config.node_name

    @property
    def bgp_enabled(self) -> bool:
        return self.config.bgp.enabled

    def now(self) -> float:
        return self.clock()

    def ready(self) -> tuple[bool, str]:
        if not self.state.readiness.synced:
            return False, "waiting for the first complete list of Services, EndpointSlices, Node"
        gate = self.guards.gate
        held_back = None if gate is None else gate.not_ready_reason(self.clock())
        if held_back is not None:
            return False, held_back
        if not self.first_sent:
            return False, "the first plan has not been sent to ExaBGP yet"
        if self.draining:
            return False, "draining: every route withdrawn"
        api = self.api_health()
        if api is not None and not api.connected and api.lost_for_s > 0:
            # Still ready: the routes stay advertised (the data plane does not depend on the
            # control plane); the body says why nothing new can arrive.
            return True, f"ok; API server unreachable for {api.lost_for_s:.0f} s, keeping routes"
        return True, "ok"

    def healthy(self) -> tuple[bool, str]:
        """Would a restart help? Only if a loop stopped; a peer being down is no reason."""
        stalled = self.clock() - self.heartbeat
        if stalled > HEALTH_STALL_SECONDS:
            return False, f"the reconciler has made no progress for {stalled:.0f} s"
        if self.source is not None:
            health = self.source.health()
            if not health.alive:
                return False, f"the cluster-state source: {health.reason}"
        return True, "ok"

    def api_health(self) -> ApiHealth | None:
        return None if self.source is None else self.source.health().api

    def peers(self) -> list[PeerView]:
        """Each session and the routes it holds: what was sent and ExaBGP did not refuse, not
        what is unknown (ExaBGP may hold it, the peer may not)."""
        return [
            PeerView(
                name=name,
                interface=rib.session.interface or None,
                state=str(rib.state),
                up=rib.state is SessionState.UP,
                since=rib.since or None,
                families=tuple(str(f) for f in rib.session.families),
                advertised=rib.held(),
                origin=rib.session.origin,
            )
            for name, rib in list(self.speaker.peers.items())
        ]

    def peering(self) -> PeeringView:
        resolved = self.neighbors.resolved
        if resolved is None:
            return PeeringView()
        unsent = unsent_families(
            (route.family for route in self.desired()),
            (f for rib in list(self.speaker.peers.values()) for f in rib.session.families),
        )
        return PeeringView(
            asn=resolved.asn,
            asn_from=resolved.asn_from,
            router_id=resolved.router_id,
            router_id_from=resolved.router_id_from,
            problems=[(p.path, p.message) for p in resolved.problems + unsent],
            unused=[(p.path, p.message) for p in resolved.unused],
        )

    def desired(self) -> list[Route]:
        return list(self.speaker.desired.copy().values())

    def held(self) -> int:
        return len(self.hold.held)

    def skipped(self) -> Sequence[Skip] | None:
        return self.state.plan().skipped if self.state.readiness.synced else None

    def errors(self) -> int:
        return self.error_count

    def gate(self) -> GateView | None:
        gate = self.guards.gate
        return None if gate is None else gate.view()

    def brake(self) -> BrakeView | None:
        brake = self.guards.brake
        return None if brake is None else brake.view()
