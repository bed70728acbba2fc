"""The data-plane gate's and the withdraw brake's metrics, read from their views at scrape time
(registered only when each is configured)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from cosmolet.agent.brake import BrakeView
from cosmolet.agent.gate import GateView


class GateCollector(Collector):
    """``cosmolet_dataplane_gate_open`` and ``cosmolet_dataplane_gate_failures``."""

    def __init__(self, view: Callable[[], GateView | None]) -> None:
        self.view = view

    def collect(self) -> Iterator[Any]:
        view = self.view()
        if view is None:
            return
        state = GaugeMetricFamily(
            "cosmolet_dataplane_gate_open",
            "1 while the data-plane gate lets routes be advertised (node.dataplaneGate): it has "
            "passed, and has not failed for failAfterSeconds since.",
        )
        state.add_metric([], 1.0 if view.allows else 0.0)
        yield state
        failures = CounterMetricFamily(
            "cosmolet_dataplane_gate_failures",
            "Failed probes of the service proxy's health endpoint.",
        )
        failures.add_metric([], view.failures)
        yield failures


class BrakeCollector(Collector):
    """``cosmolet_withdraw_brake_*``: engagements, the withdrawals held now, and what became of
    held ones (released when the hold ended, or recovered within it)."""

    def __init__(self, view: Callable[[], BrakeView | None]) -> None:
        self.view = view

    def collect(self) -> Iterator[Any]:
        view = self.view()
        if view is None:
            return
        held = GaugeMetricFamily(
            "cosmolet_withdraw_brake_held_routes",
            "Withdrawals the brake holds now (services.withdrawBrake): the routes stay advertised.",
        )
        held.add_metric([], view.held)
        yield held
        for name, value, text in (
            (
                "cosmolet_withdraw_brake_engagements",
                view.engagements,
                "Times a reconcile would have withdrawn more than maxFraction of the routes.",
            ),
            (
                "cosmolet_withdraw_brake_released_routes",
                view.released,
                "Held withdrawals sent when the hold ended (the state still wanted them).",
            ),
            (
                "cosmolet_withdraw_brake_recovered_routes",
                view.recovered,
                "Held withdrawals the cluster state took back within the hold.",
            ),
        ):
            counter = CounterMetricFamily(name, text)
            counter.add_metric([], value)
            yield counter
