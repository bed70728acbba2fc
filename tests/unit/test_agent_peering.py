"""The reconciler keeping ExaBGP's neighbors equal to this node's resolved peers: a relabel, an
address change or an annotation re-resolves them; only a different configuration is written and
reloaded; the reload is checked; a session that goes is withdrawn from first; an agent that
restarts knows ExaBGP's sessions before its first list."""

from __future__ import annotations

import io
import ipaddress
import json
import re
from pathlib import Path

import pytest

from cosmolet.agent.answers import Answers
from cosmolet.agent.http_api import status
from cosmolet.agent.inputs import AddressesChanged, Event
from cosmolet.agent.journal import Journal
from cosmolet.agent.reconciler import Reconciler
from cosmolet.config.schema import validate
from cosmolet.engine.objects import EndpointSlice, Node, Service, decode_all
from cosmolet.engine.peers import NodeAddresses
from cosmolet.exabgp.api import PeerEvent, PeerState
from cosmolet.exabgp.shown import NeighborsShown, ShownNeighbor
from tests.factories import family_slices, service
from tests.factories import node as node_dict

WEB = [service("web", cluster_ips=("10.96.0.1",)), *family_slices("web", ("10.96.0.1",))]
ADDRESSES = NodeAddresses(
    {
        "eth1": (ipaddress.ip_interface("10.1.1.1/31"),),
        "eth2": (ipaddress.ip_interface("10.9.1.1/31"),),
    }
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(tmp_path: Path) -> tuple[Reconciler, io.StringIO, Clock]:
    config = validate(
        {
            "nodeName": "node1",
            "runtimeDir": str(tmp_path),
            "bgp": {
                "asn": 65001,
                "routerId": "192.0.2.1",
                "peers": [
                    {"interface": "eth1", "asn": 65101},
                    {
                        "interface": "eth2",
                        "asn": 65000,
                        "nodeSelector": {"matchLabels": {"collector": "yes"}},
                    },
                ],
            },
        }
    )
    out, clock = io.StringIO(), Clock()
    agent = Reconciler(config, [], out, Journal(tmp_path / "journal"), clock=clock)
    agent.answers = Answers()  # acks on, as cosmolet runs ExaBGP
    return agent, out, clock


def listed(agent: Reconciler, labels: dict[str, str], **annotations: str) -> list[Event]:
    """The source lists (or updates) the cluster: web, and this Node."""
    records, _ = decode_all([*WEB, node_dict("node1", labels, annotations=annotations or None)])
    with agent.state.update() as builder:
        builder.replace_services(r for r in records if isinstance(r, Service))
        builder.replace_slices(r for r in records if isinstance(r, EndpointSlice))
        builder.set_node(next(r for r in records if isinstance(r, Node)))
    agent.state.mark_synced()
    events: list[Event] = []
    while not agent.events.empty():
        events.append(agent.events.get())
    return events


def lines(out: io.StringIO) -> list[str]:
    text = out.getvalue().splitlines()
    out.truncate(0)
    out.seek(0)
    return text


def conf(tmp_path: Path) -> str:
    return (tmp_path / "exabgp.conf").read_text()


def blocks(text: str) -> dict[str, str]:
    return {m[2]: m[1] for m in re.finditer(r"^(neighbor (\S+) \{\n.*?^\})$", text, re.M | re.S)}


def up(agent: Reconciler, peer: str, local: str) -> None:
    agent.handle_batch([PeerEvent(peer, PeerState.UP, local=local)])


def shown(*peers: tuple[str, str, int]) -> NeighborsShown:
    return NeighborsShown(
        tuple(ShownNeighbor(p, local, 65001, asn, "192.0.2.1", 9) for p, local, asn in peers)
    )


def test_nothing_is_rendered_before_the_node_and_its_addresses_are_known(tmp_path: Path) -> None:
    agent, out, _ = make(tmp_path)
    agent.handle_batch([AddressesChanged(ADDRESSES)])
    assert not (tmp_path / "exabgp.conf").exists() and "reload" not in lines(out)
    agent.handle_batch(listed(agent, {}))
    assert lines(out) == ["reload"]
    assert list(blocks(conf(tmp_path))) == ["10.1.1.0"]
    assert list(agent.speaker.peers) == ["10.1.1.0"]
    view = status(agent)
    assert view["peerEntriesUnused"] == [
        {
            "entry": "bgp.peers[1]",
            "reason": "nodeSelector collector=yes does not match this node's labels",
        }
    ]
    assert (view["asn"], view["routerId"], view["routerIdFrom"]) == (
        65001,
        "192.0.2.1",
        "bgp.routerId",
    )


def test_a_relabel_adds_a_peer_leaving_the_other_session_as_it_was(tmp_path: Path) -> None:
    agent, out, _ = make(tmp_path)
    agent.handle_batch([AddressesChanged(ADDRESSES)])
    agent.handle_batch(listed(agent, {}))
    up(agent, "10.1.1.0", "10.1.1.1")
    before, rib = conf(tmp_path), agent.speaker.peers["10.1.1.0"]
    lines(out)

    agent.handle_batch(listed(agent, {"collector": "yes"}))
    assert lines(out) == ["reload"]
    after = blocks(conf(tmp_path))
    assert after["10.1.1.0"] == blocks(before)["10.1.1.0"]  # byte-identical: not reset
    assert 'description "bgp.peers[1] (interface eth2)";' in after["10.9.1.0"]
    assert agent.speaker.peers["10.1.1.0"] is rib and rib.state.value == "up"
    assert agent.speaker.peers["10.9.1.0"].state.value == "down"  # gets everything when up
    peers = {p["address"]: p["origin"] for p in status(agent)["peers"]}
    assert peers == {
        "10.1.1.0": "bgp.peers[0] (interface eth1)",
        "10.9.1.0": "bgp.peers[1] (interface eth2)",
    }

    # A label the selectors do not read, or one that changes nothing rendered: no reload.
    agent.handle_batch(listed(agent, {"collector": "yes", "zone": "a"}))
    assert "reload" not in lines(out)


def test_a_peer_that_goes_is_withdrawn_from_before_the_reload(tmp_path: Path) -> None:
    agent, out, _ = make(tmp_path)
    agent.handle_batch([AddressesChanged(ADDRESSES)])
    agent.handle_batch(listed(agent, {"collector": "yes"}))
    up(agent, "10.9.1.0", "10.9.1.1")
    assert any(line.startswith("neighbor 10.9.1.0 announce") for line in lines(out))

    agent.handle_batch(listed(agent, {}))
    assert lines(out) == [
        "neighbor 10.9.1.0 withdraw attributes next-hop self nlri 10.96.0.1/32",
        "reload",
    ]
    assert list(agent.speaker.peers) == ["10.1.1.0"]


def test_an_address_change_re_derives_the_peer(tmp_path: Path) -> None:
    agent, out, _ = make(tmp_path)
    agent.handle_batch([AddressesChanged(ADDRESSES)])
    agent.handle_batch(listed(agent, {}))
    lines(out)
    moved = NodeAddresses({"eth1": (ipaddress.ip_interface("10.1.7.2/30"),)})
    agent.handle_batch([AddressesChanged(moved)])
    assert lines(out) == ["reload"]
    assert list(blocks(conf(tmp_path))) == ["10.1.7.1"]
    agent.handle_batch([AddressesChanged(moved)])  # the same view again: nothing
    assert lines(out) == []


def test_a_reload_is_checked_and_sent_again_until_exabgp_runs_the_new_neighbors(
    tmp_path: Path,
) -> None:
    agent, out, clock = make(tmp_path)
    agent.handle_batch([AddressesChanged(ADDRESSES)])
    agent.handle_batch(listed(agent, {}))
    assert lines(out) == ["reload"]
    agent.verify_reload()
    assert lines(out) == []  # not yet: ExaBGP gets a moment
    clock.now += 1.0
    agent.verify_reload()
    assert lines(out) == ["show neighbor configuration"]
    agent.handle_batch([shown()])  # dropped (route updates were queued): still no neighbor
    assert lines(out) == ["reload"]
    clock.now += 1.5
    agent.verify_reload()
    assert lines(out) == []  # the pause doubles
    clock.now += 0.5
    agent.verify_reload()
    assert lines(out) == ["show neighbor configuration"]
    agent.handle_batch([shown(("10.1.1.0", "10.1.1.1", 65101))])
    clock.now += 60
    agent.verify_reload()
    assert lines(out) == []  # applied: nothing more


def test_the_nodes_own_asn_resets_its_sessions_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    agent, _, _ = make(tmp_path)
    agent.handle_batch([AddressesChanged(ADDRESSES)])
    agent.handle_batch(listed(agent, {}))
    agent.handle_batch(listed(agent, {}, **{"cosmolet.io/asn": "65002"}))
    assert "local-as 65002;" in conf(tmp_path)
    assert agent.speaker.peers["10.1.1.0"].session.local_as == 65002
    logged = "".join(capsys.readouterr())
    assert "this node's AS or router id changed" in logged
    assert "65001 -> 65002 (from Node annotation cosmolet.io/asn)" in logged


def test_a_malformed_annotation_is_reported_and_the_peers_keep_working(tmp_path: Path) -> None:
    agent, _, _ = make(tmp_path)
    agent.handle_batch([AddressesChanged(ADDRESSES)])
    agent.handle_batch(listed(agent, {}, **{"cosmolet.io/asn": "abc"}))
    assert "local-as 65001;" in conf(tmp_path) and list(agent.speaker.peers) == ["10.1.1.0"]
    assert status(agent)["peerProblems"] == [
        {
            "entry": "Node annotation cosmolet.io/asn",
            "problem": "'abc' is not an AS number 1-4294967295: using bgp.asn 65001",
        }
    ]


def test_a_restarted_agent_knows_exabgps_sessions_before_its_first_list(tmp_path: Path) -> None:
    first, out, _ = make(tmp_path)
    first.handle_batch([AddressesChanged(ADDRESSES)])
    first.handle_batch(listed(first, {"collector": "yes"}))
    record = json.loads((tmp_path / "exabgp-sessions.json").read_text())
    assert [s["peer"] for s in record["sessions"]] == ["10.1.1.0", "10.9.1.0"]

    second, out, _ = make(tmp_path)
    assert list(second.speaker.peers) == ["10.1.1.0", "10.9.1.0"]
    up(second, "10.9.1.0", "10.9.1.1")  # before any list: known, and remembered as up
    assert second.speaker.peers["10.9.1.0"].state.value == "up"
    second.handle_batch([AddressesChanged(ADDRESSES)])
    second.handle_batch(listed(second, {"collector": "yes"}))
    sent = lines(out)
    assert "reload" not in sent  # the same configuration: ExaBGP is left alone
    assert "neighbor 10.9.1.0 announce attributes next-hop self nlri 10.96.0.1/32" in sent


def test_a_configuration_that_cannot_be_rendered_keeps_the_one_in_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    agent, out, _ = make(tmp_path)
    agent.config = agent.neighbors.config = agent.config.model_copy(
        update={
            "bgp": agent.config.bgp.model_copy(update={"router_id": None}),
            "node_name": "",  # nothing to derive a router id from either
        }
    )
    agent.handle_batch(
        [AddressesChanged(NodeAddresses({"eth1": (ipaddress.ip_interface("fd00::1/127"),)}))]
    )
    agent.handle_batch(listed(agent, {}))
    assert not (tmp_path / "exabgp.conf").exists() and "reload" not in lines(out)
    assert "cannot render ExaBGP's configuration" in "".join(capsys.readouterr())


def test_without_acks_a_reload_cannot_be_checked_and_is_not(tmp_path: Path) -> None:
    """``show neighbor configuration`` ends with ExaBGP's ``done``: with acks turned off (an
    operator's ``exabgp.api.ack=false``) nothing would end it."""
    agent, out, clock = make(tmp_path)
    agent.answers = None
    agent.handle_batch([AddressesChanged(ADDRESSES)])
    agent.handle_batch(listed(agent, {}))
    assert lines(out) == ["reload"]
    clock.now += 5
    agent.verify_reload()
    assert lines(out) == []


def test_routes_of_a_family_no_session_carries_are_a_peer_problem(tmp_path: Path) -> None:
    """An IPv6-only numbered node (a /127 peer) plans web's IPv4 ClusterIP and sends it to no
    peer: ``/status`` says so, until an IPv4 session is there."""
    agent, _, _ = make(tmp_path)
    agent.handle_batch([AddressesChanged(NodeAddresses({"eth1": (ip("fd10::1/127"),)}))])
    agent.handle_batch(listed(agent, {}))
    assert list(agent.speaker.peers) == ["fd10::"]
    assert [r.prefix for r in agent.speaker.desired.copy().values()] == ["10.96.0.1/32"]
    assert status(agent)["peerProblems"] == [
        {
            "entry": "bgp.peers",
            "problem": "IPv4 routes planned but no IPv4 session: sent to no peer",
        }
    ]
    agent.handle_batch([AddressesChanged(ADDRESSES)])
    assert list(agent.speaker.peers) == ["10.1.1.0"]
    assert status(agent)["peerProblems"] == []


def ip(text: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    return ipaddress.ip_interface(text)
