"""The data-plane gate: its state machine on a fake clock, the verdict on kube-proxy's answers,
and the reconciler behind it (nothing announced before the first pass, everything withdrawn
after failing too long, re-announced on recovery through the flap hold)."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest

from cosmolet.agent.gate import Gate, GateState, Probe
from cosmolet.agent.gate_probe import STALE_SECONDS, judge, parse_time, poll
from cosmolet.agent.inputs import GateChanged
from cosmolet.agent.journal import Journal
from cosmolet.agent.reconciler import Reconciler
from cosmolet.config.schema import ConfigError, validate
from cosmolet.engine.model import Skip, SkipCode
from cosmolet.exabgp.api import PeerEvent, PeerState
from cosmolet.exabgp.config import sessions
from tests.factories import config_dict
from tests.unit.test_agent import cluster

OK, FAIL = Probe(True, "HTTP 200"), Probe(False, "connection refused")
URL = "http://127.0.0.1:10256/healthz"


def test_waits_for_the_first_pass_then_tolerates_failures_shorter_than_fail_after() -> None:
    gate = Gate(URL, fail_after_seconds=10)
    assert gate.observe(FAIL, 0.0) is None  # never passed: still waiting, nothing to change
    assert gate.view().state is GateState.WAITING and not gate.view().allows
    assert gate.observe(OK, 1.0) is True
    assert gate.observe(FAIL, 2.0) is None  # one failure keeps the routes
    assert gate.view().state is GateState.FAILING and gate.view().allows
    assert gate.observe(FAIL, 11.9) is None  # 9.9 s after the first failed probe
    assert gate.observe(FAIL, 12.0) is False  # 10 s: closed, withdraw
    assert gate.view().state is GateState.CLOSED and gate.view().failures == 4
    assert gate.observe(FAIL, 30.0) is None
    assert gate.observe(OK, 31.0) is True
    assert gate.view().failing_since is None


def test_a_pass_between_failures_restarts_the_count() -> None:
    gate = Gate(URL, fail_after_seconds=5)
    gate.observe(OK, 0.0)
    gate.observe(FAIL, 1.0)
    gate.observe(OK, 5.0)
    assert gate.observe(FAIL, 6.0) is None
    assert gate.observe(FAIL, 10.9) is None
    assert gate.observe(FAIL, 11.0) is False


def test_fail_after_zero_withdraws_at_the_first_failed_probe() -> None:
    gate = Gate(URL, fail_after_seconds=0)
    gate.observe(OK, 0.0)
    assert gate.observe(FAIL, 1.0) is False


def test_not_ready_reasons_name_the_url_and_the_last_answer() -> None:
    gate = Gate(URL, fail_after_seconds=1)
    assert "has not passed yet" in (gate.not_ready_reason(0.0) or "")
    gate.observe(FAIL, 0.0)
    assert "connection refused" in (gate.not_ready_reason(0.0) or "")
    gate.observe(OK, 1.0)
    assert gate.not_ready_reason(1.0) is None
    gate.observe(FAIL, 2.0)
    assert gate.not_ready_reason(2.0) is None  # failing, routes still out
    gate.observe(FAIL, 3.0)
    reason = gate.not_ready_reason(5.0) or ""
    assert "failed for 3 s" in reason and URL in reason


KUBE_PROXY_OK = (
    b'{"lastUpdated": "2024-05-01 10:00:00.123456789 +0000 UTC m=+12.3",'
    b'"currentTime": "2024-05-01 10:00:00.123456789 +0000 UTC m=+12.3", "nodeEligible": true}'
)


def test_go_times_parse() -> None:
    parsed = parse_time("2024-05-01 12:00:00.5 +0200 CEST m=+1.0")
    assert parsed is not None and parsed.isoformat() == "2024-05-01T12:00:00.500000+02:00"
    assert parse_time("2024-05-01T10:00:00Z") is not None
    assert parse_time("yesterday") is None and parse_time(5) is None


def test_judge_kube_proxy_answers() -> None:
    assert judge(200, KUBE_PROXY_OK).ok
    assert judge(200, b"ok").ok  # kube-router: no times, the status code decides
    stale = KUBE_PROXY_OK.replace(
        b'10:00:00.123456789 +0000 UTC m=+12.3","c', b'09:57:00 +0000 UTC","c'
    )
    verdict = judge(200, stale)
    assert not verdict.ok and "180 s" in verdict.detail and f"{STALE_SECONDS:g}" in verdict.detail
    fresh = KUBE_PROXY_OK.replace(
        b'10:00:00.123456789 +0000 UTC m=+12.3","c', b'09:59:30 +0000 UTC","c'
    )
    assert judge(200, fresh).ok
    unavailable = judge(
        503,
        b'{"lastUpdated": "2024-05-01 09:58:00 +0000 UTC", "currentTime": '
        b'"2024-05-01 10:00:00 +0000 UTC", "nodeEligible": true}',
    )
    assert not unavailable.ok and "HTTP 503" in unavailable.detail and "09:58" in unavailable.detail
    never = judge(503, b'{"lastUpdated": "0001-01-01 00:00:00 +0000 UTC", "currentTime": "x"}')
    assert "never synced" in never.detail
    deleted = judge(503, b'{"nodeEligible": false}')
    assert "being deleted" in deleted.detail
    garbled = judge(200, b'{"lastUpdated": "soon", "currentTime": "now"}')
    assert not garbled.ok and "unreadable" in garbled.detail


def test_poll_reports_each_change_once() -> None:
    answers = iter([FAIL, OK, OK, FAIL, FAIL, FAIL, OK])
    now = [0.0]
    changes: list[bool] = []
    stop = threading.Event()
    gate = Gate(URL, fail_after_seconds=1.5)

    def get(url: str, timeout: float) -> Probe:
        assert url == URL and timeout == 1.0
        now[0] += 1.0
        try:
            return next(answers)
        except StopIteration:
            stop.set()
            return OK

    poll(gate, 0.0, changes.append, stop, clock=lambda: now[0], get=get)
    assert changes == [True, False, True]


def test_the_url_must_be_none_or_http() -> None:
    assert validate(config_dict()).node.dataplane_gate.url == "none"
    with pytest.raises(ConfigError, match=r"node\.dataplaneGate\.url"):
        validate({**config_dict(), "node": {"dataplaneGate": {"url": "127.0.0.1:10256"}}})
    gated = validate({**config_dict(), "node": {"dataplaneGate": {"url": f" {URL} "}}})
    assert gated.node.dataplane_gate.url == URL


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1:10256x/healthz", "could not be cast to integer"),
        ("http://127.0.0.1:70000/healthz", "out of range"),
        ("http://127.0.0.1:0/healthz", "port 0 cannot be connected to"),
        ("http://127.0.0.1:/healthz", "a colon with no port"),
        ("http://fd00::1/healthz", "goes in brackets"),
        ("http://[fd00::1/healthz", "Invalid IPv6 URL"),
        ("http://[node]:10256/healthz", "not appear to be an IPv4 or IPv6 address"),
        ("ftp://127.0.0.1/healthz", "http or https"),
        ("http:///healthz", "names no host"),
        ("http://127.0.0.1:10256/health z", "whitespace"),
    ],
)
def test_a_url_the_http_client_would_refuse_is_a_config_error(url: str, problem: str) -> None:
    """Else the gate would wait forever on ``http.client.InvalidURL``."""
    with pytest.raises(ConfigError, match=r"node\.dataplaneGate\.url") as raised:
        validate({**config_dict(), "node": {"dataplaneGate": {"url": url}}})
    assert problem in str(raised.value)


@pytest.mark.parametrize(
    "url", ["http://[fd00::1]:10256/healthz", "https://localhost/healthz", "http://10.0.0.1/"]
)
def test_good_urls_pass(url: str) -> None:
    gated = validate({**config_dict(), "node": {"dataplaneGate": {"url": url}}})
    assert gated.node.dataplane_gate.url == url


def gated_agent(tmp_path: Path, **gate: object) -> tuple[Reconciler, io.StringIO]:
    cfg = validate(
        {
            **config_dict(healthHold={"riseSeconds": 5}),
            "node": {"dataplaneGate": {"url": URL, **gate}},
        }
    )
    out = io.StringIO()
    now = [100.0]
    agent = Reconciler(cfg, sessions(cfg), out, Journal(tmp_path / "j"), clock=lambda: now[0])
    agent.handle_batch([PeerEvent("192.0.2.0", PeerState.UP)])
    return agent, out


def test_nothing_is_announced_before_the_gate_first_passes(tmp_path: Path) -> None:
    agent, out = gated_agent(tmp_path)
    agent.handle_batch(cluster(agent, "10.96.0.1"))
    assert out.getvalue() == ""
    ready, reason = agent.ready()
    assert not ready and "has not passed yet" in reason
    assert agent.guards.gate is not None
    agent.guards.gate.observe(OK, 100.0)
    agent.handle_batch([GateChanged(True)])
    assert out.getvalue().splitlines() == [
        "neighbor 192.0.2.0 announce attributes next-hop self nlri 10.96.0.1/32",
        "neighbor 192.0.2.0 announce eor ipv4 unicast",
    ]
    assert agent.ready() == (True, "ok")


def test_a_closed_gate_withdraws_everything_and_recovery_goes_through_the_hold(
    tmp_path: Path,
) -> None:
    agent, out = gated_agent(tmp_path)
    agent.handle_batch([GateChanged(True)])
    agent.handle_batch(cluster(agent, "10.96.0.1", "10.96.0.2"))
    out.truncate(0), out.seek(0)
    agent.handle_batch([GateChanged(False)])
    assert out.getvalue().splitlines() == [
        "neighbor 192.0.2.0 withdraw attributes next-hop self nlri 10.96.0.1/32 10.96.0.2/32"
    ]
    plan = agent.state.plan()
    assert [s.code for s in plan.skipped] == [SkipCode.DATAPLANE_GATE]
    # A change meanwhile announces nothing.
    out.truncate(0), out.seek(0)
    agent.handle_batch(cluster(agent, "10.96.0.1", "10.96.0.2", "10.96.0.3"))
    assert out.getvalue() == ""
    # Open again: the withdrawn prefixes come back after riseSeconds, the new one at once.
    agent.handle_batch([GateChanged(True)])
    assert out.getvalue().splitlines() == [
        "neighbor 192.0.2.0 announce attributes next-hop self nlri 10.96.0.3/32"
    ]
    assert agent.held() == 2


def test_the_gate_and_the_api_loss_policy_share_the_withdraw_all_switch(tmp_path: Path) -> None:
    agent, out = gated_agent(tmp_path)
    agent.handle_batch([GateChanged(True)])
    agent.handle_batch(cluster(agent, "10.96.0.1"))
    agent.handle_batch([GateChanged(False)])
    # The API-loss policy takes the switch over, then gives it back: the gate is still closed.
    lost = Skip("node1", SkipCode.API_LOST, "API server unreachable")
    with agent.state.update() as builder:
        builder.set_withdraw_all(lost)
    with agent.state.update() as builder:
        builder.set_withdraw_all(None)
    out.truncate(0), out.seek(0)
    agent.handle_batch(cluster(agent, "10.96.0.1"))
    assert out.getvalue() == ""
    assert agent.state.builder.withdraw_all_reason is not None
    assert agent.state.builder.withdraw_all_reason.code is SkipCode.DATAPLANE_GATE
    # The gate opening does not clear a reason that is not its own.
    with agent.state.update() as builder:
        builder.set_withdraw_all(lost)
    agent.handle_batch([GateChanged(True)])
    assert agent.state.builder.withdraw_all_reason == lost
    assert out.getvalue() == ""


def test_a_gate_that_starts_as_passed_closes_after_failing_long_enough() -> None:
    gate = Gate(URL, fail_after_seconds=3, passed=True)
    assert gate.view().state is GateState.OPEN and gate.view().allows
    assert gate.not_ready_reason(0.0) is None
    assert gate.observe(FAIL, 0.0) is None
    assert gate.view().state is GateState.FAILING
    assert gate.observe(FAIL, 3.0) is False


STALE = "10.96.0.9/32"  # what the killed agent had announced


def restarted_agent(tmp_path: Path) -> tuple[Reconciler, io.StringIO, list[float]]:
    """An agent ExaBGP respawned: its journal lists a route the previous one announced."""
    (tmp_path / "j").write_text(f"+{STALE}\n")
    cfg = validate(
        {**config_dict(), "node": {"dataplaneGate": {"url": URL, "failAfterSeconds": 3}}}
    )
    out = io.StringIO()
    now = [100.0]
    agent = Reconciler(cfg, sessions(cfg), out, Journal(tmp_path / "j"), clock=lambda: now[0])
    agent.handle_batch([PeerEvent("192.0.2.0", PeerState.UP)])
    return agent, out, now


def probe(agent: Reconciler, now: list[float], result: Probe, at: float) -> None:
    """What the poller does: observe, and queue ``GateChanged`` when ``allows`` changed."""
    assert agent.guards.gate is not None
    now[0] = at
    changed = agent.guards.gate.observe(result, at)
    if changed is not None:
        agent.handle_batch([GateChanged(changed)])


def test_a_restarted_agent_sends_its_first_plan_and_a_failing_proxy_withdraws_it(
    tmp_path: Path,
) -> None:
    """The previous agent's routes are out there: the gate starts as passed, so the first plan
    withdraws what is no longer wanted, and failing for failAfterSeconds withdraws the rest
    (before, the gate stayed waiting and ExaBGP kept the old routes for ever)."""
    agent, out, now = restarted_agent(tmp_path)
    agent.handle_batch(cluster(agent, "10.96.0.1"))
    assert out.getvalue().splitlines() == [
        "neighbor 192.0.2.0 announce attributes next-hop self nlri 10.96.0.1/32",
        f"neighbor 192.0.2.0 withdraw attributes next-hop self nlri {STALE}",
        "neighbor 192.0.2.0 announce eor ipv4 unicast",
    ]
    assert agent.ready() == (True, "ok")
    out.truncate(0), out.seek(0)
    probe(agent, now, FAIL, 101.0)
    probe(agent, now, FAIL, 103.9)
    assert out.getvalue() == ""
    probe(agent, now, FAIL, 104.0)
    assert out.getvalue().splitlines() == [
        "neighbor 192.0.2.0 withdraw attributes next-hop self nlri 10.96.0.1/32"
    ]
    assert "data-plane gate closed" in agent.ready()[1]


def test_a_gate_closed_before_the_first_list_withdraws_what_the_previous_agent_left(
    tmp_path: Path,
) -> None:
    """The first list has not come (the API server is slow): the closed gate's withdraw-all is
    still the first plan, so the stale route goes, with the End-of-RIB."""
    agent, out, now = restarted_agent(tmp_path)
    for at in (101.0, 102.0, 104.0):
        probe(agent, now, FAIL, at)
    assert out.getvalue().splitlines() == [
        f"neighbor 192.0.2.0 withdraw attributes next-hop self nlri {STALE}",
        "neighbor 192.0.2.0 announce eor ipv4 unicast",
    ]
    # The proxy recovers and the list arrives: the plan goes out.
    out.truncate(0), out.seek(0)
    probe(agent, now, OK, 105.0)
    agent.handle_batch(cluster(agent, "10.96.0.1"))
    assert out.getvalue().splitlines() == [
        "neighbor 192.0.2.0 announce attributes next-hop self nlri 10.96.0.1/32"
    ]
