"""Kubernetes Events on Services: what the agent records, and the recorder against the lab
API server (read back with the official client), rate limit included."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

from kubernetes import client, config

from cosmolet.agent.journal import Journal
from cosmolet.agent.reconciler import Reconciler
from cosmolet.agent.service_events import ServiceEvents
from cosmolet.config.schema import validate
from cosmolet.exabgp.config import sessions
from cosmolet.kube.events import EventRecorder, ServiceEvent
from lab.apiserver import serving, write_kubeconfig
from lab.netns import wait_for
from tests.factories import config_dict
from tests.unit.test_agent import cluster


class Recording:
    def __init__(self) -> None:
        self.events: list[ServiceEvent] = []

    def record(self, event: ServiceEvent) -> None:
        self.events.append(event)


def test_agent_records_starts_and_stops_but_not_the_first_plan(tmp_path: Path) -> None:
    cfg = validate(config_dict())
    agent = Reconciler(cfg, sessions(cfg), io.StringIO(), Journal(tmp_path / "j"))
    recording = Recording()
    agent.observers.append(ServiceEvents(recording.record, cfg.node_name))
    agent.handle_batch(cluster(agent, "10.96.0.1"))
    assert recording.events == []  # a restart is not news
    agent.handle_batch(cluster(agent, "10.96.0.1", "10.96.0.2"))
    agent.handle_batch(cluster(agent, "10.96.0.2"))
    assert [(e.service, e.reason, e.message) for e in recording.events] == [
        ("default/s10-96-0-2", "Advertised", "10.96.0.2/32 advertised from node node1"),
        ("default/s10-96-0-1", "Withdrawn", "10.96.0.1/32 withdrawn from node node1"),
    ]


def test_recorder_posts_events_at_the_configured_rate(tmp_path: Path) -> None:
    with serving() as (_, port):
        kubeconfig = tmp_path / "kubeconfig"
        write_kubeconfig(kubeconfig, f"http://127.0.0.1:{port}")
        recorder = EventRecorder(
            lambda: config.new_client_from_config(config_file=str(kubeconfig)), "node1", 5.0
        )
        for index in range(30):
            recorder.record(ServiceEvent("default/web", "Advertised", f"event {index}"))
        stop = threading.Event()
        thread = threading.Thread(target=recorder.run, args=(stop,))
        started = time.monotonic()
        thread.start()
        try:
            wait_for(lambda: recorder.sent >= 10, 10)
            elapsed = time.monotonic() - started
        finally:
            stop.set()
            thread.join(5)
        # A burst of 5, then 5 per second: 10 events take about a second, never much less.
        assert elapsed >= 0.8
        core = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
        events = core.list_namespaced_event("default").items
        assert len(events) == recorder.sent
        first = events[0]
        assert first.involved_object.kind == "Service" and first.involved_object.name == "web"
        assert first.reason == "Advertised" and first.source.host == "node1"
        assert recorder.failed == 0
