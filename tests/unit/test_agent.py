"""The reconciler, driven with events and a recording stdout."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from cosmolet.agent.changelog import ChangeLog
from cosmolet.agent.inputs import Drain, Event, Stop
from cosmolet.agent.journal import Journal
from cosmolet.agent.reconciler import Reconciler
from cosmolet.config.schema import validate
from cosmolet.engine.objects import EndpointSlice, Service, decode_all
from cosmolet.exabgp.api import PeerEvent, PeerState
from cosmolet.exabgp.config import sessions
from tests.factories import config_dict, endpoint, service, slice_

CONFIG = validate(config_dict())


def cluster(agent: Reconciler, *healthy_ips: str, objects: list[Any] | None = None) -> list[Event]:
    """Set the agent's cluster state (as a source would) and return the events it queued."""
    if objects is None:
        objects = []
        for ip in healthy_ips:
            name = "s" + ip.replace(".", "-").replace(":", "-")
            objects += [service(name, cluster_ips=(ip,)), slice_(name)]
    records, _ = decode_all(objects)
    with agent.state.update() as builder:
        builder.replace_services(r for r in records if isinstance(r, Service))
        builder.replace_slices(r for r in records if isinstance(r, EndpointSlice))
    agent.state.mark_synced()
    events: list[Event] = []
    while not agent.events.empty():
        events.append(agent.events.get())
    return events


def make(tmp_path: Path, out: io.StringIO | None = None) -> tuple[Reconciler, io.StringIO]:
    out = out or io.StringIO()
    return Reconciler(CONFIG, sessions(CONFIG), out, Journal(tmp_path / "journal")), out


def test_a_burst_of_changes_is_applied_once(tmp_path: Path) -> None:
    agent, out = make(tmp_path)
    events = cluster(agent, "10.96.0.1") + cluster(agent, "10.96.0.2") + cluster(agent, "10.96.0.3")
    assert len(events) == 3
    agent.handle_batch(events)
    assert out.getvalue() == (
        "neighbor 192.0.2.0 announce attributes next-hop self nlri 10.96.0.3/32\n"
    )


def test_peer_up_before_first_plan_gets_eor_after_it(tmp_path: Path) -> None:
    agent, out = make(tmp_path)
    agent.handle_batch([PeerEvent("192.0.2.0", PeerState.UP)])
    assert out.getvalue() == ""
    agent.handle_batch(cluster(agent, "10.96.0.1"))
    assert out.getvalue().splitlines() == [
        "neighbor 192.0.2.0 announce attributes next-hop self nlri 10.96.0.1/32",
        "neighbor 192.0.2.0 announce eor ipv4 unicast",
    ]


def test_journal_follows_the_commands(tmp_path: Path) -> None:
    agent, _ = make(tmp_path)
    agent.handle_batch(cluster(agent, "10.96.0.1", "10.96.0.2"))
    agent.handle_batch(cluster(agent, "10.96.0.2"))
    assert Journal(tmp_path / "journal").load() == {"10.96.0.2/32"}

    # A new agent (the old one died) withdraws what the plan no longer wants, nothing else.
    agent2, out2 = make(tmp_path)
    agent2.handle_batch(cluster(agent2, "10.96.0.3"))
    assert out2.getvalue().splitlines() == [
        "neighbor 192.0.2.0 announce attributes next-hop self nlri 10.96.0.3/32",
        "neighbor 192.0.2.0 withdraw attributes next-hop self nlri 10.96.0.2/32",
    ]


def test_drain_withdraws_and_ignores_later_plans(tmp_path: Path) -> None:
    agent, out = make(tmp_path)
    agent.handle_batch(cluster(agent, "10.96.0.1"))
    agent.handle_batch([Drain(), *cluster(agent, "10.96.0.1", "10.96.0.2")])
    assert out.getvalue().splitlines()[1:] == [
        "neighbor 192.0.2.0 withdraw attributes next-hop self nlri 10.96.0.1/32"
    ]


class BrokenPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError


class Flaky(io.StringIO):
    """Fails once with an unexpected error, then works."""

    failed = False

    def write(self, text: str) -> int:
        if not self.failed:
            self.failed = True
            raise RuntimeError("boom")
        return super().write(text)


def test_a_closed_pipe_stops_the_agent(tmp_path: Path) -> None:
    agent, _ = make(tmp_path, BrokenPipe())
    agent.handle_batch(cluster(agent, "10.96.0.1"))
    assert agent.stopped == "ExaBGP closed the command pipe"


def test_an_unexpected_error_is_logged_and_the_loop_goes_on(tmp_path: Path) -> None:
    agent, out = make(tmp_path, Flaky())
    agent.handle_batch(cluster(agent, "10.96.0.1"))
    assert agent.stopped is None
    assert out.getvalue() == ""
    # The failed write is not forgotten: the next plan (even an identical one) re-sends.
    agent.handle_batch(cluster(agent, "10.96.0.1"))
    assert out.getvalue() == (
        "neighbor 192.0.2.0 announce attributes next-hop self nlri 10.96.0.1/32\n"
    )
    agent.handle_batch([Stop("test")])
    assert agent.stopped == "test"


def test_a_failed_withdraw_is_retried(tmp_path: Path) -> None:
    out = Flaky()
    out.failed = True
    agent, _ = make(tmp_path, out)
    agent.handle_batch(cluster(agent, "10.96.0.1"))
    out.failed = False
    agent.handle_batch(
        cluster(
            agent,
        )
    )  # the withdraw fails
    agent.handle_batch(
        cluster(
            agent,
        )
    )
    assert out.getvalue().splitlines()[-1] == (
        "neighbor 192.0.2.0 withdraw attributes next-hop self nlri 10.96.0.1/32"
    )


def test_plan_errors_do_not_reach_stdout(tmp_path: Path) -> None:
    agent, out = make(tmp_path)
    bad = [service("x", cluster_ips=("1.2.3.4\nfoo",)), slice_("x", [endpoint()])]
    agent.handle_batch(cluster(agent, objects=bad))
    assert out.getvalue() == ""


def test_churn_does_not_flood_the_logs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cosmolet import logs

    logs.configure("info", "json")
    agent, _ = make(tmp_path)
    now = [0.0]
    agent.observers.append(ChangeLog(clock=lambda: now[0]))  # a second that never ends
    agent.handle_batch(cluster(agent, *(f"10.96.1.{i}" for i in range(1, 201))))
    for round_ in range(100):  # 100 single-route changes within a second
        ip = f"10.96.2.{round_ % 50 + 1}"
        agent.handle_batch(cluster(agent, *(f"10.96.1.{i}" for i in range(1, 201)), ip))
    lines = [
        line
        for line in capsys.readouterr().err.splitlines()
        if '"announce"' in line or '"withdraw"' in line or "routes changed" in line
    ]
    assert sum('"routes changed"' in line for line in lines) == 1  # the first big batch
    assert len(lines) <= 1 + 20
    # When the second ends, what was not logged one by one is counted.
    now[0] = 1.5
    agent.handle_batch(cluster(agent, *(f"10.96.1.{i}" for i in range(1, 201)), "10.96.3.1"))
    assert '"route changes and refusals not logged one by one"' in capsys.readouterr().err
