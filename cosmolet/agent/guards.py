"""What stands between the cluster state and the fabric besides the flap hold: the data-plane
gate (``node.dataplaneGate``) and the mass-withdraw brake (``services.withdrawBrake``), as the
reconciler applies them.

The gate closes through the route engine's withdraw-all switch, the one the API-loss policy
uses (``PlanBuilder.set_withdraw_all``): every route goes, ``/status`` lists the reason, and
when it opens the builder hands back the whole plan, through the flap hold. The two share that
one slot: the gate's reason is put back before each take of the state while the gate is closed
(the API policy may have cleared it), and cleared only if it is the gate's own.

Owned by the reconciler's thread, like the flap hold.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from cosmolet import logs
from cosmolet.agent.brake import Brake, Engaged
from cosmolet.agent.gate import Gate
from cosmolet.config.schema import Config
from cosmolet.engine.model import Delta, Route, SkipCode
from cosmolet.engine.policy import node_skip
from cosmolet.sources.state import ClusterState

log = logs.get("cosmolet.agent")


class Guards:
    def __init__(self, config: Config, state: ClusterState, *, restored: bool = False) -> None:
        """``restored``: the journal listed routes a previous agent announced, so the gate
        starts as having passed (``cosmolet.agent.gate``)."""
        self.node_name = config.node_name
        self.state = state
        gate = config.node.dataplane_gate
        self.gate = (
            None if gate.url == "none" else Gate(gate.url, gate.fail_after_seconds, passed=restored)
        )
        brake = config.services.withdraw_brake
        self.brake = None if brake is None else Brake(brake)
        #: the gate has passed once (always, without a gate): routes may be announced
        self.gate_passed = self.gate is None or restored
        self.gate_closed = False
        #: told of each engagement (the Kubernetes Event on the Node)
        self.on_brake: Callable[[Engaged], None] | None = None

    # --- the data-plane gate ------------------------------------------------------------------

    def gate_changed(self, allows: bool) -> None:
        """The poller's news: open (first pass, or recovery) or closed (failed too long)."""
        if allows:
            self.gate_passed = True
            self.gate_closed = False
        elif self.gate_passed:
            self.gate_closed = True
        self.assert_gate()

    def assert_gate(self) -> None:
        """Make the builder's withdraw-all switch say what the gate says (see the module)."""
        if self.gate is None:
            return
        with self.state.lock:
            current = self.state.builder.withdraw_all_reason
        ours = current is not None and current.code is SkipCode.DATAPLANE_GATE
        if self.gate_closed and current is None:
            skip = self.gate.skip(self.node_name)
            log.warning("data-plane gate closed: withdrawing every route", reason=skip.reason)
            with self.state.update() as builder:
                builder.set_withdraw_all(skip)
        elif not self.gate_closed and ours:
            log.info("data-plane gate open again: advertising")
            with self.state.update() as builder:
                builder.set_withdraw_all(None)

    # --- the mass-withdraw brake --------------------------------------------------------------

    def brake_filter(
        self, delta: Delta, desired: Mapping[str, Route], now: float, api_connected: bool
    ) -> Delta:
        """``delta`` less the withdrawals the brake holds (see ``cosmolet.agent.brake``)."""
        brake = self.brake
        if brake is None:
            return delta
        if not brake.held and not any(route is None for route in delta.values()):
            return delta
        with self.state.lock:
            builder = self.state.builder
            stopping = builder.withdraw_all_reason is not None or (
                node_skip(builder.policy, builder.node_name, builder.node) is not None
            )
            # An aggregate names no Service: it is never "deleted", and goes (or is held) when
            # nothing inside it is healthy any more.
            deleted = {
                prefix
                for prefix in (*(p for p, route in delta.items() if route is None), *brake.held)
                if (old := desired.get(prefix)) is not None
                and old.services
                and not any(service in builder.services for service in old.services)
            }
        if stopping:
            # The node stops advertising altogether: what the brake holds goes with the rest.
            held = brake.release()
            return {**held, **delta} if held else delta
        # Held withdrawals whose Services were all deleted meanwhile go now (never braked).
        forgotten = brake.forget(deleted)
        out, engaged = brake.filter(delta, desired, deleted, now, may_engage=api_connected)
        out = {**forgotten, **out}
        if engaged is not None:
            log.warning(
                "withdraw brake engaged: holding a mass withdrawal while the API server says so; "
                "it proceeds if the state still says so when the hold ends",
                held=engaged.held,
                advertised=engaged.advertised,
                fraction=round(engaged.fraction, 3),
                max_fraction=brake.max_fraction,
                hold_seconds=brake.hold_seconds,
            )
            if self.on_brake is not None:
                self.on_brake(engaged)
        return out

    def brake_due(self, now: float) -> Delta:
        if self.brake is None:
            return {}
        due = self.brake.due(now)
        if due:
            log.warning(
                "withdraw brake released: the state still wants these routes withdrawn",
                count=len(due),
            )
        return due

    def next_due(self) -> float | None:
        return None if self.brake is None else self.brake.until
