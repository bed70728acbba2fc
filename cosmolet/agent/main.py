"""``cosmolet agent``: the wiring. Builds the reconciler and starts the threads around it.

Threads, and what each may do:

- *source* (``cosmolet.sources``): updates the ``ClusterState``, which queues ``RoutesChanged``;
  it supervises its own watch threads and reports them through ``health()``;
- *stdin*: ExaBGP's JSON events to the queue, its answers matched to our commands (a refused one
  queued); EOF means ExaBGP is gone, and the agent exits rather than outlive it;
- *neighbors* (hybrid mode: the fabric links) or *addresses* (numbered mode: the node's
  addresses and gateways): netlink changes to the queue; *bfd* (``bgp.bfd.enabled``): bfdd's
  peers kept equal to the sessions;
- *http*: ``/healthz`` ``/readyz`` ``/metrics`` ``/version`` on ``http.listen``, ``/status`` on
  ``http.statusListen``, from the read-only view;
- *events* (``events.enabled``): posts Kubernetes Events, rate-limited;
- *gate* (``node.dataplaneGate.url``): probes the service proxy's health endpoint, queues
  ``GateChanged`` when the gate opens or closes;
- *router-ids* (a derived router id): lists the Nodes now and then for another node with the
  same id (``cosmolet.kube.router_ids``), telling ``Peering``;
- signal handlers put ``Drain`` (SIGUSR1) or ``Stop`` on the queue;
- the main thread runs the reconciler, which alone owns the speaker, the journal and stdout.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from cosmolet import logs
from cosmolet.agent import http_api
from cosmolet.agent.answers import Answers, AnswersCollector, read_stdin
from cosmolet.agent.changelog import ChangeLog
from cosmolet.agent.guard_metrics import BrakeCollector, GateCollector
from cosmolet.agent.inputs import AddressesChanged, Drain, GateChanged, NeighborsChanged, Stop
from cosmolet.agent.journal import Journal
from cosmolet.agent.metrics import agent_metrics
from cosmolet.agent.peering import watch_router_ids
from cosmolet.agent.reconciler import Output, Reconciler
from cosmolet.agent.service_events import ServiceEvents
from cosmolet.config.schema import Config, Mode
from cosmolet.exabgp import api as exabgp_api
from cosmolet.exabgp.api import Session
from cosmolet.paths import RuntimePaths
from cosmolet.sources import Source

log = logs.get("cosmolet.agent")

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


def run_forever(
    name: str, target: Callable[[threading.Event], None], stop: threading.Event
) -> None:
    """Run a loop that should never end; if it raises, log and run it again after a pause."""
    while not stop.is_set():
        try:
            target(stop)
        except Exception:
            log.exception("a background loop failed; restarting it in 1 s", loop=name)
            stop.wait(1.0)


def _thread(name: str, target: Callable[..., None], *args: Any) -> None:
    threading.Thread(target=target, args=args, daemon=True, name=name).start()


def _write_pid(paths: RuntimePaths) -> None:
    try:
        paths.root.mkdir(parents=True, exist_ok=True)
        paths.agent_pid.write_text(f"{os.getpid()}\n")
    except OSError as error:
        log.warning("cannot write the agent pid file", path=str(paths.agent_pid), error=str(error))


def _start_netlink(config: Config, reconciler: Reconciler, stop: threading.Event) -> None:
    """Watch what the sessions are derived from over netlink: the fabric links (hybrid mode),
    the node's addresses and gateways (numbered mode); keep bfdd's peers equal to them."""
    from cosmolet.hybrid import bfd

    if config.bgp.bfd.enabled:
        sync = bfd.BfdSync(config)
        reconciler.on_bfd = sync.update
        _thread("bfd", sync.run, stop)
    events = reconciler.events
    if config.mode is Mode.HYBRID:
        from cosmolet.hybrid.neighbors import NeighborWatcher

        watcher = NeighborWatcher(
            config.bgp.interfaces, lambda links: events.put(NeighborsChanged(frozenset(links)))
        )
        _thread("neighbors", run_forever, "neighbors", watcher.run, stop)
        return
    from cosmolet.netlink.addresses import AddressWatcher

    addresses = AddressWatcher(lambda found: events.put(AddressesChanged(found)))
    _thread("addresses", run_forever, "addresses", addresses.run, stop)


def _start_events(
    config: Config, source: Source, reconciler: Reconciler, stop: threading.Event
) -> None:
    """Kubernetes Events on Services, when enabled and an API server is there to take them."""
    if not config.events.enabled:
        return
    from cosmolet.kube import client
    from cosmolet.kube.events import EventRecorder
    from cosmolet.sources.kube import KubeSource

    if not isinstance(source, KubeSource):
        return  # an objects file has no API server to post to
    kubeconfig = source.kubeconfig
    recorder = EventRecorder(
        lambda: client.api_client(kubeconfig), config.node_name, config.events.max_per_second
    )
    events = ServiceEvents(recorder.record, config.node_name)
    reconciler.observers.append(events)
    reconciler.guards.on_brake = events.brake_engaged
    _thread("events", recorder.run, stop)


def _start_gate(config: Config, reconciler: Reconciler, stop: threading.Event) -> None:
    """The data-plane gate's poller, unless ``node.dataplaneGate.url`` is ``none``."""
    gate = reconciler.guards.gate
    if gate is None:
        return
    from cosmolet.agent import gate_probe

    interval = config.node.dataplane_gate.interval_seconds
    queue = reconciler.events

    def poll(stop: threading.Event) -> None:
        gate_probe.poll(gate, interval, lambda allows: queue.put(GateChanged(allows)), stop)

    _thread("gate", run_forever, "data-plane gate", poll, stop)


def main(config: Config, source: Source, sessions: list[Session]) -> int:
    """Run the agent with ExaBGP on stdin/stdout until ExaBGP goes away."""
    paths = RuntimePaths(config.runtime_dir)
    journal = Journal(paths.journal)
    out: Output = sys.stdout
    if os.environ.get(COMMAND_LOG_ENV):
        out = Tee(sys.stdout, open(os.environ[COMMAND_LOG_ENV], "a", encoding="utf-8"))  # noqa: SIM115
    reconciler = Reconciler(config, sessions, out, journal)
    reconciler.source = source
    answers = Answers() if exabgp_api.acks_enabled(os.environ) else None
    reconciler.answers = answers
    metrics = agent_metrics(reconciler, config)
    reconciler.observers += [metrics.observe, ChangeLog()]
    metrics.registry.register(GateCollector(reconciler.gate))
    metrics.registry.register(BrakeCollector(reconciler.brake))
    if answers is not None:
        metrics.registry.register(AnswersCollector(answers))
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if signum == signal.SIGUSR1:
            reconciler.events.put(Drain())
        else:
            reconciler.events.put(Stop(f"signal {signal.Signals(signum).name}"))

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        signal.signal(signum, on_signal)
    _write_pid(paths)

    _thread("stdin", read_stdin, sys.stdin, reconciler.events, answers)
    _thread(
        "source",
        run_forever,
        "cluster-state source",
        lambda stop: source.run(reconciler.state, stop),
        stop,
    )
    _start_netlink(config, reconciler, stop)
    http_api.start(reconciler, metrics.registry, config.http)
    _start_events(config, source, reconciler, stop)
    _start_gate(config, reconciler, stop)
    watch_router_ids(reconciler.neighbors, source, stop)
    log.info(
        "agent started",
        node=config.node_name,
        peers=[s.name for s in sessions],
        mode=str(config.mode),
        bgp_enabled=config.bgp.enabled,
    )
    reason = reconciler.run()
    stop.set()
    journal.close()
    log.info("agent stopping", reason=reason, commands_sent=reconciler.commands_sent)
    return 0
