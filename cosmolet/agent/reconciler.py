"""The reconciler: the one thread that turns route and peer changes into ExaBGP commands.

It alone owns the speaker (what each peer was sent), the flap hold, the journal and the command
pipe. Each turn takes every event queued meanwhile (a burst of cluster changes coalesces into
one delta), writes the commands, and hands one ``Reconciled`` report to its observers (metrics,
the change log, Kubernetes Events). A slow ExaBGP that blocks the pipe delays commands but
never the watch, and never builds a backlog. Each line written is expected to be answered
(``cosmolet.agent.answers``); a line ExaBGP refuses comes back as ``Refused``, and what it
carried is then neither claimed nor forgotten: the next plan sends it again.

Nothing an input can contain stops this loop: a failure while handling one event is logged and
the loop goes on, since ExaBGP exits after five deaths of its API process in a minute and a crash
loop must never become a fabric outage.
"""

from __future__ import annotations

import functools
import queue
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Protocol

from cosmolet import logs
from cosmolet.agent import first_list, peer_asns, refused
from cosmolet.agent.answers import Answers
from cosmolet.agent.guards import Guards
from cosmolet.agent.inputs import (
    AddressesChanged,
    Drain,
    Event,
    GateChanged,
    NeighborsChanged,
    Refused,
    RoutesChanged,
    Stop,
)
from cosmolet.agent.journal import Journal
from cosmolet.agent.peering import Peering
from cosmolet.agent.reconciler_view import ReconcilerView
from cosmolet.agent.report import Reconciled
from cosmolet.agent.speaker import Changes, SessionState, Speaker
from cosmolet.agent.stuck_peers import StuckPeers
from cosmolet.config.schema import Config
from cosmolet.engine.builder import PlanBuilder
from cosmolet.engine.hold import RiseHold
from cosmolet.engine.model import Delta, Link, Plan, Route, Skip
from cosmolet.exabgp import api as exabgp_api
from cosmolet.exabgp.api import PeerEvent, PeerOpen, Session, Shutdown
from cosmolet.exabgp.shown import SHOW_NEIGHBORS, NeighborsShown
from cosmolet.paths import RuntimePaths
from cosmolet.sources import Source
from cosmolet.sources.state import ClusterState

log = logs.get("cosmolet.agent")

PIPE_CLOSED = "ExaBGP closed the command pipe"


class Output(Protocol):
    def write(self, text: str, /) -> int: ...
    def flush(self) -> None: ...


Observer = Callable[[Reconciled], None]


class Reconciler(ReconcilerView):
    """Events in, commands out; its ``ReconcilerView`` side is ``cosmolet.agent.view.AgentView``
    for the HTTP threads and the metrics."""

    def __init__(
        self,
        config: Config,
        sessions: list[Session],
        out: Output,
        journal: Journal,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.events: queue.Queue[Event] = queue.Queue()
        self.state = ClusterState(
            PlanBuilder(config, config.node_name),
            lambda cause: self.events.put(RoutesChanged(cause)),
        )
        self.agent_command = [sys.executable, "-m", "cosmolet", *sys.argv[1:]]
        self.neighbors = Peering(config, self.agent_command)  # this node's ExaBGP neighbors
        self.speaker = Speaker(self.neighbors.sessions(sessions), enabled=config.bgp.enabled)
        self.hold = RiseHold(config.services.health_hold.rise_seconds)
        stale = journal.load()
        # the data-plane gate, the withdraw brake
        self.guards = Guards(config, self.state, restored=bool(stale))
        self.out = out
        self.journal = journal
        #: ExaBGP's answers to match, when it sends them (``exabgp.api.ack``; set by the wiring)
        self.answers: Answers | None = None
        self.clock = clock
        self.observers: list[Observer] = []
        #: with BFD: told bfdd's peers (the sessions' links) whenever they change
        self.on_bfd: Callable[[frozenset[Link]], None] | None = None
        self.source: Source | None = None
        self.first_sent = False
        self.draining = False
        self.stopped: str | None = None
        self.commands_sent = 0
        self.error_count = 0
        self.started = clock()
        self.heartbeat = clock()
        self.stuck = StuckPeers(config.bgp.hold_time, self.started)
        self._peer_asns_path = RuntimePaths(config.runtime_dir).root / peer_asns.FILE
        self.speaker.remember_asns(peer_asns.load(self._peer_asns_path))
        if stale:
            log.info("restoring prefixes a previous agent may have announced", count=len(stale))
            self.speaker.restore(stale)

    # --- the loop -----------------------------------------------------------------------------

    def run(self) -> str:
        """Handle events until told to stop; returns why."""
        while self.stopped is None:
            self.heartbeat = self.clock()
            batch: list[Event]
            try:
                batch = [self.events.get(timeout=self._wait())]
            except queue.Empty:
                self.check_peers()
                self.release_held()
                self.release_braked()
                self._guarded(self.verify_reload, "reload check")
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
                self.release_held()
                self.release_braked()
        return self.stopped

    def handle_batch(self, batch: Sequence[Event]) -> None:
        seen_change = False
        for event in batch:
            if isinstance(event, RoutesChanged):
                if seen_change:
                    continue  # one take of the state covers every change signalled so far
                seen_change = True
            self._guarded(functools.partial(self._handle, event), type(event).__name__)
            if self.stopped:
                return

    def release_held(self) -> None:
        """Announce the held prefixes that have now stayed wanted long enough."""
        if self.draining or not self.first_sent or not self.hold.held:
            return
        due = self.hold.release(self.clock())
        if due:
            self._guarded(lambda: self._apply_delta(due, "held for flapping, now stable"), "hold")

    def release_braked(self) -> None:
        """Send the withdrawals the brake held, once its hold has ended."""
        if self.draining or not self.first_sent:
            return
        due = self.guards.brake_due(self.clock())
        if due:
            due = self.hold.filter(due, self.speaker.desired, self.clock())
            self._guarded(lambda: self._apply_delta(due, "withdraw brake released"), "brake")

    def _wait(self) -> float:
        """Block for events at most a second, or until the next held prefix (flap hold) or
        braked withdrawal (withdraw brake) is due."""
        dues = [d for d in (self.hold.next_release(), self.guards.next_due()) if d is not None]
        if not dues:
            return 1.0
        return min(1.0, max(0.001, min(dues) - self.clock()))

    def _guarded(self, action: Callable[[], None], what: str) -> None:
        try:
            action()
        except BrokenPipeError:
            self.stopped = PIPE_CLOSED
        except Exception:
            self.error_count += 1
            log.exception("failed to handle an event; continuing", kind=what)

    def _handle(self, event: Event) -> None:
        if isinstance(event, RoutesChanged):
            self._check_node()
            self._on_routes_changed()
        elif isinstance(event, PeerEvent):
            log.info("peer state", peer=event.peer, state=str(event.state), reason=event.reason)
            changes = self.speaker.peer_event(event, self.clock())
            self._write(Reconciled("peer " + str(event.state), changes, dry_run=self._dry))
        elif isinstance(event, PeerOpen):
            log.info("peer open", peer=event.peer, local=event.local, asn=event.asn)
            known = dict(self.speaker.peer_asns)
            self.speaker.peer_open(event)
            if self.speaker.peer_asns != known:
                peer_asns.save(self._peer_asns_path, self.speaker.peer_asns)
        elif isinstance(event, Refused):
            refused.on_refused(event, self.speaker, self.journal)
        elif isinstance(event, GateChanged):
            self.guards.gate_changed(event.allows)
            self._on_routes_changed()
        elif isinstance(event, NeighborsChanged):
            if self.neighbors.set_links(event.links):
                self._reconfigure("the fabric links changed")
        elif isinstance(event, AddressesChanged):
            if self.neighbors.set_addresses(event.addresses):
                self._reconfigure("this node's addresses changed")
        elif isinstance(event, NeighborsShown):
            if not self.neighbors.applied(event):
                self._reload()
        elif isinstance(event, Drain):
            if not self.draining:
                self.draining = True
                self.hold.clear()
                log.info("draining: withdrawing every route")
                self._write(Reconciled("drain", self.speaker.withdraw_all(), dry_run=self._dry))
        elif isinstance(event, Stop):
            self.stopped = event.reason
        elif isinstance(event, Shutdown):
            self.stopped = "ExaBGP is shutting down"

    @property
    def _dry(self) -> bool:
        return not self.config.bgp.enabled

    # --- route changes ------------------------------------------------------------------------

    def _on_routes_changed(self) -> None:
        if self.draining or not self.guards.gate_passed:
            return  # nothing is announced before the data-plane gate first passes
        self.guards.assert_gate()
        # The first list, still paging in; a closed gate withdraws everything whatever the list
        # says, so its first plan (withdrawing what a previous agent left) need not wait for it.
        if not self.state.readiness.synced and not self.guards.gate_closed:
            self._write(first_list.announce(self.state, self.speaker, self._dry))
            return
        started = self.clock()
        delta, caused_at = self.state.take_delta()
        refusals, dropped = self.state.take_refusals()
        if self.first_sent:
            api = self.api_health()
            connected = api is None or api.connected
            delta = self.guards.brake_filter(delta, self.speaker.desired, started, connected)
            delta = self.hold.filter(delta, self.speaker.desired, started)
        retry = self.speaker.needs_resync or self.speaker.retry_pending
        if not delta and self.first_sent and not retry:
            if refusals or dropped:
                report = Reconciled("plan", Changes(), refusals=tuple(refusals))
                self._write(replace(report, refusals_dropped=dropped, dry_run=self._dry))
            return
        first_plan = None if self.first_sent else self.state.plan()
        self._apply_delta(
            delta,
            "plan",
            first_plan=first_plan,
            started=started,
            caused_at=caused_at,
            refusals=tuple(refusals),
            refusals_dropped=dropped,
        )
        self.first_sent = True

    def _apply_delta(
        self,
        delta: Delta,
        cause: str,
        *,
        first_plan: Plan | None = None,
        started: float | None = None,
        caused_at: float | None = None,
        refusals: tuple[Skip, ...] = (),
        refusals_dropped: int = 0,
    ) -> None:
        desired = self.speaker.desired
        before: dict[str, Route] = {}
        if desired:
            for prefix in delta:
                route = desired.get(prefix)
                if route is not None:
                    before[prefix] = route
        changes = self.speaker.update_routes(delta)
        self._write(
            Reconciled(
                cause,
                changes,
                delta,
                before,
                first_plan=first_plan,
                dry_run=self._dry,
                started=started,
                caused_at=caused_at,
                refusals=refusals,
                refusals_dropped=refusals_dropped,
            )
        )

    def _write(self, report: Reconciled) -> None:
        """Journal, write, then tell the observers. The journal is a superset of what ExaBGP
        holds: a prefix is recorded before its announce, forgotten after its withdraw."""
        changes: Changes = report.commands
        if changes.commands or changes.announced or changes.withdrawn:
            self.journal.add(changes.announced)
            if changes.commands:
                try:
                    self._send(changes.commands)
                except BrokenPipeError:
                    raise
                except Exception:
                    # What reached ExaBGP is now uncertain: the next plan re-sends everything.
                    self.speaker.invalidate(changes.withdrawn)
                    raise
            self.journal.discard(p for p in changes.withdrawn if not self.speaker.peers_of(p))
        if changes.announced and not report.delta:
            # A peer came up or was added: the routes it was sent are unchanged desired ones.
            desired = self.speaker.desired
            unchanged = {p: desired[p] for p in changes.announced if p in desired}
            report = replace(report, before=unchanged)
        report = replace(report, finished=self.clock())
        for observe in self.observers:
            try:
                observe(report)
            except Exception:
                self.error_count += 1
                log.exception("an observer of the reconciler failed; continuing")

    def _send(self, commands: Sequence[exabgp_api.Command]) -> None:
        """Write the lines, each expected to be answered (before it is written: the answer may
        come before ``write`` returns)."""
        if self.answers is not None:
            self.answers.expect(commands)
        try:
            self.out.write("".join(command.line + "\n" for command in commands))
            self.out.flush()
        except BrokenPipeError:
            raise
        except Exception:
            if self.answers is not None:
                self.answers.forget()
            raise
        self.commands_sent += len(commands)

    # --- this node's neighbors ----------------------------------------------------------------

    def _check_node(self) -> None:
        """Re-resolve the peers when this node's labels or peering annotations changed."""
        with self.state.lock:
            node = self.state.builder.node
        if self.state.readiness.synced and self.neighbors.set_node(node):
            self._reconfigure("this node's labels or annotations changed")

    def _reconfigure(self, cause: str) -> None:
        """New ExaBGP neighbors: withdraw from the sessions that go, rewrite its config, ask it
        to reload, then track the sessions. New sessions start DOWN and get the whole plan when
        they come up; without a reload (the agent alone restarted: ExaBGP already runs them)
        they may be up, so they start UNKNOWN and get the plan at once."""
        change = self.neighbors.reconfigure(cause)
        if change is None:
            return
        names = {session.name for session in change.sessions}
        gone = [name for name in self.speaker.peers if name not in names]
        if gone:
            self._write(
                Reconciled("peer removed", self.speaker.withdraw_from(gone), dry_run=self._dry)
            )
        if change.reload:
            self._reload()
        known = set(self.speaker.peers)
        self.speaker.set_sessions(
            change.sessions, SessionState.DOWN if change.reload else SessionState.UNKNOWN
        )
        if self.on_bfd is not None:
            self.on_bfd(change.bfd)
        if not change.reload and self.first_sent and names - known:
            self._write(Reconciled("neighbors", self.speaker.update_routes({}), dry_run=self._dry))

    def _reload(self) -> None:
        self._send([exabgp_api.RELOAD])
        if self.answers is not None:  # the check's answer ends with an ack: none without acks
            self.neighbors.reload_sent(self.clock())

    def verify_reload(self) -> None:
        """A reload is checked once ExaBGP had a moment (``Peering``: it may drop one)."""
        if self.neighbors.verify_due(self.clock()):
            self._send([SHOW_NEIGHBORS])

    def check_peers(self) -> None:
        """Say, once per outage, which peer has not been established for a long while."""
        self.stuck.check(self.speaker.peers, self.clock())
