"""Looking for another node with our derived router id: when the Nodes are listed, what is
decoded of them, and what ``Peering`` shows and forgets."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

import msgspec
import pytest
from kubernetes.config import ConfigException

from cosmolet.agent.inputs import AddressesChanged
from cosmolet.agent.peering import Peering
from cosmolet.config.schema import validate
from cosmolet.engine.objects import Node
from cosmolet.engine.peers import ResolvedPeers
from cosmolet.engine.router_ids import Collision, NodeIdentity
from cosmolet.kube import router_ids
from cosmolet.kube.client import InFlight, Kind, ListMeta, RawList
from cosmolet.kube.router_ids import RETRY_SECONDS, TICK_SECONDS, CollisionWatch, identities
from tests.unit.test_agent_peering import ADDRESSES, listed, make


class Looks:
    """A fake cluster and peering: the Nodes listed, our id, what was reported."""

    def __init__(self, nodes: list[NodeIdentity], ours: tuple[str, str] | None) -> None:
        self.nodes = nodes
        self.ours = ours
        self.lists = 0
        self.reports: list[tuple[str, list[str]]] = []

    def listed(self) -> list[NodeIdentity]:
        self.lists += 1
        return self.nodes

    def report(self, router_id: str, found: Sequence[Collision]) -> None:
        self.reports.append((router_id, [c.node for c in found]))

    def watch(self, draw: float = 0.5) -> CollisionWatch:
        """``draw`` 0.5: no jitter (0 and 1 are its bounds)."""
        return CollisionWatch(self.listed, "node1", lambda: self.ours, self.report, lambda: draw)


TWIN = NodeIdentity("node2", "10.9.9.9", ())
DERIVED = ("10.9.9.9", "derived from NODE_IP fd00::1")
HOUR = 3600.0


def test_nodes_are_listed_only_for_a_derived_id_at_once_then_every_6_hours() -> None:
    looks = Looks([], None)
    watch = looks.watch()
    watch.step(0)  # our id not resolved yet
    looks.ours = ("10.9.9.9", "NODE_IP")
    watch.step(1)  # the operator's own numbering: nothing listed, nothing to report
    assert looks.lists == 0 and looks.reports == []
    looks.ours = DERIVED
    watch.step(2)
    assert looks.lists == 1 and looks.reports == [("10.9.9.9", [])]
    for now in (12, 600, 3 * HOUR, 6 * HOUR + 1):
        watch.step(now)
    assert looks.lists == 1  # no collision: not again before 6 hours
    watch.step(6 * HOUR + 2)
    assert looks.lists == 2
    looks.ours = ("10.8.8.8", "derived from node name node1")
    watch.step(6 * HOUR + 12)  # a new id is compared at once
    assert looks.lists == 3 and looks.reports[-1] == ("10.8.8.8", [])


def test_a_standing_collision_is_looked_at_every_minute_and_clears_when_fixed() -> None:
    looks = Looks([TWIN], DERIVED)
    watch = looks.watch()
    watch.step(0)
    assert looks.reports == [("10.9.9.9", ["node2"])]
    watch.step(59)
    assert looks.lists == 1
    watch.step(60)
    assert looks.lists == 2  # still there: looked at again a minute later
    looks.nodes = [NodeIdentity("node2", "10.7.7.7", ())]  # the operator annotated node2
    watch.step(120)
    assert looks.reports[-1] == ("10.9.9.9", [])  # cleared within a minute
    watch.step(180)
    assert looks.lists == 3  # and back to the quiet interval


@pytest.mark.parametrize(("draw", "due"), [(0.0, 0.8 * 6 * HOUR), (0.999999, 1.2 * 6 * HOUR)])
def test_the_quiet_interval_is_jittered_by_20_percent(draw: float, due: float) -> None:
    looks = Looks([], DERIVED)
    watch = looks.watch(draw)
    watch.step(0)
    watch.step(due - 1)
    assert looks.lists == 1
    watch.step(due + 1)
    assert looks.lists == 2


def test_a_failed_list_is_retried_after_a_minute_not_at_every_tick() -> None:
    looks = Looks([TWIN], DERIVED)
    calls = []

    def failing() -> list[NodeIdentity]:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("connection refused")
        return [TWIN]

    watch = CollisionWatch(failing, "node1", lambda: looks.ours, looks.report, lambda: 0.5)
    watch.step(0)
    assert looks.reports == []
    watch.step(10)
    assert len(calls) == 1
    watch.step(60)
    assert looks.reports == [("10.9.9.9", ["node2"])]


class Ticks(threading.Event):
    """``run``'s stop event with a fake clock: each wait moves the clock on by its timeout, and
    the event is set after ``ticks`` waits (no thread: ``wait`` returns at once)."""

    def __init__(self, ticks: int) -> None:
        super().__init__()
        self.ticks = ticks
        self.now = 0.0

    def wait(self, timeout: float | None = None) -> bool:
        self.now += timeout or 0.0
        self.ticks -= 1
        if self.ticks <= 0:
            self.set()
        return self.is_set()


def test_an_unexpected_error_is_logged_and_the_loop_goes_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``client.api_client`` raises ``ConfigException`` when the kubeconfig is unreadable: the
    thread logs it and looks again a minute later, it does not end."""
    looks = Looks([TWIN], DERIVED)
    calls = []

    def broken_then_fine() -> list[NodeIdentity]:
        calls.append(1)
        if len(calls) == 1:
            raise ConfigException("Invalid kube-config file. No configuration found.")
        return [TWIN]

    # no jitter: a retry drawn early (48 s) would find the collision soon enough for its
    # 60-second recheck to fall inside the ticks too
    watch = CollisionWatch(broken_then_fine, "node1", lambda: looks.ours, looks.report, lambda: 0.5)
    stop = Ticks(ticks=int(2 * RETRY_SECONDS / TICK_SECONDS))
    watch.run(stop, clock=lambda: stop.now)
    assert looks.reports == [("10.9.9.9", ["node2"])]
    assert len(calls) == 2  # once failed, once a minute (jittered) later
    logged = "".join(capsys.readouterr())
    assert "looking for another node with our router id failed" in logged
    assert "No configuration found" in logged  # with the traceback


def test_list_identities_pages_with_continue_and_no_resource_version_0(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ``resourceVersion=0`` list may come whole from the watch cache, ignoring ``limit``."""
    pages = {
        None: RawList(metadata=ListMeta(continue_="t1"), items=[_raw("a", "fd00::1")]),
        "t1": RawList(metadata=ListMeta(), items=[_raw("b", "fd00::2")]),
    }
    asked: list[tuple[dict[str, str], int, str | None]] = []

    def page(kind: Kind[Node], limit: int, token: str | None, in_flight: InFlight) -> RawList:
        asked.append((kind.params, limit, token))
        return pages[token]

    monkeypatch.setattr(router_ids, "list_page", page)
    found = router_ids.list_identities(None, InFlight())  # type: ignore[arg-type]
    assert [n.name for n in found] == ["a", "b"]
    assert asked == [({}, 500, None), ({}, 500, "t1")]


def _raw(name: str, address: str) -> msgspec.Raw:
    item = {
        "metadata": {"name": name},
        "status": {"addresses": [{"type": "InternalIP", "address": address}]},
    }
    return msgspec.Raw(json.dumps(item).encode())


def test_identities_decodes_names_annotations_and_internal_ips_and_skips_the_malformed() -> None:
    items = [
        {
            "metadata": {"name": "a", "annotations": {"cosmolet.io/router-id": "10.0.0.1"}},
            "status": {
                "addresses": [
                    {"type": "Hostname", "address": "a"},
                    {"type": "InternalIP", "address": "fd00::1"},
                    {"type": "InternalIP", "address": "10.0.0.1"},
                    {"type": "ExternalIP", "address": "2001:db8::1"},
                ]
            },
        },
        {"metadata": {"name": "b"}},
        {"metadata": {"name": 5}},
        {"metadata": {}},
    ]
    raws = [msgspec.Raw(json.dumps(item).encode()) for item in items]
    assert identities(raws) == [
        NodeIdentity("a", "10.0.0.1", ("fd00::1", "10.0.0.1"), ("2001:db8::1",)),
        NodeIdentity("b", None, ()),
    ]


def test_peering_shows_a_collision_for_the_id_in_force_and_forgets_it_when_that_changes(
    tmp_path: Path,
) -> None:
    config = validate(
        {"nodeName": "node1", "runtimeDir": str(tmp_path), "bgp": {"asn": 1, "peers": []}}
    )
    peering = Peering(config, ["cosmolet", "agent"])
    mine = ResolvedPeers((), 1, "10.9.9.9", router_id_from="derived from NODE_IP fd00::1")
    peering.resolved = mine
    clash = [Collision("node2", "10.9.9.9", "InternalIP 10.9.9.9")]
    peering.set_collisions("10.8.8.8", clash)  # compared with an id no longer ours: ignored
    assert not peering.resolved.problems
    peering.set_collisions("10.9.9.9", clash)
    (problem,) = peering.resolved.problems
    assert problem.path == "bgp.routerId"
    assert "node node2 has the same router id 10.9.9.9 (InternalIP 10.9.9.9)" in problem.message
    peering.set_collisions("10.9.9.9", clash)  # the same again: shown once
    assert len(peering.resolved.problems) == 1
    peering.set_collisions("10.9.9.9", [])
    assert not peering.resolved.problems


def test_a_collision_is_dropped_when_the_reconciler_resolves_another_router_id(
    tmp_path: Path,
) -> None:
    """The agent's own path: the Node's annotation moves our id; a collision found for the old
    one is no longer shown."""
    agent, _, _ = make(tmp_path)
    agent.config = agent.neighbors.config = agent.config.model_copy(
        update={"bgp": agent.config.bgp.model_copy(update={"router_id": None})}
    )
    agent.handle_batch([AddressesChanged(ADDRESSES)])
    agent.handle_batch(listed(agent, {}, **{"cosmolet.io/router-id": "10.9.9.9"}))
    peering = agent.neighbors
    assert peering.resolved is not None and peering.resolved.router_id == "10.9.9.9"
    peering.set_collisions("10.9.9.9", [Collision("node2", "10.9.9.9", "InternalIP 10.9.9.9")])
    assert [p.path for p in peering.resolved.problems] == ["bgp.routerId"]
    agent.handle_batch(listed(agent, {}, **{"cosmolet.io/router-id": "10.8.8.8"}))
    assert peering.resolved.router_id == "10.8.8.8"
    assert not peering.resolved.problems and not peering.collisions
