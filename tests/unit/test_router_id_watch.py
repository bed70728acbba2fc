"""Looking for another node with our derived router id: when the Nodes are listed, what is
decoded of them, and what ``Peering`` shows and forgets."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import msgspec

from cosmolet.agent.inputs import AddressesChanged
from cosmolet.agent.peering import Peering
from cosmolet.config.schema import validate
from cosmolet.engine.peers import ResolvedPeers
from cosmolet.engine.router_ids import Collision, NodeIdentity
from cosmolet.kube.router_ids import CollisionWatch, identities
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

    def watch(self) -> CollisionWatch:
        return CollisionWatch(self.listed, "node1", lambda: self.ours, self.report, interval=600)


TWIN = NodeIdentity("node2", "10.9.9.9", ())


def test_nodes_are_listed_only_for_a_derived_id_and_again_after_the_interval() -> None:
    looks = Looks([TWIN], None)
    watch = looks.watch()
    watch.step(0)  # our id not resolved yet
    looks.ours = ("10.9.9.9", "NODE_IP")
    watch.step(1)  # the operator's own numbering: nothing listed, nothing to report
    assert looks.lists == 0 and looks.reports == []
    looks.ours = ("10.9.9.9", "derived from NODE_IP fd00::1")
    watch.step(2)
    assert looks.lists == 1 and looks.reports[-1] == ("10.9.9.9", ["node2"])
    watch.step(300)
    assert looks.lists == 1  # not before the interval
    watch.step(602)
    assert looks.lists == 2
    looks.ours = ("10.8.8.8", "derived from node name node1")
    watch.step(603)  # a new id is compared at once
    assert looks.lists == 3 and looks.reports[-1] == ("10.8.8.8", [])


def test_a_failed_list_is_retried_at_the_next_step() -> None:
    looks = Looks([TWIN], ("10.9.9.9", "derived from NODE_IP fd00::1"))
    calls = []

    def failing() -> list[NodeIdentity]:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("connection refused")
        return [TWIN]

    watch = CollisionWatch(failing, "node1", lambda: looks.ours, looks.report)
    watch.step(0)
    assert looks.reports == []
    watch.step(10)
    assert looks.reports == [("10.9.9.9", ["node2"])]


def test_identities_decodes_names_annotations_and_internal_ips_and_skips_the_malformed() -> None:
    items = [
        {
            "metadata": {"name": "a", "annotations": {"cosmolet.io/router-id": "10.0.0.1"}},
            "status": {
                "addresses": [
                    {"type": "Hostname", "address": "a"},
                    {"type": "InternalIP", "address": "fd00::1"},
                    {"type": "InternalIP", "address": "10.0.0.1"},
                ]
            },
        },
        {"metadata": {"name": "b"}},
        {"metadata": {"name": 5}},
        {"metadata": {}},
    ]
    raws = [msgspec.Raw(json.dumps(item).encode()) for item in items]
    assert identities(raws) == [
        NodeIdentity("a", "10.0.0.1", ("fd00::1", "10.0.0.1")),
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
