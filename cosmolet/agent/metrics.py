"""Prometheus metrics: counters and histograms fed by each ``Reconciled`` report (``observe``),
and gauges read from the agent's read-only view at scrape time (so they can never drift from it),
with the standard ``process_*`` and ``python_*`` families beside them, and no ``_created``
series (one Unix time per counter and histogram: noise to every dashboard and query).

Label values are bounded: ``peer`` is a configured or discovered BGP neighbor, ``family`` is
ipv4/ipv6, ``reason`` is a ``SkipCode``, ``policy`` a ``RouteKind``, ``kind`` a watched
resource. No Service name or prefix is ever a label (10,000 Services would make 10,000 series).
"""

from __future__ import annotations

import platform
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from cosmolet import __version__
from cosmolet.agent.report import Reconciled
from cosmolet.agent.view import AgentView
from cosmolet.config.schema import Config
from cosmolet.engine.model import route_share
from cosmolet.hybrid.bfd_state import BfdReader, BfdSession
from cosmolet.version import exabgp_version

LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


class Registry(CollectorRegistry):
    """A registry that drops the ``_created`` samples of counters and histograms, in both
    exposition formats, whatever ``PROMETHEUS_DISABLE_CREATED_SERIES`` says (the library's
    switch for it, ``disable_created_metrics``, is process-wide)."""

    def collect(self) -> Iterable[Metric]:
        for metric in super().collect():
            created = metric.name + "_created"
            metric.samples = [sample for sample in metric.samples if sample.name != created]
            yield metric


class Metrics:
    """One registry per agent (tests run several in one process)."""

    def __init__(self) -> None:
        self.registry = Registry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
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
        # The agent keeps monotonic times; one offset, taken once, turns them into Unix times
        # that stay the same from scrape to scrape (``changes()`` over the established
        # timestamp counts flaps only if it does not jitter).
        self.epoch_offset = time.time() - agent.now()

    def collect(self) -> Iterator[Any]:
        agent = self.agent
        up = GaugeMetricFamily(
            "cosmolet_bgp_session_up", "1 when the BGP session is established.", labels=["peer"]
        )
        established = GaugeMetricFamily(
            "cosmolet_bgp_session_established_timestamp_seconds",
            "Unix time the BGP session was last established (0 when it is not).",
            labels=["peer"],
        )
        advertised = GaugeMetricFamily(
            "cosmolet_routes_advertised",
            "Routes currently advertised to the peer.",
            labels=["peer", "family"],
        )
        for peer in agent.peers():
            up.add_metric([peer.name], 1.0 if peer.up else 0.0)
            since = peer.since if peer.up and peer.since is not None else None
            established.add_metric(
                [peer.name], 0.0 if since is None else round(since + self.epoch_offset, 3)
            )
            counts = Tally(
                "ipv6" if ":" in prefix else "ipv4"
                for prefix in (peer.advertised if peer.up else ())
            )
            for family in peer.families:
                advertised.add_metric([peer.name, family], counts.get(family, 0))
        yield up
        yield established
        yield advertised

        desired = GaugeMetricFamily(
            "cosmolet_routes_desired", "Routes the plan wants advertised.", labels=["family"]
        )
        wanted = Tally(str(route.family) for route in agent.desired())
        for name in ("ipv4", "ipv6"):
            desired.add_metric([name], wanted.get(name, 0))
        yield desired

        by_policy = GaugeMetricFamily(
            "cosmolet_routes_desired_by_policy",
            "Routes the plan wants, by what they stand for: cluster (a Cluster traffic policy), "
            "local (Local: only nodes with an endpoint, weighted) or aggregate "
            "(services.advertise.clusterIP.aggregate).",
            labels=["policy", "family"],
        )
        for policy, families in route_share(agent.desired()).items():
            for family, count in families.items():
                by_policy.add_metric([policy, family], count)
        yield by_policy

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


class BfdCollector(Collector):
    """With BFD (``bgp.bfd.enabled``): bfdd's sessions, read when Prometheus scrapes (``read``
    returns ``None`` when bfdd cannot be asked: then only ``cosmolet_bfd_readable`` 0 is
    exported, so that no session looks down, or up, for want of an answer)."""

    def __init__(self, read: Callable[[], Sequence[BfdSession] | None]) -> None:
        self.read = read

    def describe(self) -> Iterator[Metric]:
        """The families, without asking bfdd (the registry calls this when registering)."""
        yield from self._families(None)

    def collect(self) -> Iterator[Metric]:
        yield from self._families(self.read())

    @staticmethod
    def _families(sessions: Sequence[BfdSession] | None) -> Iterator[Metric]:
        readable = GaugeMetricFamily(
            "cosmolet_bfd_readable", "1 when bfdd answered vtysh at this scrape."
        )
        readable.add_metric([], 0.0 if sessions is None else 1.0)
        yield readable
        up = GaugeMetricFamily(
            "cosmolet_bfd_session_up",
            "1 when bfdd's BFD session with the switch is up.",
            labels=["peer", "interface"],
        )
        for session in sessions or ():
            up.add_metric([session.peer, session.interface], 1.0 if session.up else 0.0)
        yield up


def agent_metrics(agent: AgentView, config: Config) -> Metrics:
    """The agent's metrics: the counters, the view's gauges, and bfdd's sessions where the
    agent runs BFD (``bgp.bfd.enabled``)."""
    metrics = Metrics()
    metrics.registry.register(StateCollector(agent))
    if config.bgp.bfd.enabled:
        metrics.registry.register(BfdCollector(BfdReader(config.bgp.bfd.vtysh_socket_dir)))
    return metrics
