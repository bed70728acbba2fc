"""Prometheus metrics: counters and histograms fed by each ``Reconciled`` report (``observe``),
and gauges read from the agent's read-only view at scrape time (so they can never drift from it).

Label values are bounded: ``peer`` is a configured or discovered BGP neighbor, ``family`` is
ipv4/ipv6, ``reason`` is a ``SkipCode``, ``kind`` a watched resource. No Service name or prefix
is ever a label (10,000 Services would make 10,000 series).
"""

from __future__ import annotations

import platform
from collections import Counter as Tally
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from cosmolet import __version__
from cosmolet.agent.report import Reconciled
from cosmolet.agent.view import AgentView
from cosmolet.version import exabgp_version

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

    def observe(self, report: Reconciled) -> None:
        """Count what one reconcile wrote, and how long it took."""
        changes = report.commands
        if changes.lines:
            self.commands.inc(len(changes.lines))
        for (kind, family), count in changes.counts.items():
            counter = self.announced if kind == "announce" else self.withdrawn
            counter.labels(family).inc(count)
        for skip in report.refusals:
            self.refusals.labels(str(skip.code)).inc()
        if report.started is not None:
            self.reconcile.observe(report.finished - report.started)
            if report.caused_at is not None and changes.lines:
                self.event_to_command.observe(report.finished - report.caused_at)


class StateCollector(Collector):
    """Gauges computed from the agent's view when Prometheus scrapes."""

    def __init__(self, agent: AgentView) -> None:
        self.agent = agent

    def collect(self) -> Iterator[Any]:
        agent = self.agent
        now = agent.now()
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
        for peer in agent.peers():
            up.add_metric([peer.name], 1.0 if peer.up else 0.0)
            uptime.add_metric([peer.name], now - (peer.since or now) if peer.up else 0.0)
            counts = Tally(
                "ipv6" if ":" in prefix else "ipv4"
                for prefix in (peer.advertised if peer.up else ())
            )
            for family in peer.families:
                advertised.add_metric([peer.name, family], counts.get(family, 0))
        yield up
        yield uptime
        yield advertised

        desired = GaugeMetricFamily(
            "cosmolet_routes_desired", "Routes the plan wants advertised.", labels=["family"]
        )
        wanted = Tally(str(route.family) for route in agent.desired())
        for name in ("ipv4", "ipv6"):
            desired.add_metric([name], wanted.get(name, 0))
        yield desired

        held = GaugeMetricFamily(
            "cosmolet_routes_held",
            "Routes wanted but held back because they flapped (services.healthHold).",
        )
        held.add_metric([], agent.held())
        yield held

        skipped = GaugeMetricFamily(
            "cosmolet_services_skipped",
            "Items of the plan not advertised, by reason.",
            labels=["reason"],
        )
        for reason, count in sorted(Tally(s.code for s in agent.skipped() or ()).items()):
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

        errors = CounterMetricFamily(
            "cosmolet_reconcile_errors", "Events whose handling failed (logged; the loop went on)."
        )
        errors.add_metric([], agent.errors())
        yield errors

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
