"""The Kubernetes source: three reflectors (Services, EndpointSlices, this Node), each on its
own thread, feeding a ``ClusterState`` through typed sinks (``sinks``); and the policy for
losing the API server.

The data plane must not depend on the control plane: while the API server is unreachable the
last known routes stay advertised. Only ``kubernetes.withdrawAfterApiLossSeconds`` (default:
never) bounds that, for operators who prefer a node to fall silent (``api_loss_skip``).

The source owns its threads. ``run`` stops and joins them before it returns, even when it
raises, and a new ``run`` starts its reflectors only once the previous run's are gone, so a
restarted source never leaves duplicate reflectors behind. ``health`` names a reflector thread
that died.
"""

from __future__ import annotations

import threading
import time

from cosmolet import logs
from cosmolet.config.schema import Config
from cosmolet.engine.policy import api_loss_skip
from cosmolet.kube import client
from cosmolet.kube.reflector import AnyReflector, Reflector
from cosmolet.sources import ApiHealth, SourceHealth
from cosmolet.sources.sinks import NodeSink, ServiceSink, SliceSink
from cosmolet.sources.state import ClusterState

log = logs.get("cosmolet.kube")

#: How long stopping waits for the reflector threads. Stopping aborts the request in progress,
#: so only a thread still opening a connection (5 s connect timeout) takes long.
JOIN_SECONDS = 10.0


class SourceError(Exception):
    """The source cannot run now (the previous run's threads have not ended yet)."""


class _Watch:
    """One reflector and the thread running it (``watch-Service``...)."""

    def __init__(self, reflector: AnyReflector) -> None:
        self.reflector = reflector
        self.failure: str | None = None
        self.thread = threading.Thread(
            target=self._run, name=f"watch-{reflector.kind.name}", daemon=True
        )

    def _run(self) -> None:
        try:
            self.reflector.run()
        except Exception as error:
            self.failure = f"{type(error).__name__}: {error}"
            log.error("reflector thread died", thread=self.thread.name, exc_info=True)

    @property
    def dead(self) -> bool:
        """Ended while nobody asked it to stop."""
        return not self.thread.is_alive() and not self.reflector.stopping.is_set()


class KubeSource:
    """List-watch the cluster into a ``ClusterState``."""

    def __init__(self, config: Config, node_name: str, kubeconfig: str | None = None) -> None:
        self.config = config
        self.node_name = node_name
        self.kubeconfig = kubeconfig
        self._watches: list[_Watch] = []

    def health(self) -> SourceHealth:
        api = self._api_health()
        for watch in self._watches:
            if watch.dead:
                reason = f"reflector thread {watch.thread.name} died: {watch.failure or 'exited'}"
                return SourceHealth(alive=False, reason=reason, api=api)
        return SourceHealth(api=api)

    def _api_health(self) -> ApiHealth:
        reflectors = [watch.reflector for watch in self._watches]
        now = time.monotonic()
        failing = [r.failing_since for r in reflectors if r.failing_since is not None]
        return ApiHealth(
            synced=bool(reflectors) and all(r.synced for r in reflectors),
            connected=bool(reflectors) and all(r.connected for r in reflectors),
            lost_for_s=now - min(failing) if failing else 0.0,
            relists=sum(r.relists for r in reflectors),
            watch_restarts=sum(r.watch_restarts for r in reflectors),
            errors=sum(r.errors for r in reflectors),
        )

    def run(self, state: ClusterState, stop: threading.Event) -> None:
        """Start the reflectors, follow them until ``stop``, then stop them."""
        lingering = self._stop_watches()
        if lingering:
            raise SourceError(f"reflector threads of the last run still running: {lingering}")
        api = client.api_client(self.kubeconfig)
        kinds = client.kinds(api, self.node_name, self.config.services.label_selector)
        keep_labels = bool(self.config.services.label_selector.strip())
        reflectors: list[AnyReflector] = [
            Reflector(kinds.services, ServiceSink(state, keep_labels)),
            Reflector(kinds.slices, SliceSink(state)),
            Reflector(kinds.node, NodeSink(state)),
        ]
        try:
            for reflector in reflectors:
                watch = _Watch(reflector)
                watch.thread.start()
                self._watches.append(watch)
            self._follow(state, stop)
        finally:
            lingering = self._stop_watches()
            if lingering:
                log.warning("reflector threads did not stop in time", threads=lingering)

    def _stop_watches(self) -> list[str]:
        """Stop and join this source's reflector threads; the names of any still running (they
        stay in ``_watches``, so the next ``run`` waits for them)."""
        for watch in self._watches:
            watch.reflector.stop()
        deadline = time.monotonic() + JOIN_SECONDS
        for watch in self._watches:
            watch.thread.join(max(0.0, deadline - time.monotonic()))
        self._watches = [watch for watch in self._watches if watch.thread.is_alive()]
        return [watch.thread.name for watch in self._watches]

    def _follow(self, state: ClusterState, stop: threading.Event) -> None:
        """Until ``stop``: mark the state synced once every reflector has listed, recompute it
        every ``loopIntervalSeconds`` (the safety net), and apply the API-loss policy."""
        limit = self.config.kubernetes.withdraw_after_api_loss_seconds
        withdrawn: bool | None = None  # None: not yet decided in this run
        last_full = time.monotonic()
        while not stop.wait(0.2):
            if time.monotonic() - last_full >= self.config.loop_interval_seconds:
                last_full = time.monotonic()
                with state.update() as builder:
                    builder.recompute_all()
            api = self._api_health()
            if api.synced and not state.readiness.synced:
                log.info("initial list complete: routes may now be advertised")
                state.mark_synced()
            skip = api_loss_skip(self.node_name, limit, state.readiness.synced, api.lost_for_s)
            if (skip is not None) == withdrawn:
                continue
            if skip is not None:
                log.warning("API server lost: withdrawing every route", reason=skip.reason)
            elif withdrawn:
                log.warning("API server back: advertising again")
            withdrawn = skip is not None
            with state.update() as builder:
                builder.set_withdraw_all(skip)
