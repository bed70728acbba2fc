"""The route changes and policy refusals in the log, within a budget.

One line per announced or withdrawn prefix and per refused Service address is what an operator
wants to read, until a big batch or sustained churn would flood the log: per-item lines share a
budget of ``DETAIL_LIMIT`` a second; past it they are only counted, and the count is logged when
the second ends. A batch larger than the budget is one summary line.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cosmolet import logs
from cosmolet.agent.report import Reconciled

log = logs.get("cosmolet.agent")

#: Per-item lines (route changes, policy refusals) logged at most this many a second.
DETAIL_LIMIT = 20


class ChangeLog:
    """An observer of the reconciler that logs what each reconcile did."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._window = clock()
        self._logged = 0
        self._unlogged = 0

    def __call__(self, report: Reconciled) -> None:
        self._unlogged += report.refusals_dropped
        for skip in report.refusals:
            if self._within_budget(1):
                log.warning(
                    "refused by policy",
                    service=skip.service,
                    code=str(skip.code),
                    detail=skip.reason,
                )
        if report.first_plan is not None:
            plan = report.first_plan
            log.info(
                "first plan",
                routes=len(plan.routes),
                skipped=len(plan.skipped),
                bgp_enabled=not report.dry_run,
            )
        self._log_changes(report)

    def _within_budget(self, lines: int) -> bool:
        now = self.clock()
        if now - self._window >= 1.0:
            if self._unlogged:
                log.info(
                    "route changes and refusals not logged one by one",
                    count=self._unlogged,
                    seconds=round(now - self._window, 1),
                )
                self._unlogged = 0
            self._window, self._logged = now, 0
        if self._logged + lines > DETAIL_LIMIT:
            self._unlogged += lines
            return False
        self._logged += lines
        return True

    def _log_changes(self, report: Reconciled) -> None:
        changes = report.commands
        total = len(changes.announced) + len(changes.withdrawn)
        if not total:
            return
        if total > DETAIL_LIMIT:
            log.info(
                "routes changed",
                announced=len(changes.announced),
                withdrawn=len(changes.withdrawn),
                commands=len(changes.lines),
                reason=report.cause,
                dry_run=report.dry_run,
            )
            return
        if not self._within_budget(total):
            return
        for prefix in sorted(changes.announced):
            log.info(
                "announce",
                prefix=prefix,
                services=list(report.services_after(prefix)),
                reason=report.cause,
                dry_run=report.dry_run,
            )
        for prefix in sorted(changes.withdrawn):
            log.info("withdraw", prefix=prefix, reason=report.cause, dry_run=report.dry_run)
