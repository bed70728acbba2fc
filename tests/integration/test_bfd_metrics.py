"""``cosmolet_bfd_session_up`` against a real bfdd: the reader the metrics use, pointed at the
vtysh socket directory of a bfdd whose peer (another bfdd, over a veth) comes and goes."""

from __future__ import annotations

from cosmolet.agent.metrics import BfdCollector
from cosmolet.hybrid.bfd_state import BfdReader, BfdSession
from lab.netns import Lab, wait_for


def test_bfd_session_state_follows_the_peer(lab: Lab) -> None:
    node, switch = lab.namespace("node"), lab.namespace("switch")
    lab.link(node, "eth1", switch, "eth1")
    node_ll = wait_for(lambda: node.link_local("eth1"), 10, what="node link-local")
    switch_ll = wait_for(lambda: switch.link_local("eth1"), 10, what="switch link-local")

    def bfd(local: str, peer: str) -> str:
        return f"bfd\n peer {peer} interface eth1 local-address {local}\n exit\n"

    frr = lab.frr(node, bfd(node_ll, switch_ll), daemons=("zebra", "bfdd"))
    peer_frr = lab.frr(switch, bfd(switch_ll, node_ll), daemons=("zebra", "bfdd"))
    read = BfdReader(frr.directory)
    up = [BfdSession(switch_ll, "eth1", up=True)]
    wait_for(lambda: read() == up, 15, what="the BFD session up")
    family = {m.name: m for m in BfdCollector(read).collect()}["cosmolet_bfd_session_up"]
    assert [(s.labels, s.value) for s in family.samples] == [
        ({"peer": switch_ll, "interface": "eth1"}, 1.0)
    ]
    peer_frr.stop("bfdd")
    wait_for(lambda: read() == [BfdSession(switch_ll, "eth1", up=False)], 15, what="down")
