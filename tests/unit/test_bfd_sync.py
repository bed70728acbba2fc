"""bfdd's peers re-added after bfdd restarts: the agent notices (asking bfdd at most once every
5 s) that peers it added are gone and re-adds the whole set, logging once per loss. The real
bfdd restart is in ``tests/integration/test_hybrid.py``."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from cosmolet.config.schema import Config, validate
from cosmolet.engine.model import Link
from cosmolet.hybrid import bfd
from cosmolet.hybrid.bfd_state import BfdSession
from tests.unit.test_render_frr import HYBRID

ETH1 = Link("eth1", "fe80::1", "fe80::a")
ETH2 = Link("eth2", "fe80::2", "fe80::b")
NUMBERED = Link("", "", "2001:db8:0:0::9")  # a numbered peer configured by address alone
BFD_ON = validate({**HYBRID, "bgp": {**HYBRID["bgp"], "bfd": {"enabled": True}}})


def session(link: Link, up: bool = True) -> BfdSession:
    return BfdSession(peer=link.peer, interface=link.interface, up=up)


def test_lost_names_the_added_peers_bfdd_no_longer_has() -> None:
    applied = {ETH1, ETH2, NUMBERED}
    assert bfd.lost(applied, []) == applied  # a restarted bfdd: none
    # bfdd spells an address its own way; a session down is still a peer.
    present = [session(ETH1, up=False), BfdSession("2001:db8::9", "", up=True)]
    assert bfd.lost(applied, present) == {ETH2}
    assert bfd.lost(applied, [*present, session(ETH2)]) == set()
    # Same address on another interface is another peer.
    assert bfd.lost({ETH1}, [BfdSession("fe80::a", "eth2", up=True)]) == {ETH1}


class Bfdd:
    """bfdd behind vtysh: the peers it has, whether it answers, what it was asked."""

    def __init__(self) -> None:
        self.peers: set[Link] = set()
        self.answers = True
        self.reads = 0
        self.applied: list[tuple[set[Link], set[Link]]] = []

    def read(self) -> list[BfdSession] | None:
        self.reads += 1
        return [session(link) for link in self.peers] if self.answers else None

    def apply(self, config: Config, added: set[Link], removed: set[Link]) -> bool:
        self.applied.append((set(added), set(removed)))
        self.peers = (self.peers - removed) | added
        return True


@pytest.fixture
def bfdd(monkeypatch: pytest.MonkeyPatch) -> Bfdd:
    fake = Bfdd()
    monkeypatch.setattr(bfd, "apply", fake.apply)
    return fake


def test_a_restarted_bfdd_gets_every_peer_back_once_checked(bfdd: Bfdd) -> None:
    now = [0.0]
    sync = bfd.BfdSync(BFD_ON, bfdd.read, lambda: now[0])
    sync.update([ETH1, ETH2])
    sync.step()
    assert bfdd.applied == [({ETH1, ETH2}, set())] and bfdd.reads == 0
    bfdd.peers = set()  # bfdd restarted
    for at in (1.0, 4.9):  # vtysh at most once every 5 s: not asked yet
        now[0] = at
        sync.step()
    assert bfdd.reads == 0 and len(bfdd.applied) == 1
    bfdd.answers = False  # still starting: nothing to re-add to
    now[0] = 5.0
    sync.step()
    assert bfdd.reads == 1 and len(bfdd.applied) == 1
    bfdd.answers = True
    now[0] = 10.0
    with capture_logs() as logs:
        sync.step()
    assert [e["event"] for e in logs] == ["bfdd lost its peers (restarted?): re-adding 2"]
    assert bfdd.applied[-1] == ({ETH1, ETH2}, set()) and bfdd.peers == {ETH1, ETH2}
    now[0] = 15.0
    sync.step()  # whole again: nothing re-added
    assert bfdd.reads == 3 and len(bfdd.applied) == 2


def test_a_peer_lost_while_the_set_changes_is_added_with_the_change(bfdd: Bfdd) -> None:
    """A changed set is applied first (its added peers), the lost ones at the next check."""
    now = [0.0]
    sync = bfd.BfdSync(BFD_ON, bfdd.read, lambda: now[0])
    sync.update([ETH1])
    sync.step()
    bfdd.peers = set()
    sync.update([ETH1, ETH2])
    now[0] = 6.0
    sync.step()
    assert bfdd.applied[-1] == ({ETH2}, set()) and bfdd.reads == 0
    now[0] = 7.0
    sync.step()
    assert bfdd.applied[-1] == ({ETH1, ETH2}, set()) and bfdd.peers == {ETH1, ETH2}


def test_no_peer_to_keep_means_no_vtysh(bfdd: Bfdd) -> None:
    now = [0.0]
    sync = bfd.BfdSync(BFD_ON, bfdd.read, lambda: now[0])
    for now[0] in (5.0, 10.0, 20.0):
        sync.step()
    assert bfdd.reads == 0 and bfdd.applied == []


def test_a_refused_re_add_is_retried_and_logged_once(
    bfdd: Bfdd, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [0.0]
    sync = bfd.BfdSync(BFD_ON, bfdd.read, lambda: now[0])
    sync.update([ETH1])
    sync.step()
    bfdd.peers = set()
    monkeypatch.setattr(bfd, "apply", lambda *args: False)
    with capture_logs() as logs:
        for now[0] in (5.0, 10.0):
            sync.step()
    assert [e["event"] for e in logs] == ["bfdd lost its peers (restarted?): re-adding 1"]
    monkeypatch.setattr(bfd, "apply", bfdd.apply)
    now[0] = 15.0
    sync.step()
    assert bfdd.peers == {ETH1}
