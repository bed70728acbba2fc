"""Prometheus metrics: event counters and histograms updated by the reconciler, and gauges
read from the agent's state at scrape time (so they can never drift from it).

Label values are bounded: ``peer`` is a configured or discovered BGP neighbor, ``family`` is
ipv4/ipv6, ``reason`` is a ``SkipCode``, ``kind`` a watched resource. No Service name or prefix
is ever a label (10,000 Services would make 10,000 series).
"""

from __future__ import annotations

import platform
import time
from collections import Counter as Tally
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from cosmolet import __version__
from cosmolet.agent.speaker import SessionState

if TYPE_CHECKING:
    from cosmolet.agent.reconciler import Agent

LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


class Metrics:
    """One registry per agent (tests run several in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.announced = Counter(
            "cosmolet_route_announcements",
            "Routes announced to ExaBGP (per peer, one per prefix).",
            ["family"],
            registry=self.registry,
        )
        self.withdrawn = Counter(
            "cosmolet_route_withdrawals",
            "Routes withdrawn through ExaBGP (per peer, one per prefix).",
            ["family"],
            registry=self.registry,
        )
        self.commands = Counter(
            "cosmolet_exabgp_commands",
            "Command lines written to ExaBGP (a batched line carries up to 500 prefixes).",
            registry=self.registry,
        )
        self.reconcile = Histogram(
            "cosmolet_reconcile_duration_seconds",
            "Time to turn a batch of changes into commands and write them to ExaBGP.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.event_to_command = Histogram(
            "cosmolet_event_to_command_seconds",
            "From a cluster change reaching the agent to its commands written to ExaBGP.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.refusals = Counter(
            "cosmolet_policy_refusals",
            "Service addresses refused by policy as they appeared (allowlists, bad addresses or "
            "annotations, services.maxRoutes), by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.errors = Counter(
            "cosmolet_reconcile_errors",
            "Events whose handling failed (logged; the loop went on).",
            registry=self.registry,
        )


class StateCollector(Collector):
    """Gauges computed from the agent when Prometheus scrapes."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def collect(self) -> Iterator[Any]:
        agent = self.agent
        now = agent.clock()
        up = GaugeMetricFamily(
            "cosmolet_bgp_session_up", "1 when the BGP session is established.", labels=["peer"]
        )
        uptime = GaugeMetricFamily(
            "cosmolet_bgp_session_uptime_seconds",
            "Seconds since the session came up (0 when down).",
            labels=["peer"],
        )
        advertised = GaugeMetricFamily(
            "cosmolet_routes_advertised",
            "Routes currently advertised to the peer.",
            labels=["peer", "family"],
        )
        for name, rib in list(agent.speaker.peers.items()):
            is_up = rib.state is SessionState.UP
            up.add_metric([name], 1.0 if is_up else 0.0)
            uptime.add_metric([name], now - rib.since if is_up else 0.0)
            counts = Tally(
                "ipv6" if ":" in prefix else "ipv4"
                for prefix in (rib.advertised.copy() if is_up else ())
            )
            for family in rib.session.families:
                advertised.add_metric([name, str(family)], counts.get(str(family), 0))
        yield up
        yield uptime
        yield advertised

        desired = GaugeMetricFamily(
            "cosmolet_routes_desired", "Routes the plan wants advertised.", labels=["family"]
        )
        wanted = Tally(str(route.family) for route in agent.speaker.desired.copy().values())
        for name in ("ipv4", "ipv6"):
            desired.add_metric([name], wanted.get(name, 0))
        yield desired

        held = GaugeMetricFamily(
            "cosmolet_routes_held",
            "Routes wanted but held back because they flapped (services.healthHold).",
        )
        held.add_metric([], len(agent.hold.held))
        yield held

        skipped = GaugeMetricFamily(
            "cosmolet_services_skipped",
            "Items of the plan not advertised, by reason.",
            labels=["reason"],
        )
        if agent.state.readiness.synced:
            for reason, count in sorted(Tally(s.code for s in agent.state.plan().skipped).items()):
                skipped.add_metric([str(reason)], count)
        yield skipped

        ready = GaugeMetricFamily(
            "cosmolet_ready", "1 when the cluster is synced and the first plan was sent."
        )
        ready.add_metric([], 1.0 if agent.ready()[0] else 0.0)
        yield ready

        api = agent.api_health()
        if api is not None:
            for name, value, text in (
                ("cosmolet_watch_restarts", api.watch_restarts, "Watches resumed."),
                ("cosmolet_watch_relists", api.relists, "Relists after 410 Gone."),
                ("cosmolet_api_errors", api.errors, "Failed Kubernetes API requests."),
            ):
                counter = CounterMetricFamily(name, text)
                counter.add_metric([], value)
                yield counter
            connected = GaugeMetricFamily(
                "cosmolet_api_connected", "1 while every watch is connected to the API server."
            )
            connected.add_metric([], 1.0 if api.connected else 0.0)
            yield connected

        info = InfoMetricFamily("cosmolet_build", "Build information.")
        info.add_metric(
            [],
            {
                "version": __version__,
                "python": platform.python_version(),
                "exabgp": exabgp_version(),
            },
        )
        yield info


_EXABGP_VERSION: str | None = None


def exabgp_version() -> str:
    global _EXABGP_VERSION
    if _EXABGP_VERSION is None:
        try:
            from importlib.metadata import version

            _EXABGP_VERSION = version("exabgp")
        except Exception:
            _EXABGP_VERSION = "unknown"
    return _EXABGP_VERSION


def since_epoch(monotonic_value: float, clock_now: float) -> float:
    """A monotonic timestamp as Unix time, for ``/status``."""
    return time.time() - (clock_now - monotonic_value)
