"""The cluster state shared by the source threads and the reconciler: a ``PlanBuilder`` behind
a lock, with a change signal.

Sources mutate it inside ``with state.update():``; when the block ends ``on_change`` is called
(once per block) if the first complete list is done. The reconciler takes the accumulated
difference with ``take_delta``, so a burst of events coalesces into one delta.

Before that, once the source says this node's own state is known (``node_known``: whether it is
drained), each block signals too, and the reconciler may take what is healthy so far with
``take_announcements``: a list page's Services go out before the next page arrives. Nothing is
withdrawn until the lists are complete, since a half-listed cache (Services without their
EndpointSlices yet) looks unhealthy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cosmolet.engine.builder import PlanBuilder
from cosmolet.engine.model import Delta, Plan, Route, Skip


@dataclass
class Readiness:
    synced: bool = False
    reason: str = "initial list not done"
    #: this node's own state is known: what is healthy may go out before ``synced``
    node_known: bool = False


class ClusterState:
    """A ``PlanBuilder`` shared by the source threads and the reconciler, with change signals.

    Sources mutate it inside ``with state.update():``; when the block ends, ``on_change`` is
    called (once per block) if the source has completed its first sync. The reconciler takes
    the accumulated difference with ``take_delta``.
    """

    def __init__(self, builder: PlanBuilder, on_change: Callable[[float], None]) -> None:
        self.builder = builder
        self.lock = threading.Lock()
        self.on_change = on_change
        self.readiness = Readiness()
        self._pending_since: float | None = None
        self._plan_cache: Plan | None = None

    class _Update:
        def __init__(self, state: ClusterState) -> None:
            self.state = state

        def __enter__(self) -> PlanBuilder:
            self.state.lock.acquire()
            self.started = time.monotonic()
            return self.state.builder

        def __exit__(self, *exc: object) -> None:
            state = self.state
            if state._pending_since is None:
                state._pending_since = self.started
            state._plan_cache = None
            ready = state.readiness.synced or state.readiness.node_known
            state.lock.release()
            if ready:
                state.on_change(self.started)

    def update(self) -> ClusterState._Update:
        return ClusterState._Update(self)

    def mark_synced(self) -> None:
        """The source has listed everything once: changes may now reach the fabric."""
        with self.lock:
            first = not self.readiness.synced
            self.readiness = Readiness(True, "", node_known=True)
            started = self._pending_since or time.monotonic()
        if first:
            self.on_change(started)

    def mark_node_known(self) -> None:
        """The source has this node's own object (or knows there is none): from now on what is
        healthy may be announced before the lists are complete (``take_announcements``)."""
        with self.lock:
            first = not self.readiness.node_known
            self.readiness.node_known = True
            started = self._pending_since or time.monotonic()
        if first:
            self.on_change(started)

    def take_announcements(self) -> dict[str, Route]:
        """Before the first complete list: the healthy routes not handed over yet, never a
        withdrawal (``PlanBuilder.take_announcements``); empty once synced."""
        with self.lock:
            if self.readiness.synced or not self.readiness.node_known:
                return {}
            return self.builder.take_announcements()

    def take_delta(self) -> tuple[Delta, float | None]:
        """The route changes since the last call, and when the oldest of them was caused."""
        with self.lock:
            delta = self.builder.take_delta()
            since, self._pending_since = self._pending_since, None
            return delta, since

    def take_refusals(self) -> tuple[list[Skip], int]:
        with self.lock:
            return self.builder.take_refusals()

    def plan(self) -> Plan:
        with self.lock:
            if self._plan_cache is None:
                self._plan_cache = self.builder.plan()
            return self._plan_cache
