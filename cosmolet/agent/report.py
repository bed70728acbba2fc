"""``Reconciled``: what one turn of the reconciler did, in one value.

The reconciler hands it to its observers (metrics, the change log, Kubernetes Events), so none of
them reads the speaker's state after the fact: the routes before and after each changed prefix
are in the report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cosmolet.agent.speaker import Changes
from cosmolet.engine.model import Plan, Route, Skip


@dataclass(frozen=True)
class Reconciled:
    cause: str
    #: what the speaker produced: the command lines and the prefixes announced/withdrawn per peer
    commands: Changes
    #: the changes to the desired set that were applied (empty for a peer event)
    delta: Mapping[str, Route | None] = field(default_factory=dict)
    #: the desired route of each prefix of ``delta`` before it (absent: not wanted before)
    before: Mapping[str, Route] = field(default_factory=dict)
    #: set on the first plan sent after the start, which Events and per-route logs skip
    first_plan: Plan | None = None
    dry_run: bool = False
    #: monotonic times: when this reconcile began and ended, and when the oldest cluster change
    #: behind it happened (``None`` when not caused by the cluster state)
    started: float | None = None
    finished: float = 0.0
    caused_at: float | None = None
    #: policy refusals that appeared since the last reconcile, and how many more were dropped
    refusals: tuple[Skip, ...] = ()
    refusals_dropped: int = 0

    def services_before(self, prefix: str) -> tuple[str, ...]:
        route = self.before.get(prefix)
        return route.services if route else ()

    def services_after(self, prefix: str) -> tuple[str, ...]:
        route = self.delta.get(prefix, self.before.get(prefix))
        return route.services if route else ()
