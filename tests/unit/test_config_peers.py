"""``bgp.peers`` entries of a shared config: what the file alone can be checked for, each error
with its field path."""

from __future__ import annotations

from typing import Any

import pytest

from cosmolet.cli import main
from cosmolet.config.schema import ConfigError, validate


def with_peers(*items: dict[str, Any]) -> dict[str, Any]:
    return {"bgp": {"asn": 65001, "routerId": "192.0.2.1", "peers": list(items)}}


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        validate(data)
    return [str(problem) for problem in caught.value.problems]


OK = {"address": "10.0.0.1", "asn": 65000}
IN = {"key": "rack", "operator": "In", "values": ["r1"]}


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            {"interface": "eth1", "address": "gateway", "asn": 1},
            "bgp.peers[1]: give exactly one of address (an address, or 'gateway') and interface",
        ),
        ({"asn": 1}, "bgp.peers[1]: give exactly one of address"),
        ({"interface": "eth*", "asn": 1}, "bgp.peers[1].interface: 'eth*' is a glob"),
        ({"interface": "eth 1", "asn": 1}, "bgp.peers[1].interface: 'eth 1' is not a Linux"),
        ({"address": "gateways", "asn": 1}, "bgp.peers[1].address: expected an IPv4 or IPv6"),
        (
            {"interface": "eth1", "asn": 1, "localAddress": "10.0.0.2"},
            "bgp.peers[1]: localAddress is derived for an interface or gateway peer",
        ),
        (
            {
                "interface": "eth1",
                "asn": 1,
                "nodeSelector": {"matchExpressions": [{**IN, "operator": "in"}]},
            },
            "bgp.peers[1].nodeSelector.matchExpressions[0].operator: Input should be 'In', "
            "'NotIn', 'Exists' or 'DoesNotExist' (got 'in')",
        ),
        (
            {
                "interface": "eth1",
                "asn": 1,
                "nodeSelector": {"matchExpressions": [{**IN, "values": []}]},
            },
            "bgp.peers[1].nodeSelector.matchExpressions[0]: In needs at least one value",
        ),
        (
            {
                "interface": "eth1",
                "asn": 1,
                "nodeSelector": {
                    "matchExpressions": [{"key": "x", "operator": "Exists", "values": ["a"]}]
                },
            },
            "bgp.peers[1].nodeSelector.matchExpressions[0]: Exists takes no values",
        ),
        (
            {"interface": "eth1", "asn": 1, "nodeSelector": {"matchLabels": {"-bad": "x"}}},
            "bgp.peers[1].nodeSelector.matchLabels: '-bad' is not a label key",
        ),
        (
            {"interface": "eth1", "asn": 1, "nodeSelector": {"matchLabels": {"rack": "a b"}}},
            "bgp.peers[1].nodeSelector.matchLabels: 'a b' (of 'rack') is not a label value",
        ),
        (
            {"interface": "eth1", "asn": 1, "nodeSelector": {"matchLabel": {"rack": "r1"}}},
            "bgp.peers[1].nodeSelector.matchLabel: unknown key",
        ),
        ({**OK, "address": "10.0.0.9", "holdTime": 1}, "bgp.peers[1].holdTime: expected 0"),
        ({**OK, "address": "10.0.0.9", "port": 0}, "bgp.peers[1].port: Input should be greater"),
        ({**OK, "address": "10.0.0.9", "port": 65536}, "bgp.peers[1].port: Input should be less"),
        ({"interface": "eth1", "asn": "abc"}, "bgp.peers[1].asn: expected an AS number 1-"),
        ({"interface": "eth1", "asn": 1, "families": []}, "bgp.peers[1].families: expected at"),
    ],
)
def test_peer_entry_errors_name_the_field(entry: dict[str, Any], expected: str) -> None:
    found = problems(with_peers(OK, entry))
    assert any(problem.startswith(expected) for problem in found), found


def test_a_shared_config_for_every_rack() -> None:
    config = validate(
        with_peers(
            {"interface": "eth1", "asn": "auto"},
            {"address": "gateway", "asn": 65000, "families": ["ipv4"]},
            {"address": "10.0.0.1", "asn": 65000, "nodeSelector": {"matchLabels": {"rack": "r1"}}},
            {"address": "10.0.0.1", "asn": 65002, "nodeSelector": {"matchLabels": {"rack": "r2"}}},
            {"address": "10.0.0.3", "asn": 65000, "holdTime": 30, "port": 1179},
        )
    )
    entries = config.bgp.peers
    assert [entry.source for entry in entries] == [
        "interface eth1",
        "gateway",
        "address 10.0.0.1",
        "address 10.0.0.1",
        "address 10.0.0.3",
    ]
    assert entries[0].asn == "auto" and entries[0].address_families == ("ipv4", "ipv6")
    assert entries[2].node_selector is not None
    assert entries[2].node_selector.text == "rack=r1"
    assert (entries[4].hold_time, entries[4].port) == (30, 1179)


def test_the_same_address_twice_is_refused_unless_selectors_tell_the_nodes_apart() -> None:
    assert problems(with_peers(OK, OK)) == [
        "bgp.peers[1]: same address as bgp.peers[0]: one per peer"
    ]
    selected = {**OK, "nodeSelector": {"matchLabels": {"rack": "r2"}}}
    assert validate(with_peers(OK, selected))


def test_check_config_names_the_selector_field(tmp_path: Any, capsys: Any) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "bgp:\n  asn: 65001\n  peers:\n"
        "    - {interface: eth1, asn: 65100}\n"
        "    - {address: gateway, asn: 65000}\n"
        "    - address: 10.0.0.1\n      asn: 65000\n      nodeSelector:\n"
        "        matchExpressions: [{key: rack, operator: in, values: [r1]}]\n"
    )
    assert main(["check-config", str(path)]) == 2
    assert "bgp.peers[2].nodeSelector.matchExpressions[0].operator" in capsys.readouterr().err
