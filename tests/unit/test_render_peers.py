"""One shared config rendered for two nodes of different racks (golden files, accepted by
ExaBGP itself), and the property a live change relies on: a session that did not change renders
to the same bytes, so ExaBGP's ``reload`` leaves it alone."""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cosmolet.cli import main
from cosmolet.config.schema import Config, validate
from cosmolet.engine.model import Family
from cosmolet.engine.objects import Node, decode_object
from cosmolet.engine.peers import Gateway, NodeAddresses, resolve_peers
from cosmolet.exabgp import config as exabgp_config
from tests.factories import node as node_dict
from tests.unit.test_cli import check_golden
from tests.unit.test_render_exabgp import AGENT

SHARED: dict[str, Any] = {
    "bgp": {
        "asn": 65001,
        "peers": [
            {"interface": "eth1", "asn": "auto"},
            {"address": "gateway", "asn": 65000, "holdTime": 30},
            {
                "address": "10.255.0.1",
                "asn": 65000,
                "multihop": 2,
                "port": 1179,
                "nodeSelector": {"matchLabels": {"rack": "r1"}},
            },
            {
                "address": "10.255.0.2",
                "asn": 65000,
                "multihop": 2,
                "nodeSelector": {
                    "matchExpressions": [{"key": "rack", "operator": "In", "values": ["r2"]}]
                },
            },
        ],
    }
}
NODES = {
    "node1": (
        {"rack": "r1"},
        {},
        NodeAddresses(
            {
                "eth1": tuple(map(ipaddress.ip_interface, ["10.1.1.1/31", "fd10:1:1::1/127"])),
                "eth0": tuple(map(ipaddress.ip_interface, ["192.0.2.11/24", "fe80::11/64"])),
            },
            {
                Family.IPV4: Gateway(ipaddress.ip_address("192.0.2.1"), "eth0"),
                Family.IPV6: Gateway(ipaddress.ip_address("fe80::1"), "eth0"),
            },
        ),
    ),
    "node2": (
        {"rack": "r2"},
        {"cosmolet.io/asn": "65002"},
        NodeAddresses(
            {"eth1": tuple(map(ipaddress.ip_interface, ["10.2.2.1/30", "fd10:2:2::/127"]))},
            {},
        ),
    ),
}

#: The kernel's source addresses toward the multihop peers (no localAddress), per rack.
SOURCES = {"10.255.0.1": "10.1.1.1", "10.255.0.2": "10.2.2.1"}


def shared(name: str) -> Config:
    return validate({"nodeName": name, **SHARED})


def node_object(name: str, labels: dict[str, str], annotations: dict[str, str]) -> Node:
    found = decode_object(node_dict(name, labels, annotations=annotations or None))
    assert isinstance(found, Node)
    return found


def rendered(name: str, labels: dict[str, str] | None = None) -> str:
    default_labels, annotations, addresses = NODES[name]
    config = shared(name)
    node = node_object(name, default_labels if labels is None else labels, annotations)
    resolved = resolve_peers(config, node, addresses)
    return exabgp_config.render(
        config, AGENT, environ={}, peers=resolved, source_of=lambda peer: SOURCES.get(str(peer))
    )


@pytest.mark.parametrize("name", sorted(NODES))
def test_one_config_rendered_per_node(name: str) -> None:
    check_golden(f"exabgp-shared-{name}.conf", rendered(name))


@pytest.mark.parametrize("name", sorted(NODES))
def test_exabgp_accepts_each_nodes_rendering(name: str, tmp_path: Path) -> None:
    conf = tmp_path / "exabgp.conf"
    conf.write_text(rendered(name))
    result = subprocess.run(
        [sys.executable, "-m", "exabgp", "validate", str(conf)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def neighbors(text: str) -> dict[str, str]:
    """Each ``neighbor`` block, by its first line."""
    return {m[2]: m[1] for m in re.finditer(r"^(neighbor (\S+) \{\n.*?^\})$", text, re.M | re.S)}


def test_a_relabel_adds_a_session_and_leaves_the_others_byte_identical() -> None:
    before = neighbors(rendered("node2", {"rack": "r3"}))
    after = neighbors(rendered("node2"))
    assert set(after) - set(before) == {"10.255.0.2"}
    assert all(after[peer] == block for peer, block in before.items())


def test_sessions_carry_their_origin_and_the_nodes_asn() -> None:
    _, annotations, addresses = NODES["node2"]
    config = shared("node2")
    resolved = resolve_peers(config, node_object("node2", {"rack": "r2"}, annotations), addresses)
    found = [
        (str(s.peer), s.local_as, s.peer_as, s.origin, s.name)
        for s in exabgp_config.sessions(config, resolved)
    ]
    assert found == [
        ("10.2.2.2", 65002, None, "bgp.peers[0] (interface eth1)", "10.2.2.2"),
        ("fd10:2:2::1", 65002, None, "bgp.peers[0] (interface eth1)", "fd10:2:2::1"),
        ("10.255.0.2", 65002, 65000, "bgp.peers[3]", "10.255.0.2"),
    ]


def test_a_link_local_gateway_is_reached_through_its_interface() -> None:
    _, _, addresses = NODES["node1"]
    config = shared("node1")
    resolved = resolve_peers(config, node_object("node1", {}, {}), addresses)
    session = next(s for s in exabgp_config.sessions(config, resolved) if s.peer.is_link_local)
    assert (session.name, session.selector, session.next_hop) == (
        "fe80::1%eth0",
        "fe80::1 local-ip fe80::11",
        "fe80::11",
    )


def test_render_exabgp_for_a_node_from_an_objects_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``cosmolet render exabgp --node N --objects FILE``: the Node's labels and annotations
    decide (this machine's interfaces have no eth1 /31: that entry is a problem on stderr)."""
    import json

    import yaml

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({**SHARED, "bgp": {**SHARED["bgp"], "routerId": "1.2.3.4"}}))
    objects = tmp_path / "objects.json"
    objects.write_text(
        json.dumps(
            {
                "kind": "List",
                "items": [
                    node_dict("node2", {"rack": "r2"}, annotations={"cosmolet.io/asn": "65002"})
                ],
            }
        )
    )
    args = [
        "render",
        "exabgp",
        "--config",
        str(config),
        "--node",
        "node2",
        "--objects",
        str(objects),
    ]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "local-as 65002;" in captured.out
    assert "neighbor 10.255.0.2 {" in captured.out and "10.255.0.1" not in captured.out
    assert "bgp.peers[0].interface" in captured.err


READ_BY_EXABGP = """
import json, sys
from exabgp.environment import getenv
from exabgp.logger import log
from exabgp.configuration.configuration import Configuration
log.init(getenv())
config = Configuration([sys.argv[1]])
assert config.reload(), config.error
print(json.dumps({
    str(n["peer-address"]): [n["hold-time"], n["connect"], n["peer-as"], n["local-as"]]
    for n in config.neighbors.values()
}))
"""


def test_exabgp_reads_each_neighbors_own_hold_time_port_and_asn(tmp_path: Path) -> None:
    """Parsed by ExaBGP itself: a neighbor's own ``hold-time`` would lose to the template's
    (``Scope.transfer`` copies the template over it), so with an override none is in the
    template and each neighbor has its own."""
    conf = tmp_path / "exabgp.conf"
    conf.write_text(rendered("node1"))
    result = subprocess.run(
        [sys.executable, "-c", READ_BY_EXABGP, str(conf)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    neighbors = json.loads(result.stdout.strip().splitlines()[-1])
    assert neighbors == {
        "10.1.1.0": [9, 0, None, 65001],
        "fd10:1:1::": [9, 0, None, 65001],
        "192.0.2.1": [30, 0, 65000, 65001],
        "fe80::1": [30, 0, 65000, 65001],
        "10.255.0.1": [9, 1179, 65000, 65001],
    }
