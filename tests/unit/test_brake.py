"""The mass-withdraw brake on a fake clock: the pure hold, and the reconciler with it (what is
exempt: deleted Services, a drained node; what recovers within the hold)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from cosmolet.agent.brake import Brake, brake_json
from cosmolet.agent.journal import Journal
from cosmolet.agent.reconciler import Reconciler
from cosmolet.agent.service_events import ServiceEvents
from cosmolet.config.schema import validate
from cosmolet.config.services import WithdrawBrake
from cosmolet.engine.model import Attributes, Family, Route
from cosmolet.engine.objects import Node, decode_object
from cosmolet.exabgp.api import PeerEvent, PeerState
from cosmolet.exabgp.config import sessions
from cosmolet.kube.events import ServiceEvent
from tests.factories import config_dict, node, service, slice_
from tests.unit.test_agent import cluster

CONFIG = WithdrawBrake.model_validate({"maxFraction": 0.5, "holdSeconds": 60, "minRoutes": 1})
EXCLUDE_LABEL = {"node.kubernetes.io/exclude-from-external-load-balancers": ""}
IPS = [f"10.96.0.{i}" for i in range(1, 11)]
PREFIXES = [f"{ip}/32" for ip in IPS]


def route(prefix: str) -> Route:
    return Route(prefix, Family.IPV4, ("default/web",), Attributes())


def test_more_than_the_fraction_is_held_then_released() -> None:
    brake = Brake(CONFIG)
    advertised = set(PREFIXES)
    delta = dict.fromkeys(PREFIXES[:6])
    out, engaged = brake.filter(delta, advertised, (), 0.0)
    assert out == {} and engaged is not None
    assert (engaged.held, engaged.advertised, engaged.until) == (6, 10, 60.0)
    assert brake.due(59.9) == {}
    assert brake.due(60.0) == dict.fromkeys(PREFIXES[:6])
    assert brake.view().released == 6 and brake.until is None


def test_up_to_the_fraction_passes() -> None:
    brake = Brake(CONFIG)
    out, engaged = brake.filter(dict.fromkeys(PREFIXES[:5]), set(PREFIXES), (), 0.0)
    assert out == dict.fromkeys(PREFIXES[:5]) and engaged is None


def test_a_burst_over_several_reconciles_counts_within_the_window() -> None:
    brake = Brake(CONFIG, window=10)
    advertised = set(PREFIXES)
    out, _ = brake.filter(dict.fromkeys(PREFIXES[:3]), advertised, (), 0.0)
    assert len(out) == 3
    advertised -= set(PREFIXES[:3])
    out, engaged = brake.filter(dict.fromkeys(PREFIXES[3:6]), advertised, (), 1.0)
    assert out == {} and engaged is not None and engaged.advertised == 10
    # Once engaged, a further withdrawal joins the hold whatever its size.
    out, engaged = brake.filter({PREFIXES[6]: None}, advertised, (), 2.0)
    assert out == {} and engaged is None and brake.view().held == 4
    # Outside the window the first three no longer count.
    brake.release()
    out, engaged = brake.filter(dict.fromkeys(PREFIXES[3:5]), advertised, (), 30.0)
    assert len(out) == 2 and engaged is None


def test_what_recovers_within_the_hold_is_never_withdrawn() -> None:
    brake = Brake(CONFIG)
    brake.filter(dict.fromkeys(PREFIXES[:8]), set(PREFIXES), (), 0.0)
    out, _ = brake.filter({p: route(p) for p in PREFIXES[:7]}, set(PREFIXES), (), 5.0)
    assert len(out) == 7  # attribute updates of routes still advertised
    assert brake.due(60.0) == {PREFIXES[7]: None}
    assert brake.view().recovered == 7
    brake.filter(dict.fromkeys(PREFIXES[:8]), set(PREFIXES), (), 100.0)
    brake.filter({p: route(p) for p in PREFIXES[:8]}, set(PREFIXES), (), 101.0)
    shown = brake_json(brake.view(), 101.0)
    assert brake.until is None and shown is not None and shown["engaged"] is False


def test_exempt_withdrawals_pass_and_do_not_count() -> None:
    brake = Brake(CONFIG)
    out, engaged = brake.filter(dict.fromkeys(PREFIXES[:8]), set(PREFIXES), PREFIXES[:8], 0.0)
    assert len(out) == 8 and engaged is None


def test_without_the_api_server_the_brake_does_not_engage() -> None:
    brake = Brake(CONFIG)
    out, engaged = brake.filter(
        dict.fromkeys(PREFIXES[:8]), set(PREFIXES), (), 0.0, may_engage=False
    )
    assert len(out) == 8 and engaged is None


class Recording:
    def __init__(self) -> None:
        self.events: list[ServiceEvent] = []

    def record(self, event: ServiceEvent) -> None:
        self.events.append(event)


def braked_agent(
    tmp_path: Path, min_routes: int = 5
) -> tuple[Reconciler, io.StringIO, list[float], Recording]:
    brake = {"maxFraction": 0.5, "holdSeconds": 30, "minRoutes": min_routes}
    cfg = validate(config_dict(withdrawBrake=brake))
    out = io.StringIO()
    now = [100.0]
    agent = Reconciler(cfg, sessions(cfg), out, Journal(tmp_path / "j"), clock=lambda: now[0])
    recording = Recording()
    events = ServiceEvents(recording.record, cfg.node_name)
    agent.observers.append(events)
    agent.guards.on_brake = events.brake_engaged
    agent.handle_batch([PeerEvent("192.0.2.0", PeerState.UP)])
    agent.handle_batch(cluster(agent, *IPS))
    out.truncate(0), out.seek(0)
    return agent, out, now, recording


def objects(healthy: list[str], unhealthy: list[str]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    for ip in healthy + unhealthy:
        name = "s" + ip.replace(".", "-")
        result.append(service(name, cluster_ips=(ip,)))
        result.append(slice_(name) if ip in healthy else slice_(name, endpoints=[]))
    return result


def test_the_reconciler_holds_emptied_services_then_withdraws(tmp_path: Path) -> None:
    agent, out, now, recording = braked_agent(tmp_path)
    agent.handle_batch(cluster(agent, objects=objects(IPS[:2], IPS[2:])))
    assert out.getvalue() == ""  # 8 of 10: held
    assert len(agent.desired()) == 10
    assert [(e.reason, e.kind, e.type) for e in recording.events] == [
        ("WithdrawBraked", "Node", "Warning")
    ]
    assert "8 of 10 routes" in recording.events[0].message
    now[0] = 129.0
    agent.release_braked()
    assert out.getvalue() == ""
    now[0] = 130.0
    agent.release_braked()
    assert out.getvalue().splitlines() == [
        "neighbor 192.0.2.0 withdraw attributes next-hop self nlri "
        + " ".join(f"{ip}/32" for ip in IPS[2:])
    ]


def test_deleted_services_and_a_drained_node_are_not_braked(tmp_path: Path) -> None:
    agent, out, _, _ = braked_agent(tmp_path, min_routes=2)  # so that 2 of 2 is braked here
    agent.handle_batch(cluster(agent, *IPS[:2]))  # 8 Services deleted
    assert len(out.getvalue().split("nlri ")[1].split()) == 8
    out.truncate(0), out.seek(0)
    # Empty both remaining ones (held), then the node is excluded: everything goes at once.
    agent.handle_batch(cluster(agent, objects=objects([], IPS[:2])))
    assert out.getvalue() == "" and agent.brake() is not None
    assert agent.guards.brake is not None and agent.guards.brake.view().held == 2
    excluded = decode_object(node(labels=EXCLUDE_LABEL))
    assert isinstance(excluded, Node)
    with agent.state.update() as builder:
        builder.set_node(excluded)
    agent.handle_batch([agent.events.get_nowait()])
    assert out.getvalue().splitlines() == [
        "neighbor 192.0.2.0 withdraw attributes next-hop self nlri 10.96.0.1/32 10.96.0.2/32"
    ]
    assert agent.guards.brake.view().held == 0


def test_fewer_withdrawals_than_min_routes_are_never_braked() -> None:
    """1 of 1, or 2 of 3, is a routine change on a small node, not a mass withdrawal."""
    default = WithdrawBrake.model_validate({})
    assert default.min_routes == 10
    brake = Brake(default)
    out, engaged = brake.filter({PREFIXES[0]: None}, {PREFIXES[0]}, (), 0.0)
    assert out == {PREFIXES[0]: None} and engaged is None
    out, engaged = brake.filter(dict.fromkeys(PREFIXES[1:3]), set(PREFIXES[1:4]), (), 1.0)
    assert len(out) == 2 and engaged is None
    # The floor counts the whole window: 9 sent, then one more of the 10 advertised engages.
    brake = Brake(default)
    out, _ = brake.filter(dict.fromkeys(PREFIXES[:9]), set(PREFIXES), (), 0.0)
    assert len(out) == 9
    out, engaged = brake.filter({PREFIXES[9]: None}, {PREFIXES[9]}, (), 1.0)
    assert out == {} and engaged is not None and engaged.held == 1


def test_the_reconciler_sends_a_small_nodes_withdrawals_at_once(tmp_path: Path) -> None:
    """Default ``minRoutes`` (10): a node advertising 2 routes that loses both withdraws them."""
    cfg = validate(config_dict(withdrawBrake={}))
    out = io.StringIO()
    agent = Reconciler(cfg, sessions(cfg), out, Journal(tmp_path / "j"), clock=lambda: 100.0)
    agent.handle_batch([PeerEvent("192.0.2.0", PeerState.UP)])
    agent.handle_batch(cluster(agent, *IPS[:2]))
    out.truncate(0), out.seek(0)
    agent.handle_batch(cluster(agent, objects=objects([], IPS[:2])))
    assert out.getvalue().splitlines() == [
        "neighbor 192.0.2.0 withdraw attributes next-hop self nlri 10.96.0.1/32 10.96.0.2/32"
    ]


def test_forget_withdraws_only_what_is_held_and_ends_an_emptied_hold() -> None:
    brake = Brake(CONFIG)
    brake.filter(dict.fromkeys(PREFIXES[:8]), set(PREFIXES), (), 0.0)
    assert brake.forget([PREFIXES[0], PREFIXES[9]]) == {PREFIXES[0]: None}
    assert brake.view().held == 7 and brake.until == 60.0
    assert brake.forget(PREFIXES[1:8]) == dict.fromkeys(PREFIXES[1:8])
    assert brake.until is None and brake.view().released == 0


def test_held_withdrawals_go_once_their_services_are_deleted(tmp_path: Path) -> None:
    """The README says deleted Services are not braked: one emptied (held), then deleted, goes
    at the next reconcile, not when the hold ends; the others stay held."""
    agent, out, now, _ = braked_agent(tmp_path)
    agent.handle_batch(cluster(agent, objects=objects(IPS[:2], IPS[2:])))  # 8 of 10: held
    assert out.getvalue() == ""
    now[0] = 101.0
    # Three of the emptied Services are deleted (10.96.0.3-5); five stay, emptied.
    deleted = {"s" + ip.replace(".", "-") for ip in IPS[2:5]}
    remaining = [o for o in objects(IPS[:2], IPS[2:]) if o["metadata"]["name"] not in deleted]
    agent.handle_batch(cluster(agent, objects=remaining))
    gone = [f"{ip}/32" for ip in IPS[2:5]]
    assert out.getvalue().splitlines() == [
        "neighbor 192.0.2.0 withdraw attributes next-hop self nlri " + " ".join(gone)
    ]
    assert agent.guards.brake is not None and agent.guards.brake.view().held == 5
    out.truncate(0), out.seek(0)
    now[0] = 130.0
    agent.release_braked()
    assert out.getvalue().splitlines() == [
        "neighbor 192.0.2.0 withdraw attributes next-hop self nlri "
        + " ".join(f"{ip}/32" for ip in IPS[5:])
    ]
