"""ExaBGP's answers matched to the commands sent (``cosmolet.agent.answers``), the stdin thread,
and what the reconciler does with a refused command."""

from __future__ import annotations

import io
import ipaddress
import queue
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from cosmolet.agent.answers import Answers, AnswersCollector, read_stdin
from cosmolet.agent.inputs import Event, Refused, Stop
from cosmolet.engine.model import Attributes, Family
from cosmolet.exabgp.api import (
    RELOAD,
    Answer,
    PeerEvent,
    PeerState,
    Session,
    announce,
    end_of_rib,
    withdraw,
)
from tests.unit.test_agent import cluster, make

V4 = Session(ipaddress.ip_address("10.0.1.0"), 65001, 65101, (Family.IPV4,))
L2 = Session(
    ipaddress.ip_address("fe80::1"),
    65001,
    None,
    (Family.IPV4,),
    next_hop="fe80::b",
    interface="eth2",
    local_address=ipaddress.ip_address("fe80::b"),
)
A1, A2 = (announce(V4, Attributes(), [f"10.0.0.{n}/32"])[0] for n in (1, 2))
W3 = withdraw(V4, ["10.0.0.3/32"])[0]


def test_answers_are_matched_in_order() -> None:
    answers = Answers()
    answers.expect([A1, W3, A2])
    assert answers.answer(Answer.DONE) is None
    assert answers.answer(Answer.ERROR) is W3
    assert answers.answer(Answer.DONE) is None
    assert answers.pending == 0
    assert answers.answer(Answer.DONE) is None  # nothing pending: ignored
    assert answers.refused == {"withdraw": 1}


def test_an_end_of_rib_to_a_session_not_established_is_refused_ahead_of_earlier_lines() -> None:
    """ExaBGP refuses it when it reads it, before the route lines it read earlier are done."""
    answers = Answers()
    eor = end_of_rib(L2, Family.IPV4)
    answers.expect([A1, eor])
    answers.observe(PeerEvent("fe80::1", PeerState.UP, local="fe80::b"))
    answers.observe(PeerEvent("fe80::1", PeerState.DOWN, local="fe80::b"))
    assert answers.answer(Answer.ERROR) is eor
    assert answers.answer(Answer.ERROR) is A1
    # Up again: an error is the oldest line's again.
    answers.expect([eor, A2])
    answers.observe(PeerEvent("fe80::1", PeerState.UP, local="fe80::b"))
    assert answers.answer(Answer.ERROR) is eor


def test_a_reload_is_answered_at_once_after_its_notice() -> None:
    answers = Answers()
    answers.expect([A1, RELOAD])
    assert answers.answer(Answer.RELOADING) is None
    assert answers.answer(Answer.DONE) is None  # the reload's
    assert answers.answer(Answer.ERROR) is A1
    assert answers.refused == {"announce": 1}


def test_an_error_with_nothing_pending_is_counted_as_unmatched() -> None:
    answers = Answers()
    assert answers.answer(Answer.ERROR) is None
    registry = CollectorRegistry()
    registry.register(AnswersCollector(answers))
    text = generate_latest(registry).decode()
    assert 'cosmolet_exabgp_command_errors_total{kind="unmatched"} 1.0' in text
    assert 'cosmolet_exabgp_command_errors_total{kind="announce"} 0.0' in text


def test_the_stdin_thread_queues_events_and_refusals_then_stops_at_eof() -> None:
    answers = Answers()
    answers.expect([A1, A2])
    state = (
        '{ "type": "state", "neighbor": { "address": { "local": "10.0.1.1", "peer": "10.0.1.0" },'
        ' "asn": { "local": 65001, "peer": 65101 }, "state": "up" } }'
    )
    events: queue.Queue[Event] = queue.Queue()
    read_stdin(io.StringIO(f"{state}\ndone\nerror\ngarbage\n"), events, answers)
    got = [events.get_nowait() for _ in range(events.qsize())]
    assert got == [
        PeerEvent("10.0.1.0", PeerState.UP, local="10.0.1.1"),
        Refused(A2),
        Stop("ExaBGP closed our stdin"),
    ]


def test_the_reconciler_never_claims_refused_routes_and_retries_them(tmp_path: Path) -> None:
    agent, out = make(tmp_path)
    agent.answers = Answers()
    agent.handle_batch(cluster(agent, "10.96.0.1", "10.96.0.2"))
    [sent] = agent.answers._pending
    agent.handle_batch([Refused(sent)])
    [peer] = agent.peers()
    assert dict(peer.advertised) == {}
    assert agent.journal.live == {"10.96.0.1/32", "10.96.0.2/32"}
    # Nothing changed in the cluster; the next plan (a periodic re-read) retries them.
    out.truncate(0)
    out.seek(0)
    agent.handle_batch(cluster(agent, "10.96.0.1", "10.96.0.2"))
    assert out.getvalue() == (
        "neighbor 192.0.2.0 announce attributes next-hop self nlri 10.96.0.1/32 10.96.0.2/32\n"
    )
    assert set(agent.peers()[0].advertised) == {"10.96.0.1/32", "10.96.0.2/32"}


def test_a_refused_withdraw_stays_in_the_journal_and_is_withdrawn_again(tmp_path: Path) -> None:
    agent, out = make(tmp_path)
    agent.answers = Answers()
    agent.handle_batch(cluster(agent, "10.96.0.1", "10.96.0.2"))
    agent.answers.forget()
    agent.handle_batch(cluster(agent, "10.96.0.2"))
    [withdrawn] = agent.answers._pending
    assert withdrawn.prefixes == ("10.96.0.1/32",)
    assert agent.journal.live == {"10.96.0.2/32"}
    agent.handle_batch([Refused(withdrawn)])
    assert agent.journal.live == {"10.96.0.1/32", "10.96.0.2/32"}
    out.truncate(0)
    out.seek(0)
    agent.handle_batch(cluster(agent, "10.96.0.2"))
    assert out.getvalue() == (
        "neighbor 192.0.2.0 withdraw attributes next-hop self nlri 10.96.0.1/32\n"
    )
