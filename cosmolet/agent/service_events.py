"""The Kubernetes Events to post: which Services start or stop being advertised from this node,
which of their addresses policy refuses, and when the withdraw brake holds a mass withdrawal.

An observer of the reconciler. The first plan after a start is not news for the first two kinds
(a restart would post an Event per Service), and neither is a drain: only changes to the desired
set are. A refusal is posted when it appears or its reason changes (the route engine reports it
once per change, ``PlanBuilder.take_refusals``), the first plan included: the Service's owner
learns why its address is not advertised whenever cosmolet starts looking at it. A refusal that
is not about one Service (``services.maxRoutes`` reached) goes on the Node.
"""

from __future__ import annotations

from collections.abc import Callable

from cosmolet.agent.brake import Engaged
from cosmolet.agent.report import Reconciled
from cosmolet.kube.events import ServiceEvent

NOT_ADVERTISED = "NotAdvertised"
WITHDRAW_BRAKED = "WithdrawBraked"
_NODE_PREFIX = "node/"


class ServiceEvents:
    def __init__(self, record: Callable[[ServiceEvent], None], node_name: str) -> None:
        self.record = record
        self.node_name = node_name

    def __call__(self, report: Reconciled) -> None:
        node = self.node_name
        for skip in report.refusals:
            message = f"not advertised from node {node}: {skip.reason} ({skip.code})"
            if skip.service.startswith(_NODE_PREFIX):
                name = skip.service.removeprefix(_NODE_PREFIX)
                self.record(ServiceEvent(name, NOT_ADVERTISED, message, "Warning", "Node"))
            else:
                self.record(ServiceEvent(skip.service, NOT_ADVERTISED, message, "Warning"))
        if report.first_plan is not None:
            return
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

    def brake_engaged(self, engaged: Engaged) -> None:
        """A Warning on this Node: a mass withdrawal is held (``services.withdrawBrake``)."""
        self.record(
            ServiceEvent(
                self.node_name,
                WITHDRAW_BRAKED,
                f"holding the withdrawal of {engaged.held} of {engaged.advertised} routes "
                f"({engaged.fraction:.0%}, over services.withdrawBrake.maxFraction): they stay "
                "advertised for holdSeconds, and go then if the cluster state still says so",
                "Warning",
                "Node",
            )
        )
