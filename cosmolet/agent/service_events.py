"""Which Services start or stop being advertised from this node: the Kubernetes Events to post.

An observer of the reconciler. The first plan after a start is not news (a restart would post
an Event per Service), and neither is a drain: only changes to the desired set are.
"""

from __future__ import annotations

from collections.abc import Callable

from cosmolet.agent.report import Reconciled
from cosmolet.kube.events import ServiceEvent


class ServiceEvents:
    def __init__(self, record: Callable[[ServiceEvent], None], node_name: str) -> None:
        self.record = record
        self.node_name = node_name

    def __call__(self, report: Reconciled) -> None:
        if report.first_plan is not None:
            return
        node = self.node_name
        for prefix in report.delta:
            old = set(report.services_before(prefix))
            new = set(report.services_after(prefix))
            for service in sorted(new - old):
                self.record(
                    ServiceEvent(service, "Advertised", f"{prefix} advertised from node {node}")
                )
            for service in sorted(old - new):
                self.record(
                    ServiceEvent(service, "Withdrawn", f"{prefix} withdrawn from node {node}")
                )
