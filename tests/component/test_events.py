"""Kubernetes Events on Services: what the agent records, and the recorder against the lab
API server (read back with the official client), rate limit included."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes import client, config

from cosmolet.agent.journal import Journal
from cosmolet.agent.reconciler import Reconciler
from cosmolet.agent.service_events import ServiceEvents
from cosmolet.config.schema import validate
from cosmolet.exabgp.config import sessions
from cosmolet.kube.events import EventRecorder, ServiceEvent
from lab.apiserver import serving, write_kubeconfig
from lab.netns import wait_for
from tests.factories import config_dict, service, slice_
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


def refusing(external_ip: str) -> list[Any]:
    return [service("web", cluster_ips=("10.96.0.7",), external_ips=[external_ip]), slice_("web")]


def test_a_refused_address_gets_one_warning_per_change_read_back_from_the_api(
    tmp_path: Path,
) -> None:
    """The Service owner's view: ``kubectl describe svc`` lists why an address is not
    advertised, once per new refusal or changed reason, not once per reconcile."""
    cfg = validate(
        config_dict(
            advertise={"externalIPs": {"enabled": True, "allowedCIDRs": ["203.0.113.0/24"]}}
        )
    )
    with serving() as (_, port):
        kubeconfig = tmp_path / "kubeconfig"
        write_kubeconfig(kubeconfig, f"http://127.0.0.1:{port}")
        recorder = EventRecorder(
            lambda: config.new_client_from_config(config_file=str(kubeconfig)), "node1", 50.0
        )
        agent = Reconciler(cfg, sessions(cfg), io.StringIO(), Journal(tmp_path / "j"))
        agent.observers.append(ServiceEvents(recorder.record, cfg.node_name))
        agent.handle_batch(cluster(agent, objects=refusing("198.51.100.9")))
        for _ in range(3):  # the same state, reconciled again (the periodic recompute)
            with agent.state.update() as builder:
                builder.recompute_all()
            agent.handle_batch([agent.events.get_nowait()])
        agent.handle_batch(cluster(agent, objects=refusing("198.51.100.10")))
        agent.handle_batch(cluster(agent, objects=refusing("203.0.113.5")))  # allowed now
        stop = threading.Event()
        thread = threading.Thread(target=recorder.run, args=(stop,))
        thread.start()
        try:
            wait_for(lambda: not recorder.queue and recorder.sent + recorder.failed >= 2, 10)
        finally:
            stop.set()
            thread.join(5)
        core = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
        events = core.list_namespaced_event("default").items
    warnings = [
        (e.type, e.reason, e.involved_object.kind, e.involved_object.name, e.message)
        for e in events
    ]
    assert sorted(warnings) == sorted(
        [
            (
                "Warning",
                "NotAdvertised",
                "Service",
                "web",
                f"not advertised from node node1: externalIPs {ip} outside "
                "services.advertise.externalIPs.allowedCIDRs (not-allowed)",
            )
            for ip in ("198.51.100.9", "198.51.100.10")
        ]
        + [("Normal", "Advertised", "Service", "web", "203.0.113.5/32 advertised from node node1")]
    )


def test_a_node_event_lands_where_kubectl_describe_node_looks(tmp_path: Path) -> None:
    with serving() as (_, port):
        kubeconfig = tmp_path / "kubeconfig"
        write_kubeconfig(kubeconfig, f"http://127.0.0.1:{port}")
        api = config.new_client_from_config(config_file=str(kubeconfig))
        recorder = EventRecorder(lambda: api, "node1", 5.0)
        recorder.record(ServiceEvent("node1", "WithdrawBraked", "held", "Warning", "Node"))
        stop = threading.Event()
        thread = threading.Thread(target=recorder.run, args=(stop,))
        thread.start()
        try:
            wait_for(lambda: recorder.sent + recorder.failed >= 1, 10)
        finally:
            stop.set()
            thread.join(5)
        (event,) = client.CoreV1Api(api).list_namespaced_event("default").items
    involved = event.involved_object
    assert (involved.kind, involved.name, involved.uid, involved.namespace) == (
        "Node",
        "node1",
        "node1",
        None,
    )
    assert (event.type, event.reason) == ("Warning", "WithdrawBraked")
