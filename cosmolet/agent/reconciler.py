"""``cosmolet agent``: ExaBGP's API process. Plans in, commands out, one reconciler thread.

Threads and what they may do:

- the *source* (objects file, or the Kubernetes watch) updates the ``ClusterState`` and puts a
  ``RoutesChanged`` signal on the queue;
- the *stdin reader* turns ExaBGP's JSON events into ``PeerEvent``s on the queue, and reports EOF
  (ExaBGP is gone: the agent exits rather than outlive it);
- signal handlers put ``Drain``/``Stop`` on the queue;
- the *reconciler* (the main thread) alone owns the speaker, the journal and stdout. It takes
  the accumulated route difference from the state (bursts coalesce into one), so a slow ExaBGP
  that blocks the pipe delays commands but never the watch, and never builds a backlog.

Nothing an input can contain stops this loop: a failure while handling one event is logged and the
loop goes on, since ExaBGP exits after five deaths of its API process in a minute and a crash loop
must never become a fabric outage.
"""

from __future__ import annotations

import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from cosmolet import logs
from cosmolet.agent import http_api
from cosmolet.agent.cluster_state import ClusterState
from cosmolet.agent.journal import Journal
from cosmolet.agent.metrics import Metrics, StateCollector
from cosmolet.agent.speaker import Changes, SessionState, Speaker
from cosmolet.config.schema import Config, Mode
from cosmolet.engine.builder import PlanBuilder
from cosmolet.engine.hold import RiseHold
from cosmolet.engine.model import Link, Route
from cosmolet.exabgp import api as exabgp_api
from cosmolet.exabgp import config as exabgp_config
from cosmolet.exabgp.api import PeerEvent, Session, Shutdown
from cosmolet.hybrid import bfd
from cosmolet.hybrid.neighbors import NeighborWatcher
from cosmolet.kube.events import EventRecorder, ServiceEvent

if TYPE_CHECKING:
    from cosmolet.sources.kube import ApiHealth

log = logs.get("cosmolet.agent.reconciler")

JOURNAL_NAME = "advertised.journal"
#: Route changes logged one line each, at most this many a second; beyond, summaries.
DETAIL_LIMIT = 20
#: /healthz fails when the reconciler loop has not turned for this long (it turns every second
#: when idle; only a write to ExaBGP blocked this long, or a bug, can stop it).
HEALTH_STALL_SECONDS = 120.0


class Source(Protocol):
    def run(self, state: ClusterState, stop: threading.Event) -> None: ...


class Output(Protocol):
    def write(self, text: str, /) -> int: ...
    def flush(self) -> None: ...


#: When set, every command line sent to ExaBGP is also appended to this file (debugging, and the
#: hostile-input tests, which check that every line cosmolet ever wrote is well formed).
COMMAND_LOG_ENV = "COSMOLET_COMMAND_LOG"


class Tee:
    """The command pipe, and a copy of everything written to it."""

    def __init__(self, main: Output, copy: Output) -> None:
        self.main, self.copy = main, copy

    def write(self, text: str, /) -> int:
        written = self.main.write(text)
        self.copy.write(text)
        return written

    def flush(self) -> None:
        self.main.flush()
        self.copy.flush()


@dataclass(frozen=True)
class RoutesChanged:
    cause: float  # monotonic time of the change that produced it


@dataclass(frozen=True)
class NeighborsChanged:
    """Hybrid mode: the set of fabric links with a switch on them changed."""

    links: frozenset[Link]


@dataclass(frozen=True)
class Drain:
    """Withdraw everything and stay up (``shutdown.mode: withdraw``; sent by ``cosmolet start``)."""


@dataclass(frozen=True)
class Stop:
    reason: str


Event = RoutesChanged | PeerEvent | NeighborsChanged | Drain | Stop | Shutdown


class Agent:
    """The reconciler: applies events to the speaker and writes the resulting commands."""

    def __init__(
        self,
        config: Config,
        sessions: list[Session],
        out: Output,
        journal: Journal,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.state = ClusterState(
            PlanBuilder(config, config.node_name),
            lambda cause: self.events.put(RoutesChanged(cause)),
        )
        self.speaker = Speaker(sessions, enabled=config.bgp.enabled)
        self.hold = RiseHold(config.services.health_hold.rise_seconds)
        self.out = out
        self.journal = journal
        self.clock = clock
        self.events: queue.Queue[Event] = queue.Queue()
        self.first_sent = False
        self.draining = False
        self.stopped: str | None = None
        self.commands_sent = 0
        self.started = clock()
        self.heartbeat = clock()
        self.source: Source | None = None
        self.source_thread: threading.Thread | None = None
        self._warned: set[str] = set()
        self._log_window = clock()
        self._logged = 0
        self._unlogged = 0
        self.recorder: EventRecorder | None = None
        self.links: frozenset[Link] | None = None
        self.bfd: bfd.BfdSync | None = None
        self.agent_command = [sys.executable, "-m", "cosmolet", *sys.argv[1:]]
        self.metrics = Metrics()
        self.metrics.registry.register(StateCollector(self))
        stale = journal.load()
        if stale:
            log.info("restoring prefixes a previous agent may have announced", count=len(stale))
            self.speaker.restore(stale)

    # --- the reconciler (main thread) ---------------------------------------------------------

    def run(self) -> str:
        """Handle events until told to stop; returns why."""
        while self.stopped is None:
            self.heartbeat = self.clock()
            batch: list[Event]
            try:
                batch = [self.events.get(timeout=self._wait())]
            except queue.Empty:
                self.check_peers()
                self._release_held()
                if self.speaker.needs_resync and self.first_sent:
                    batch = [RoutesChanged(self.clock())]  # retry a failed write
                else:
                    continue
            while True:
                try:
                    batch.append(self.events.get_nowait())
                except queue.Empty:
                    break
            self.handle_batch(batch)
            if self.stopped is None:
                self._release_held()
        return self.stopped

    def _wait(self) -> float:
        """Block for events at most a second, or until the next held prefix is due."""
        due = self.hold.next_release()
        if due is None:
            return 1.0
        return min(1.0, max(0.001, due - self.clock()))

    def _release_held(self) -> None:
        """Announce the held prefixes that have now stayed wanted long enough."""
        if self.draining or not self.first_sent or not self.hold.held:
            return
        due = self.hold.release(self.clock())
        if not due:
            return
        try:
            if self.recorder is not None:
                self._record_events(due)
            self.apply(self.speaker.update_routes(due), "held for flapping, now stable")
        except BrokenPipeError:
            self.stopped = "ExaBGP closed the command pipe"
        except Exception:
            self.metrics.errors.inc()
            log.exception("failed to announce held routes; continuing")

    def handle_batch(self, batch: list[Event]) -> None:
        seen_change = False
        for event in batch:
            if isinstance(event, RoutesChanged):
                if seen_change:
                    continue  # one take of the state covers every change signalled so far
                seen_change = True
            try:
                self.handle(event)
            except BrokenPipeError:
                self.stopped = "ExaBGP closed the command pipe"
            except Exception:
                self.metrics.errors.inc()
                log.exception("failed to handle an event; continuing", kind=type(event).__name__)
            if self.stopped:
                return

    def check_peers(self) -> None:
        """Say, once per outage, which peer has not been established for a long while."""
        now = self.clock()
        threshold = max(15.0, 2.0 * self.config.bgp.hold_time)
        for name, rib in self.speaker.peers.items():
            if rib.state is SessionState.UP:
                self._warned.discard(name)
                continue
            since = rib.since or self.started
            if now - since >= threshold and name not in self._warned:
                self._warned.add(name)
                origin = rib.session.origin or name
                log.warning(
                    "peer not established",
                    peer=name,
                    seconds=round(now - since),
                    hint=f"check {origin}: address and asn, that the peer has us configured and "
                    f"is reachable, and the TCP MD5 password ({origin}.passwordFile) on both sides",
                )

    # --- health, for the HTTP endpoints (any thread, no locks) --------------------------------

    def ready(self) -> tuple[bool, str]:
        if not self.state.readiness.synced:
            return False, "waiting for the first complete list of Services, EndpointSlices, Node"
        if not self.first_sent:
            return False, "the first plan has not been sent to ExaBGP yet"
        if self.draining:
            return False, "draining: every route withdrawn"
        api = self.api_health()
        if api is not None and not api.connected and api.lost_for_s > 0:
            # Still ready: the routes stay advertised (the data plane does not depend on the
            # control plane); the body says why nothing new can arrive.
            return True, f"ok; API server unreachable for {api.lost_for_s:.0f} s, keeping routes"
        return True, "ok"

    def healthy(self) -> tuple[bool, str]:
        """Would a restart help? Only if a loop stopped; a peer being down is no reason."""
        stalled = self.clock() - self.heartbeat
        if stalled > HEALTH_STALL_SECONDS:
            return False, f"the reconciler has made no progress for {stalled:.0f} s"
        if self.source_thread is not None and not self.source_thread.is_alive():
            return False, "the cluster-state source thread has died"
        return True, "ok"

    def api_health(self) -> ApiHealth | None:
        health = getattr(self.source, "health", None)
        return health() if callable(health) else None

    def handle(self, event: Event) -> None:
        if isinstance(event, RoutesChanged):
            self._on_routes_changed()
        elif isinstance(event, PeerEvent):
            log.info("peer state", peer=event.peer, state=str(event.state), reason=event.reason)
            self.apply(self.speaker.peer_event(event, self.clock()), "peer " + str(event.state))
        elif isinstance(event, NeighborsChanged):
            self._on_neighbors(event.links)
        elif isinstance(event, Drain):
            if not self.draining:
                self.draining = True
                self.hold.clear()
                log.info("draining: withdrawing every route")
                self.apply(self.speaker.withdraw_all(), "drain")
        elif isinstance(event, Stop):
            self.stopped = event.reason
        elif isinstance(event, Shutdown):
            self.stopped = "ExaBGP is shutting down"

    def _on_routes_changed(self) -> None:
        if self.draining:
            return
        started = self.clock()
        delta, since = self.state.take_delta()
        self._report_refusals()
        if self.first_sent:
            delta = self.hold.filter(delta, self.speaker.desired, started)
        if not delta and self.first_sent and not self.speaker.needs_resync:
            return
        if self.recorder is not None and self.first_sent:
            self._record_events(delta)
        changes = self.speaker.update_routes(delta)
        if not self.first_sent:
            self.first_sent = True
            plan = self.state.plan()
            log.info(
                "first plan",
                routes=len(plan.routes),
                skipped=len(plan.skipped),
                bgp_enabled=self.config.bgp.enabled,
            )
        self.apply(changes, "plan")
        done = self.clock()
        self.metrics.reconcile.observe(done - started)
        if since is not None and changes.lines:
            self.metrics.event_to_command.observe(done - since)

    def _report_refusals(self) -> None:
        """A warning per Service address the policy refused (within the log budget), and the
        refusals counter by reason."""
        refusals, dropped = self.state.take_refusals()
        self._unlogged += dropped
        for skip in refusals:
            self.metrics.refusals.labels(str(skip.code)).inc()
            if self._within_log_budget(1):
                log.warning(
                    "refused by policy",
                    service=skip.service,
                    code=str(skip.code),
                    detail=skip.reason,
                )

    def _on_neighbors(self, links: frozenset[Link]) -> None:
        """New ExaBGP neighbors: rewrite its config, ask it to reload, then track the sessions.

        Sessions that are new start DOWN and get the whole plan when they come up; on the
        first discovery after a start they may already be up (only the agent restarted), so
        they start UNKNOWN and get the plan at once.
        """
        first = self.links is None
        self.links = links
        conf = Path(self.config.runtime_dir) / "exabgp.conf"
        text = exabgp_config.render(self.config, self.agent_command, links=links, environ=None)
        if not conf.exists() or conf.read_text() != text:
            exabgp_config.write_private(conf, text)
            self.out.write("reload\n")
            self.out.flush()
            log.info("ExaBGP neighbors changed: reloading", links=len(links))
        self.speaker.set_sessions(
            exabgp_config.link_sessions(self.config, links),
            SessionState.UNKNOWN if first else SessionState.DOWN,
        )
        if self.bfd is not None:
            self.bfd.update(links)
        if first and self.first_sent:
            self.apply(self.speaker.update_routes({}), "neighbors")

    def _record_events(self, delta: dict[str, Route | None]) -> None:
        """Tell each Service whose IP starts or stops being advertised from this node."""
        assert self.recorder is not None
        node = self.config.node_name
        for prefix, route in delta.items():
            before = self.speaker.desired.get(prefix)
            old = set(before.services) if before else set()
            new = set(route.services) if route else set()
            for service in sorted(new - old):
                self.recorder.record(
                    ServiceEvent(service, "Advertised", f"{prefix} advertised from node {node}")
                )
            for service in sorted(old - new):
                self.recorder.record(
                    ServiceEvent(service, "Withdrawn", f"{prefix} withdrawn from node {node}")
                )

    def apply(self, changes: Changes, cause: str) -> None:
        """Journal, write and log one set of changes."""
        if not changes.announce_count and not changes.withdraw_count and not changes.lines:
            return
        self.journal.add(changes.announced)
        if changes.lines:
            try:
                self.out.write("\n".join(changes.lines) + "\n")
                self.out.flush()
            except BrokenPipeError:
                raise
            except Exception:
                # What reached ExaBGP is now uncertain: the next plan re-sends everything.
                self.speaker.invalidate(changes.withdrawn)
                raise
            self.commands_sent += len(changes.lines)
            self.metrics.commands.inc(len(changes.lines))
        for (kind, family), count in changes.counts.items():
            counter = self.metrics.announced if kind == "announce" else self.metrics.withdrawn
            counter.labels(family).inc(count)
        self.journal.discard(p for p in changes.withdrawn if not self.speaker.peers_of(p))
        self._log_changes(changes, cause)

    def _within_log_budget(self, lines: int) -> bool:
        """Per-item lines (route changes, policy refusals) share a budget of DETAIL_LIMIT a
        second; past it they are only counted, and the count is logged when the second ends."""
        now = self.clock()
        if now - self._log_window >= 1.0:
            if self._unlogged:
                log.info(
                    "route changes and refusals not logged one by one",
                    count=self._unlogged,
                    seconds=round(now - self._log_window, 1),
                )
                self._unlogged = 0
            self._log_window, self._logged = now, 0
        if self._logged + lines > DETAIL_LIMIT:
            self._unlogged += lines
            return False
        self._logged += lines
        return True

    def _log_changes(self, changes: Changes, cause: str) -> None:
        """One line per route change, within a budget of DETAIL_LIMIT lines a second; past it
        (a big batch, or sustained churn), summary lines with counts instead."""
        dry_run = not self.config.bgp.enabled
        total = len(changes.announced) + len(changes.withdrawn)
        if total > DETAIL_LIMIT:
            log.info(
                "routes changed",
                announced=len(changes.announced),
                withdrawn=len(changes.withdrawn),
                commands=len(changes.lines),
                reason=cause,
                dry_run=dry_run,
            )
            return
        if not self._within_log_budget(total):
            return
        desired = self.speaker.desired
        for prefix in sorted(changes.announced):
            route = desired.get(prefix)
            log.info(
                "announce",
                prefix=prefix,
                services=list(route.services if route else ()),
                reason=cause,
                dry_run=dry_run,
            )
        for prefix in sorted(changes.withdrawn):
            log.info("withdraw", prefix=prefix, reason=cause, dry_run=dry_run)


def read_events(stream: TextIO, agent: Agent) -> None:
    """The stdin reader: ExaBGP's events to the queue; EOF means ExaBGP is gone."""
    try:
        for line in stream:
            event = exabgp_api.parse_event(line)
            if event is not None:
                agent.events.put(event)
    except (OSError, ValueError) as error:
        log.warning("reading ExaBGP events failed", error=str(error))
    agent.events.put(Stop("ExaBGP closed our stdin"))


def _run_forever(target: Callable[[threading.Event], None], stop: threading.Event) -> None:
    """Run a watcher; if it dies, log and restart it after a pause (never exit)."""
    while not stop.is_set():
        try:
            target(stop)
        except Exception:
            log.exception("watcher failed; restarting it in 1 s")
            stop.wait(1.0)


def run_source(source: Source, agent: Agent, stop: threading.Event) -> None:
    """Run a source forever; if it dies, log and restart it after a pause (never exit)."""
    while not stop.is_set():
        try:
            source.run(agent.state, stop)
        except Exception:
            log.exception("cluster-state source failed; restarting it in 1 s")
            stop.wait(1.0)


def main(config: Config, source: Source, sessions: list[Session]) -> int:
    """Run the agent with ExaBGP on stdin/stdout until ExaBGP goes away."""
    journal = Journal(Path(config.runtime_dir) / JOURNAL_NAME)
    out: Output = sys.stdout
    if os.environ.get(COMMAND_LOG_ENV):
        out = Tee(sys.stdout, open(os.environ[COMMAND_LOG_ENV], "a", encoding="utf-8"))  # noqa: SIM115
    agent = Agent(config, sessions, out, journal)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if signum == signal.SIGUSR1:
            agent.events.put(Drain())
        else:
            agent.events.put(Stop(f"signal {signal.Signals(signum).name}"))

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        signal.signal(signum, on_signal)
    pid_file = Path(config.runtime_dir) / "agent.pid"
    try:
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(f"{os.getpid()}\n")
    except OSError as error:
        log.warning("cannot write the agent pid file", path=str(pid_file), error=str(error))

    threading.Thread(target=read_events, args=(sys.stdin, agent), daemon=True, name="stdin").start()
    agent.source = source
    agent.source_thread = threading.Thread(
        target=run_source, args=(source, agent, stop), daemon=True, name="source"
    )
    agent.source_thread.start()
    if config.mode is Mode.HYBRID and config.bgp.bfd.enabled:
        agent.bfd = bfd.BfdSync(config)
        threading.Thread(target=agent.bfd.run, args=(stop,), daemon=True, name="bfd").start()
    if config.mode is Mode.HYBRID:
        watcher = NeighborWatcher(
            config.bgp.interfaces,
            lambda links: agent.events.put(NeighborsChanged(frozenset(links))),
        )
        threading.Thread(
            target=_run_forever, args=(watcher.run, stop), daemon=True, name="neighbors"
        ).start()
    host, port = config.http.host_port
    http_api.serve(agent, host, port)
    if config.events.enabled:
        kubeconfig = getattr(source, "kubeconfig", None)
        if hasattr(source, "health"):  # only the Kubernetes source has an API server
            from cosmolet.kube import client

            agent.recorder = EventRecorder(
                lambda: client.api_client(kubeconfig),
                config.node_name,
                config.events.max_per_second,
            )
            threading.Thread(
                target=agent.recorder.run, args=(stop,), daemon=True, name="events"
            ).start()
    log.info(
        "agent started",
        node=config.node_name,
        peers=[s.name for s in sessions],
        mode=str(config.mode),
        bgp_enabled=config.bgp.enabled,
    )
    reason = agent.run()
    stop.set()
    journal.close()
    log.info("agent stopping", reason=reason, commands_sent=agent.commands_sent)
    return 0
