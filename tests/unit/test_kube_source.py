"""The Kubernetes source against the lab API server: sync, events, relist by diff, API loss."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from cosmolet.agent.cluster_state import ClusterState
from cosmolet.config.schema import Config, validate
from cosmolet.engine.builder import PlanBuilder
from cosmolet.engine.model import Route
from cosmolet.sources.kube import KubeSource
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
def running(cfg: Config, tmp_path: Path, store: Store | None = None) -> Iterator[Any]:
    with serving(store=store, bookmark_seconds=0.2) as (store_, port):
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
        wait_for(lambda: h.source.health().watch_restarts >= 3, 10, what="rewatch")
        store.compact()
        store.drop_watches()
        wait_for(lambda: h.source.health().relists >= 1, 10, what="relist after 410")
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
        wait_for(lambda: not h.source.health().connected, 30, what="loss noticed")
        if limit:
            wait_for(lambda: h.prefixes() == set(), 10)
            assert [s.code for s in h.state.plan().skipped] == ["api-lost"]
        else:
            assert all(h.prefixes() == {"10.96.0.10/32"} for _ in sample_for(3.0))
        # It comes back (same port, same objects, history lost): routes as before.
        with serving(port=port, store=store, bookmark_seconds=0.2):
            wait_for(lambda: h.source.health().connected, 40, what="reconnected")
            wait_for(lambda: h.prefixes() == {"10.96.0.10/32"}, 10)
    finally:
        h.stop.set()
        h.thread.join(5)


def sample_for(seconds: float) -> Iterator[None]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        yield
        time.sleep(0.05)
