"""The README's rack-based fabric example, checked as written: the switch side is accepted by
FRR's own parser (``vtysh --dryrun``), and the cosmolet config resolves, for a node of each rack,
to the peers the README describes."""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from cosmolet.config.schema import validate
from cosmolet.engine.objects import Node, decode_object
from cosmolet.engine.peers import NodeAddresses, resolve_peers
from tests.factories import node as node_dict

README = Path(__file__).parents[2] / "README.md"


def block(language: str) -> str:
    """The first ``language`` block of the README's rack-based fabric section."""
    section = README.read_text().split("### Rack-based fabric", 1)[1].split("\n## ", 1)[0]
    return section.split(f"```{language}\n", 1)[1].split("```", 1)[0]


@pytest.mark.skipif(not shutil.which("vtysh"), reason="needs Debian's frr")
def test_frr_accepts_the_switch_side(tmp_path: Path) -> None:
    conf = tmp_path / "frr.conf"
    conf.write_text(block("frr"))
    result = subprocess.run(
        ["vtysh", "--dryrun", "-f", str(conf)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The check can fail: a misspelt line is refused.
    conf.write_text(block("frr").replace("neighbor NODES remote-as", "neighbr NODES remote-as"))
    refused = subprocess.run(
        ["vtysh", "--dryrun", "-f", str(conf)], capture_output=True, check=False
    )
    assert refused.returncode != 0


def a_node(name: str, rack: str, **annotations: str) -> Node:
    labels = {"topology.cosmolet.io/rack": rack}
    found = decode_object(node_dict(name, labels, annotations=annotations or None))
    assert isinstance(found, Node)
    return found


def test_the_config_resolves_per_rack() -> None:
    config = validate(yaml.safe_load(block("yaml")))
    r1 = NodeAddresses(
        {"eth1": (ipaddress.ip_interface("10.1.2.1/31"), ipaddress.ip_interface("fd10:1:2::1/127"))}
    )
    r2 = NodeAddresses({"eth1": (ipaddress.ip_interface("10.2.5.1/31"),)})
    node7 = resolve_peers(config, a_node("node7", "r1"), r1, "192.0.2.7")
    assert [(str(p.address), p.asn, p.origin) for p in node7.peers] == [
        ("10.1.2.0", None, "bgp.peers[0] (interface eth1)"),
        ("fd10:1:2::", None, "bgp.peers[0] (interface eth1)"),
        ("10.255.1.1", 65000, "bgp.peers[1]"),
    ]
    assert (node7.asn, node7.router_id, node7.problems) == (65001, "192.0.2.7", ())
    node9 = resolve_peers(config, a_node("node9", "r2", **{"cosmolet.io/asn": "65009"}), r2)
    assert [str(p.address) for p in node9.peers] == ["10.2.5.0"]
    assert (node9.asn, node9.router_id) == (65009, "10.2.5.1")
    assert [u.path for u in node9.unused] == ["bgp.peers[1]"]
    assert config.bgp.bfd.enabled and config.bgp.peers[1].hold_time == 30
