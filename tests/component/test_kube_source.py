"""The Kubernetes source against the lab API server: sync, events, relist by diff, API loss,
and the reflector threads it owns (one set per source, stopped promptly, reported when dead)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from cosmolet.config.schema import Config, validate
from cosmolet.engine.builder import PlanBuilder
from cosmolet.engine.model import Route
from cosmolet.sources.kube import KubeSource
from cosmolet.sources.sinks import ServiceSink
from cosmolet.sources.state import ClusterState
from lab.apiserver import BY_PATH, Store, serving, write_kubeconfig
from lab.kube_client import request_body
from lab.netns import wait_for
from tests.factories import config_dict, endpoint, service, slice_

SERVICES = BY_PATH[("", "v1", "services")]


class Harness:
    """A KubeSource running against a lab API server, with the routes it publishes."""

    def __init__(self, cfg: Config, kubeconfig: Path) -> None:
        self.changes = 0
        self.state = ClusterState(PlanBuilder(cfg, "node1"), self._changed)
        self.source = KubeSource(cfg, "node1", str(kubeconfig))
        self.stop = threading.Event()
        self.routes: dict[str, Route] = {}
        self.deltas: list[dict[str, Route | None]] = []
        self.thread = threading.Thread(target=self.source.run, args=(self.state, self.stop))

    def _changed(self, _cause: float) -> None:
        self.changes += 1

    def take(self) -> dict[str, Route | None]:
        delta, _ = self.state.take_delta()
        if delta:
            self.deltas.append(delta)
        for prefix, route in delta.items():
            if route is None:
                self.routes.pop(prefix, None)
            else:
                self.routes[prefix] = route
        return delta

    def prefixes(self) -> set[str]:
        self.take()
        return set(self.routes)


@contextlib.contextmanager
def running(
    cfg: Config, tmp_path: Path, store: Store | None = None, bookmark_seconds: float = 0.2
) -> Iterator[Any]:
    with serving(store=store, bookmark_seconds=bookmark_seconds) as (store_, port):
        kubeconfig = tmp_path / "kubeconfig"
        write_kubeconfig(kubeconfig, f"http://127.0.0.1:{port}")
        api = config.new_client_from_config(config_file=str(kubeconfig))
        harness = Harness(cfg, kubeconfig)
        harness.thread.start()
        try:
            yield harness, client.CoreV1Api(api), client.DiscoveryV1Api(api), store_, port
        finally:
            harness.stop.set()
            harness.thread.join(5)


@pytest.fixture
def cfg() -> Config:
    return validate(config_dict())


def test_events_reach_the_state(cfg: Config, tmp_path: Path) -> None:
    with running(cfg, tmp_path) as (h, core, disco, _, _):
        wait_for(lambda: h.state.readiness.synced, 10, what="initial sync")
        core.create_namespaced_service("default", request_body(service("web")))
        disco.create_namespaced_endpoint_slice("default", request_body(slice_("web")))
        wait_for(lambda: h.prefixes() == {"10.96.0.10/32"}, 5)
        disco.patch_namespaced_endpoint_slice(
            "web-abcde", "default", {"endpoints": [endpoint(ready=False)]}
        )
        wait_for(lambda: h.prefixes() == set(), 5)
        disco.patch_namespaced_endpoint_slice(
            "web-abcde", "default", {"endpoints": [endpoint(ready=True)]}
        )
        wait_for(lambda: h.prefixes() == {"10.96.0.10/32"}, 5)
        core.delete_namespaced_service("web", "default")
        wait_for(lambda: h.prefixes() == set(), 5)


def test_nothing_is_published_before_every_list_is_done(cfg: Config, tmp_path: Path) -> None:
    store = Store()
    store.create(SERVICES, "default", request_body(service("web")))
    with running(cfg, tmp_path, store) as (h, _, _, _, _):
        wait_for(lambda: h.state.readiness.synced, 10)
        # The first signal comes only after the sync, with the whole state in one delta.
        assert h.prefixes() == set()  # the Service has no EndpointSlice: unhealthy
        assert h.changes >= 1


def test_410_relist_and_dropped_watches_change_nothing(cfg: Config, tmp_path: Path) -> None:
    with running(cfg, tmp_path) as (h, core, disco, store, _):
        for index in range(20):
            core.create_namespaced_service(
                "default", request_body(service(f"s{index}", cluster_ips=(f"10.96.0.{index + 1}",)))
            )
            disco.create_namespaced_endpoint_slice("default", request_body(slice_(f"s{index}")))
        wait_for(lambda: len(h.prefixes()) == 20, 10)
        deltas_before = len(h.deltas)

        store.drop_watches()
        wait_for(lambda: h.source.health().api.watch_restarts >= 3, 10, what="rewatch")
        store.compact()
        store.drop_watches()
        wait_for(lambda: h.source.health().api.relists >= 1, 10, what="relist after 410")
        # An object changed while the watch was down still arrives...
        disco.patch_namespaced_endpoint_slice(
            "s0-abcde", "default", {"endpoints": [endpoint(ready=False)]}
        )
        wait_for(lambda: "10.96.0.1/32" not in h.prefixes(), 10)
        # ...and the relists themselves changed nothing else.
        assert [set(d) for d in h.deltas[deltas_before:]] == [{"10.96.0.1/32"}]


def test_malformed_objects_are_reported_not_fatal(cfg: Config, tmp_path: Path) -> None:
    with running(cfg, tmp_path) as (h, core, disco, store, _):
        wait_for(lambda: h.state.readiness.synced, 10)
        store.create(
            SERVICES, "default", {"metadata": {"name": "bad"}, "spec": {"clusterIPs": "10.96.0.9"}}
        )
        core.create_namespaced_service("default", request_body(service("web")))
        disco.create_namespaced_endpoint_slice("default", request_body(slice_("web")))
        wait_for(lambda: h.prefixes() == {"10.96.0.10/32"}, 5)
        skipped = {s.service: s.code for s in h.state.plan().skipped}
        assert skipped == {"default/bad": "malformed"}


@pytest.mark.parametrize("limit", [None, 1.0])
def test_api_loss_keeps_routes_unless_configured(tmp_path: Path, limit: float | None) -> None:
    data = config_dict()
    if limit:
        data["kubernetes"] = {"withdrawAfterApiLossSeconds": limit}
    cfg = validate(data)
    store = Store()
    kubeconfig = tmp_path / "kubeconfig"
    with serving(store=store, bookmark_seconds=0.2) as (_, port):
        write_kubeconfig(kubeconfig, f"http://127.0.0.1:{port}")
        api = config.new_client_from_config(config_file=str(kubeconfig))
        h = Harness(cfg, kubeconfig)
        h.thread.start()
        client.CoreV1Api(api).create_namespaced_service("default", request_body(service("web")))
        client.DiscoveryV1Api(api).create_namespaced_endpoint_slice(
            "default", request_body(slice_("web"))
        )
        wait_for(lambda: h.prefixes() == {"10.96.0.10/32"}, 10)
    try:
        # The API server is gone.
        wait_for(lambda: not h.source.health().api.connected, 30, what="loss noticed")
        if limit:
            wait_for(lambda: h.prefixes() == set(), 10)
            assert [s.code for s in h.state.plan().skipped] == ["api-lost"]
        else:
            assert all(h.prefixes() == {"10.96.0.10/32"} for _ in sample_for(3.0))
        # It comes back (same port, same objects, history lost): routes as before.
        with serving(port=port, store=store, bookmark_seconds=0.2):
            wait_for(lambda: h.source.health().api.connected, 40, what="reconnected")
            wait_for(lambda: h.prefixes() == {"10.96.0.10/32"}, 10)
    finally:
        h.stop.set()
        h.thread.join(5)


def sample_for(seconds: float) -> Iterator[None]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        yield
        time.sleep(0.05)


def reflector_threads() -> list[str]:
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("watch-"))


ONE_SET = ["watch-EndpointSlice", "watch-Node", "watch-Service"]


def test_stopping_ends_quiet_watches_at_once(cfg: Config, tmp_path: Path) -> None:
    # No bookmark for a minute: only aborting the request ends a watch before that.
    with running(cfg, tmp_path, bookmark_seconds=60) as (h, _, _, _, _):
        wait_for(lambda: h.state.readiness.synced, 10)
        assert reflector_threads() == ONE_SET
        started = time.monotonic()
        h.stop.set()
        h.thread.join(5)
        assert not h.thread.is_alive()
        assert time.monotonic() - started < 3
        assert reflector_threads() == []


def test_a_restarted_source_runs_one_set_of_reflectors(
    cfg: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    follow = KubeSource._follow
    calls = 0

    def fail_first_run(self: KubeSource, state: ClusterState, stop: threading.Event) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            wait_for(lambda: reflector_threads() == ONE_SET, 10)
            raise RuntimeError("the first run fails after its reflectors started")
        follow(self, state, stop)

    monkeypatch.setattr(KubeSource, "_follow", fail_first_run)
    with serving(bookmark_seconds=0.2) as (_, port):
        kubeconfig = tmp_path / "kubeconfig"
        write_kubeconfig(kubeconfig, f"http://127.0.0.1:{port}")
        h = Harness(cfg, kubeconfig)
        with pytest.raises(RuntimeError, match="first run fails"):
            h.source.run(h.state, h.stop)
        assert reflector_threads() == []
        # Run again, as the agent does after a pause; then stop and run once more.
        for _ in range(2):
            stop = threading.Event()
            thread = threading.Thread(target=h.source.run, args=(h.state, stop))
            thread.start()
            try:
                wait_for(lambda: h.source.health().api.synced, 10, what="relisted")
                assert all(reflector_threads() == ONE_SET for _ in sample_for(1.0))
                assert h.source.health().alive
            finally:
                stop.set()
                thread.join(5)
            assert reflector_threads() == []


def test_a_dead_reflector_thread_is_reported(
    cfg: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: ServiceSink, items: list[Any]) -> None:
        if items:
            raise ValueError("a bug in the Service sink")

    monkeypatch.setattr(ServiceSink, "upsert", broken)
    with running(cfg, tmp_path) as (h, core, _, _, _):
        wait_for(lambda: h.source.health().api.synced, 10)
        assert h.source.health().alive
        core.create_namespaced_service("default", request_body(service("web")))
        wait_for(lambda: not h.source.health().alive, 5, what="the dead thread reported")
        health = h.source.health()
        assert "watch-Service" in health.reason
        assert "a bug in the Service sink" in health.reason
        assert reflector_threads() == ["watch-EndpointSlice", "watch-Node"]
    assert reflector_threads() == []
