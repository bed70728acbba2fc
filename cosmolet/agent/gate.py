"""The data-plane gate's state machine (``node.dataplaneGate``): may this node advertise, given
what its service proxy's health endpoint has said?

A route that reaches the fabric before the node's kube-proxy has programmed the Service's rules
is a blackhole (at every node boot, at every kube-proxy restart), and so is one that stays after
the proxy stopped updating them. So: nothing is announced until the endpoint first passes; once
it has, a failure that lasts ``failAfterSeconds`` (measured from the first failed probe) withdraws
every route, and the next pass re-announces them. A single failed probe never withdraws: a proxy
restart, or one slow answer, is not worth a fabric-wide reconvergence.

A restarted agent (ExaBGP respawns it after a kill or an OOM) whose journal lists routes starts
the gate as having passed (``passed``): those routes are out there already, in ExaBGP, and a
gate that waited for a pass before sending the first plan would leave them there for as long as
the proxy stayed broken. So the first plan goes out as without a gate, and a failure that lasts
``failAfterSeconds`` withdraws everything, as after any pass.

Pure and clock-free: the poller (``cosmolet.agent.gate_probe``) passes each probe's result and
its monotonic time; the reconciler is told only when ``allows`` changes. Thread-safe: the poller
writes, the HTTP threads read ``view()``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import StrEnum

from cosmolet.engine.model import Skip, SkipCode


class GateState(StrEnum):
    WAITING = "waiting"  # never passed: nothing announced yet
    OPEN = "open"  # the last probe passed
    FAILING = "failing"  # failing, for less than failAfterSeconds: routes kept
    CLOSED = "closed"  # failed for failAfterSeconds after having passed: routes withdrawn


@dataclass(frozen=True)
class Probe:
    """One look at the health endpoint: did it pass, and what it said (or why it failed)."""

    ok: bool
    detail: str


@dataclass(frozen=True)
class GateView:
    """What ``/status``, ``/readyz`` and the metrics show of the gate."""

    url: str
    state: GateState
    allows: bool
    #: the last probe's result and monotonic time (``None`` before the first)
    last: Probe | None
    last_at: float | None
    #: monotonic time of the first failed probe of the current failure, if failing
    failing_since: float | None
    failures: int  # failed probes since the start


class Gate:
    def __init__(self, url: str, fail_after_seconds: float, *, passed: bool = False) -> None:
        self.url = url
        self.fail_after = fail_after_seconds
        self._lock = threading.Lock()
        state = GateState.OPEN if passed else GateState.WAITING
        self._view = GateView(url, state, passed, None, None, None, 0)

    def observe(self, probe: Probe, now: float) -> bool | None:
        """Record a probe's result; returns the new ``allows`` when it changed, else ``None``."""
        with self._lock:
            old = self._view
            failures = old.failures + (0 if probe.ok else 1)
            since = old.failing_since
            if probe.ok:
                state, since = GateState.OPEN, None
            elif old.state is GateState.WAITING:
                state = GateState.WAITING
            else:
                since = now if since is None else since
                late = now - since >= self.fail_after
                state = GateState.CLOSED if late else GateState.FAILING
            allows = state in (GateState.OPEN, GateState.FAILING)
            self._view = GateView(self.url, state, allows, probe, now, since, failures)
        return allows if allows != old.allows else None

    def view(self) -> GateView:
        with self._lock:
            return self._view

    def skip(self, node_name: str) -> Skip:
        """Why every route is withdrawn while the gate is closed (``/status``'s skipped)."""
        view = self.view()
        detail = view.last.detail if view.last else "no answer yet"
        return Skip(
            node_name,
            SkipCode.DATAPLANE_GATE,
            f"the service proxy's health check ({self.url}) has failed for over "
            f"{self.fail_after:g} s (node.dataplaneGate.failAfterSeconds): {detail}",
        )

    def not_ready_reason(self, now: float) -> str | None:
        """What ``/readyz`` says while the gate keeps routes back, or ``None``."""
        view = self.view()
        detail = view.last.detail if view.last else "no answer yet"
        if view.state is GateState.WAITING:
            return (
                f"waiting for the data-plane gate: the service proxy's health check "
                f"({self.url}) has not passed yet; last: {detail}"
            )
        if view.state is GateState.CLOSED and view.failing_since is not None:
            return (
                f"data-plane gate closed: the service proxy's health check ({self.url}) has "
                f"failed for {now - view.failing_since:.0f} s, every route withdrawn; "
                f"last: {detail}"
            )
        return None


def gate_json(view: GateView | None, now: float) -> dict[str, object] | None:
    """``/status``'s ``dataplaneGate``: ``None`` without a gate (``url: none``)."""
    if view is None:
        return None
    return {
        "url": view.url,
        "state": str(view.state),
        "allowsRoutes": view.allows,
        "lastResult": None if view.last is None else ("pass" if view.last.ok else "fail"),
        "lastDetail": None if view.last is None else view.last.detail,
        "lastProbeSecondsAgo": None if view.last_at is None else round(now - view.last_at, 1),
        "failingForSeconds": (
            None if view.failing_since is None else round(now - view.failing_since, 1)
        ),
        "failures": view.failures,
    }
