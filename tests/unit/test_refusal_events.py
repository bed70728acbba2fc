"""Events for policy refusals, as the reconciler reports them: a Warning on the Service naming
the address and the reason, once per new refusal or changed reason; the node's own refusal
(services.maxRoutes) on the Node."""

from __future__ import annotations

import io
from pathlib import Path

from cosmolet.agent.journal import Journal
from cosmolet.agent.reconciler import Reconciler
from cosmolet.agent.service_events import ServiceEvents
from cosmolet.config.schema import validate
from cosmolet.exabgp.config import sessions
from cosmolet.kube.events import ServiceEvent
from tests.factories import config_dict, endpoint, service, slice_
from tests.unit.test_agent import cluster


def agent_recording(tmp_path: Path, **services: object) -> tuple[Reconciler, list[ServiceEvent]]:
    cfg = validate(config_dict(**services))
    agent = Reconciler(cfg, sessions(cfg), io.StringIO(), Journal(tmp_path / "j"))
    events: list[ServiceEvent] = []
    agent.observers.append(ServiceEvents(events.append, cfg.node_name))
    return agent, events


def test_a_bad_annotation_is_posted_once_and_again_when_its_reason_changes(
    tmp_path: Path,
) -> None:
    agent, events = agent_recording(tmp_path)

    def annotated(med: str) -> list[object]:
        return [service("web", annotations={"cosmolet.io/med": med}), slice_("web")]

    agent.handle_batch(cluster(agent, objects=annotated("x")))
    agent.handle_batch(cluster(agent, objects=annotated("x")))
    agent.handle_batch(cluster(agent, objects=annotated("-1")))
    warnings = [(e.service, e.reason, e.type, e.kind) for e in events]
    assert warnings == [("default/web", "NotAdvertised", "Warning", "Service")] * 2
    assert "cosmolet.io/med" in events[0].message and "(bad-annotation)" in events[0].message
    assert events[0].message != events[1].message


def test_max_routes_goes_on_the_node(tmp_path: Path) -> None:
    agent, events = agent_recording(tmp_path, maxRoutes=1)
    agent.handle_batch(cluster(agent, "10.96.0.1", "10.96.0.2"))
    assert [(e.service, e.kind, e.type) for e in events] == [("node1", "Node", "Warning")]
    assert "services.maxRoutes is 1" in events[0].message


def test_an_ip_mode_proxy_ingress_is_posted_on_its_service(tmp_path: Path) -> None:
    lb = {"enabled": True, "allowedCIDRs": ["198.51.100.0/24"]}
    agent, events = agent_recording(tmp_path, advertise={"loadBalancerIPs": lb})
    proxied = service(
        "lb", type="LoadBalancer", lb_ips=["198.51.100.2"], lb_ip_modes={"198.51.100.2": "Proxy"}
    )
    agent.handle_batch(cluster(agent, objects=[proxied, slice_("lb")]))
    agent.handle_batch(cluster(agent, objects=[proxied, slice_("lb")]))
    assert [(e.service, e.reason, e.type) for e in events] == [
        ("default/lb", "NotAdvertised", "Warning")
    ]
    assert "198.51.100.2: ipMode Proxy" in events[0].message
    assert "(lb-ip-mode-proxy)" in events[0].message


def test_a_refusal_is_not_posted_again_when_endpoints_flap(tmp_path: Path) -> None:
    """The allowlist is looked at only while the Service is healthy: its refusal vanishes while
    it has no endpoints and must not come back as news with them. It is news again after the
    Service was advertised without it (fixed, then broken again) or deleted and re-created."""
    external = {"enabled": True, "allowedCIDRs": ["203.0.113.0/24"]}
    agent, events = agent_recording(tmp_path, advertise={"externalIPs": external})

    def web(external_ip: str, ready: bool = True) -> list[object]:
        ready_slice = slice_("web", [endpoint(ready=ready)])
        return [service("web", external_ips=[external_ip]), ready_slice]

    outside = "198.51.100.9"
    for objects in (
        web(outside),
        web(outside, ready=False),
        web(outside),  # the same refusal: not news
        web("203.0.113.9"),  # fixed: advertised without it
        web(outside),  # broken again: news
        [],  # deleted
        web(outside),  # re-created: news
    ):
        agent.handle_batch(cluster(agent, objects=objects))
    assert [e.reason for e in events if e.reason == "NotAdvertised"] == ["NotAdvertised"] * 3
