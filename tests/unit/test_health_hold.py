"""The flap hold: withdrawals at once, a flapping prefix back only once stable, and the bound
of one announcement per ``riseSeconds`` per prefix whatever the flapping."""

from __future__ import annotations

import io
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from cosmolet.agent.journal import Journal
from cosmolet.agent.reconciler import Reconciler
from cosmolet.config.schema import validate
from cosmolet.engine.hold import RiseHold
from cosmolet.engine.model import Attributes, Family, Route
from cosmolet.exabgp.config import sessions
from tests.factories import config_dict
from tests.unit.test_agent import cluster

PREFIX = "10.96.0.1/32"
ROUTE = Route(PREFIX, Family.IPV4, ("default/web",), Attributes())


class Peer:
    """What the fabric sees: the prefix set, after each delta the hold lets through."""

    def __init__(self) -> None:
        self.advertised: set[str] = set()
        self.announcements: list[float] = []

    def apply(self, delta: dict[str, Route | None], now: float) -> None:
        for prefix, route in delta.items():
            if route is None:
                self.advertised.discard(prefix)
            elif prefix not in self.advertised:
                self.advertised.add(prefix)
                self.announcements.append(now)


def test_a_new_prefix_and_a_withdrawal_pass_at_once() -> None:
    hold, peer = RiseHold(1.0), Peer()
    peer.apply(hold.filter({PREFIX: ROUTE}, peer.advertised, 0.0), 0.0)
    assert peer.advertised == {PREFIX}
    peer.apply(hold.filter({PREFIX: None}, peer.advertised, 0.1), 0.1)
    assert peer.advertised == set()


def test_a_quick_return_is_held_until_stable() -> None:
    hold, peer = RiseHold(1.0), Peer()
    peer.apply(hold.filter({PREFIX: ROUTE}, peer.advertised, 0.0), 0.0)
    peer.apply(hold.filter({PREFIX: None}, peer.advertised, 5.0), 5.0)
    peer.apply(hold.filter({PREFIX: ROUTE}, peer.advertised, 5.2), 5.2)
    assert peer.advertised == set() and hold.next_release() == 6.2
    assert hold.release(6.1) == {}
    peer.apply(hold.release(6.2), 6.2)
    assert peer.advertised == {PREFIX}


def test_a_long_absence_returns_at_once() -> None:
    hold, peer = RiseHold(1.0), Peer()
    peer.apply(hold.filter({PREFIX: ROUTE}, peer.advertised, 0.0), 0.0)
    peer.apply(hold.filter({PREFIX: None}, peer.advertised, 1.0), 1.0)
    peer.apply(hold.release(3.0), 3.0)
    peer.apply(hold.filter({PREFIX: ROUTE}, peer.advertised, 3.0), 3.0)
    assert peer.advertised == {PREFIX}


def test_zero_disables_the_hold() -> None:
    hold, peer = RiseHold(0.0), Peer()
    for step in range(10):
        peer.apply(
            hold.filter({PREFIX: ROUTE if step % 2 == 0 else None}, peer.advertised, step * 0.01), 0
        )
    assert len(peer.announcements) == 5


@settings(max_examples=300)
@given(
    gaps=st.lists(st.floats(min_value=0.0, max_value=3.0), min_size=1, max_size=60),
    rise=st.sampled_from([0.5, 1.0, 2.0]),
    polls=st.lists(st.floats(min_value=0.0, max_value=0.5), min_size=60, max_size=60),
)
def test_bounded_and_exact(gaps: list[float], rise: float, polls: list[float]) -> None:
    """Any flapping: announcements at least ``rise`` apart; once stable, the peer is exact."""
    hold, peer = RiseHold(rise), Peer()
    now, wanted = 0.0, False
    for gap, poll in zip(gaps, polls, strict=False):
        # The reconciler releases what is due whenever it wakes, between changes.
        if poll < gap:
            peer.apply(hold.release(now + poll), now + poll)
        now += gap
        peer.apply(hold.release(now), now)
        wanted = not wanted
        peer.apply(hold.filter({PREFIX: ROUTE if wanted else None}, peer.advertised, now), now)
        if not wanted:
            assert PREFIX not in peer.advertised  # a withdrawal is never held
    for earlier, later in zip(peer.announcements, peer.announcements[1:], strict=False):
        assert later - earlier >= rise - 1e-9
    peer.apply(hold.release(now + rise + 1e-6), now + rise + 1e-6)
    assert (PREFIX in peer.advertised) == wanted
    assert not hold.held


def test_the_agent_holds_and_releases(tmp_path: Path) -> None:
    clock = [100.0]
    config = validate(config_dict())
    out = io.StringIO()
    agent = Reconciler(
        config, sessions(config), out, Journal(tmp_path / "j"), clock=lambda: clock[0]
    )
    agent.handle_batch(cluster(agent, "10.96.0.1"))
    agent.handle_batch(cluster(agent))  # unhealthy: withdrawn at once
    clock[0] += 0.1
    agent.handle_batch(cluster(agent, "10.96.0.1"))  # back 100 ms later: held
    lines = out.getvalue().splitlines()
    assert [line.split()[2] for line in lines] == ["announce", "withdraw"]
    assert agent.hold.held and 0 < agent._wait() <= 1.0
    clock[0] += 1.0
    agent.release_held()
    assert (
        out.getvalue()
        .splitlines()[-1]
        .endswith("announce attributes next-hop self nlri 10.96.0.1/32")
    )
