"""``cosmolet render frr`` (hybrid mode) and the hybrid ExaBGP neighbors: golden files, and
the FRR rendering accepted by FRR itself where it is installed."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cosmolet.config.schema import validate
from cosmolet.engine.model import Link
from cosmolet.exabgp import config as exabgp_config
from cosmolet.hybrid import frr_config
from tests.unit.test_cli import check_golden
from tests.unit.test_render_exabgp import AGENT

HYBRID: dict[str, Any] = {
    "mode": "hybrid",
    "nodeName": "node1",
    "bgp": {"asn": 65001, "routerId": "192.0.2.1", "interfaces": ["eth1", "swp*"]},
}
LINKS = {
    Link("eth1", "fe80::a8c1:abff:fe00:1", "fe80::1"),
    Link("swp2", "fe80::a8c1:abff:fe00:2", "fe80::2"),
}


def test_fabric_interfaces_keep_literals_and_expand_globs() -> None:
    config = validate(HYBRID)
    assert frr_config.fabric_interfaces(config, ["lo", "eth0", "swp1", "swp2", "eth1"]) == [
        "eth1",
        "swp1",
        "swp2",
    ]
    assert frr_config.fabric_interfaces(config, []) == ["eth1"]  # missing: applied when it appears


def test_frr_golden() -> None:
    config = validate(HYBRID)
    check_golden("frr-hybrid.conf", frr_config.render(config, ["eth1", "swp1", "swp2"]))
    bfd = validate(
        {
            **HYBRID,
            "bgp": {**HYBRID["bgp"], "bfd": {"enabled": True, "minRxMs": 100, "minTxMs": 100}},
        }
    )
    check_golden("frr-hybrid-bfd.conf", frr_config.render(bfd, ["eth1", "swp2"], LINKS))


def test_exabgp_hybrid_golden_and_sessions() -> None:
    config = validate(HYBRID)
    check_golden("exabgp-hybrid.conf", exabgp_config.render(config, AGENT, links=LINKS))
    sessions = exabgp_config.link_sessions(config, LINKS)
    assert [(s.name, s.selector, s.next_hop, s.peer_as) for s in sessions] == [
        ("fe80::1%eth1", "fe80::1 local-ip fe80::a8c1:abff:fe00:1", "fe80::a8c1:abff:fe00:1", None),
        ("fe80::2%swp2", "fe80::2 local-ip fe80::a8c1:abff:fe00:2", "fe80::a8c1:abff:fe00:2", None),
    ]


def test_switches_sharing_a_link_local_are_two_sessions_unless_the_node_shares_one_too() -> None:
    """A static fe80::1 on every leaf: two ExaBGP neighbors, told apart by our link-local. If
    the node's link-locals are the same pair too, ExaBGP cannot tell them apart and would refuse
    the whole configuration: the first is kept."""
    config = validate(HYBRID)
    links = {
        Link("eth1", "fe80::a", "fe80::1"),
        Link("eth2", "fe80::b", "fe80::1"),
        Link("eth3", "fe80::B", "fe80:0::1"),
    }
    kept, clashing = exabgp_config.distinct_links(links)
    assert [link.interface for link in kept] == ["eth1", "eth2"]
    assert [link.interface for link in clashing] == ["eth3"]
    text = exabgp_config.render(config, AGENT, links=links)
    assert text.count("neighbor fe80::1 {") == 2 and "eth3" not in text
    names = [s.name for s in exabgp_config.link_sessions(config, links)]
    assert names == ["fe80::1%eth1", "fe80::1%eth2"]


def test_the_open_is_asked_for_only_where_the_peer_as_is_auto() -> None:
    auto = exabgp_config.render(validate(HYBRID), AGENT, links=LINKS)
    assert "receive { parsed; open; }" in auto
    fixed = validate({**HYBRID, "bgp": {**HYBRID["bgp"], "peerAsn": 65100}})
    assert "receive" not in exabgp_config.render(fixed, AGENT, links=LINKS)


def test_exabgp_accepts_the_hybrid_rendering(tmp_path: Path) -> None:
    import sys

    conf = tmp_path / "exabgp.conf"
    conf.write_text(exabgp_config.render(validate(HYBRID), AGENT, links=LINKS))
    result = subprocess.run(
        [sys.executable, "-m", "exabgp", "validate", str(conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(not shutil.which("vtysh"), reason="needs Debian's frr")
def test_frr_accepts_the_rendering(tmp_path: Path) -> None:
    bfd = validate({**HYBRID, "bgp": {**HYBRID["bgp"], "bfd": {"enabled": True}}})
    conf = tmp_path / "frr.conf"
    conf.write_text(frr_config.render(bfd, ["eth1", "swp2"], LINKS))
    result = subprocess.run(
        ["vtysh", "--dryrun", "-f", str(conf)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_bfd_peer_commands_follow_the_links() -> None:
    from cosmolet.hybrid import bfd

    config = validate({**HYBRID, "bgp": {**HYBRID["bgp"], "bfd": {"enabled": True}}})
    old = Link("eth1", "fe80::a", "fe80::1")
    new = Link("swp2", "fe80::b", "fe80::2")
    commands = bfd.peer_commands(config, added={new}, removed={old})
    assert commands[:6] == [
        "configure terminal",
        "bfd",
        "profile cosmolet",
        "receive-interval 300",
        "transmit-interval 300",
        "detect-multiplier 3",
    ]
    assert commands[6:] == [
        "exit",
        "no peer fe80::1 interface eth1 local-address fe80::a",
        "peer fe80::2 interface swp2 local-address fe80::b",
        "profile cosmolet",
        "exit",
    ]


NUMBERED_BFD: dict[str, Any] = {
    "nodeName": "node1",
    "bgp": {
        "asn": 65001,
        "routerId": "192.0.2.1",
        "peers": [{"interface": "eth1", "asn": "auto"}, {"address": "192.0.2.254", "asn": 1}],
        "bfd": {"enabled": True, "minRxMs": 100, "minTxMs": 100},
    },
}
#: bfdd's peers of a numbered node: derived from eth1, and one configured by address alone
NUMBERED_LINKS = {
    Link("eth1", "10.1.1.1", "10.1.1.0"),
    Link("eth1", "fd10:1:1::1", "fd10:1:1::"),
    Link("", "", "192.0.2.254"),
}


def test_numbered_mode_with_bfd_runs_zebra_without_router_advertisements_and_bfdd(
    tmp_path: Path,
) -> None:
    text = frr_config.render(validate(NUMBERED_BFD), ["eth1"], NUMBERED_LINKS)
    check_golden("frr-numbered-bfd.conf", text)
    assert "interface" not in text.split("bfd\n", 1)[0]  # no stanza: no router advertisement
    if shutil.which("vtysh"):
        conf = tmp_path / "frr.conf"
        conf.write_text(text)
        result = subprocess.run(
            ["vtysh", "--dryrun", "-f", str(conf)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_render_frr_refuses_numbered_mode_without_bfd(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cosmolet.cli import main

    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({**NUMBERED_BFD, "bgp": {**NUMBERED_BFD["bgp"], "bfd": {}}}))
    assert main(["render", "frr", "--config", str(config)]) == 2
    assert "numbered mode with bgp.bfd.enabled" in capsys.readouterr().err
    config.write_text(json.dumps(NUMBERED_BFD))
    assert main(["render", "frr", "--config", str(config)]) == 0
    assert "zebra sends no router advertisement" in capsys.readouterr().out


def test_bfd_peer_lines_name_what_is_known() -> None:
    from cosmolet.hybrid import bfd

    config = validate(NUMBERED_BFD)
    added = {Link("", "", "192.0.2.254"), Link("eth1", "10.1.1.1", "10.1.1.0")}
    assert bfd.peer_commands(config, added=added, removed=set())[7:] == [
        "peer 192.0.2.254",
        "profile cosmolet",
        "exit",
        "peer 10.1.1.0 interface eth1 local-address 10.1.1.1",
        "profile cosmolet",
        "exit",
    ]
