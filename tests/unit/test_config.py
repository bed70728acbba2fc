"""Config validation: defaults, the announcement's keys, and errors that name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cosmolet.config.checks import router_id_warnings, warnings_for
from cosmolet.config.loader import load_config, with_node_name
from cosmolet.config.schema import ConfigError, Mode, validate

MINIMAL: dict[str, Any] = {"bgp": {"asn": 65001}}


def problems(data: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        validate(data)
    return [str(problem) for problem in caught.value.problems]


def test_defaults() -> None:
    config = validate(MINIMAL)
    assert config.mode is Mode.NUMBERED
    assert config.bgp.hold_time == 9
    assert config.bgp.graceful_restart.enabled is True
    assert config.bgp.graceful_restart.restart_time == 120
    assert config.bgp.enabled is True
    assert config.services.advertise.cluster_ip.enabled is True
    assert config.services.advertise.external_ips.enabled is False
    assert config.services.advertise.load_balancer_ips.enabled is False
    assert config.http.host_port == ("0.0.0.0", 9179)
    assert config.shutdown.mode == "graceful"
    assert config.logging.format == "json"


def test_node_name_defaults_to_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODE_NAME", "worker-7")
    assert with_node_name(validate(MINIMAL)).node_name == "worker-7"
    assert with_node_name(validate({**MINIMAL, "nodeName": "explicit"})).node_name == "explicit"


def test_announcement_keys_are_accepted() -> None:
    config = validate(
        {
            "services": {"namespaces": ["production", "monitoring"]},
            "loopIntervalSeconds": 15,
            "bgp": {"enabled": True, "asn": 65001},
            "logging": {"level": "info", "format": "json"},
        }
    )
    assert config.services.namespaces == ("production", "monitoring")
    assert config.loop_interval_seconds == 15


def test_every_documented_key_is_accepted() -> None:
    config = validate(
        {
            "mode": "hybrid",
            "nodeName": "n1",
            "bgp": {
                "asn": 4200000001,
                "routerId": "10.0.0.1",
                "holdTime": 30,
                "gracefulRestart": {"enabled": False, "restartTime": 60},
                "peers": [
                    {
                        "address": "2001:db8::1",
                        "asn": 65100,
                        "localAddress": "2001:db8::2",
                        "passwordFile": "/etc/cosmolet/md5",
                        "multihop": 2,
                        "families": ["ipv4", "ipv6"],
                    }
                ],
                "interfaces": ["eth1", "swp*"],
                "peerAsn": "auto",
                "communities": ["65001:1", "NO-EXPORT"],
                "largeCommunities": ["65001:0:1"],
                "localPreference": 150,
                "med": 10,
            },
            "services": {
                "excludeNamespaces": ["kube-system"],
                "labelSelector": "app in (web, api), !legacy",
                "optIn": True,
                "advertise": {
                    "clusterIP": {"enabled": True, "allowedCIDRs": ["10.96.0.0/12"]},
                    "externalIPs": {"enabled": True, "allowedCIDRs": ["203.0.113.0/24"]},
                    "loadBalancerIPs": {"enabled": True, "allowedCIDRs": ["2001:db8:1b::/48"]},
                },
                "maxRoutes": 5000,
            },
            "node": {"withdrawWhenCordoned": True},
            "http": {"listen": "[::]:9200"},
            "logging": {"level": "DEBUG", "format": "console"},
            "shutdown": {"mode": "withdraw", "drainSeconds": 5},
        }
    )
    assert config.bgp.communities == ("65001:1", "no-export")
    assert config.bgp.peers[0].address_families == ("ipv4", "ipv6")
    assert config.http.host_port == ("::", 9200)
    assert config.logging.level == "debug"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, "bgp: required key is missing"),
        ({"bgp": {"asn": 0}}, "bgp.asn: Input should be greater than or equal to 1 (got 0)"),
        ({"bgp": {"asn": 65001, "bpg": 1}}, "bgp.bpg: unknown key"),
        ({**MINIMAL, "mode": "magic"}, "mode: Input should be 'numbered' or 'hybrid'"),
        (
            {"bgp": {"asn": 1, "peers": [{"address": "192.0.2.1", "asn": 1}, {"address": "x"}]}},
            "bgp.peers[1].address: expected an IPv4 or IPv6 address, got 'x'",
        ),
        (
            {"bgp": {"asn": 1, "peers": [{"address": "192.0.2.1", "asn": 1}, {"address": "::1"}]}},
            "bgp.peers[1].asn: required key is missing",
        ),
        (
            {"bgp": {"asn": 1, "peers": [{"address": "192.0.2.1", "asn": 2**32}]}},
            "bgp.peers[0].asn: expected an AS number 1-4294967295 or 'auto', got 4294967296",
        ),
        (
            {
                "bgp": {
                    "asn": 1,
                    "peers": [{"address": "192.0.2.1", "asn": 2, "localAddress": "2001:db8::2"}],
                }
            },
            "bgp.peers[0].localAddress: expected an IPv4 address like the peer's address",
        ),
        ({"bgp": {"asn": 1, "holdTime": 1}}, "bgp.holdTime: expected 0 (no keepalives) or 3-65535"),
        ({"bgp": {"asn": 1, "routerId": "::1"}}, "bgp.routerId: expected an IPv4 address"),
        ({"bgp": {"asn": 1, "communities": ["65536:1"]}}, "bgp.communities: '65536:1' is not a"),
        ({"bgp": {"asn": 1, "largeCommunities": ["1:2"]}}, "bgp.largeCommunities: '1:2' is not a"),
        ({"bgp": {"asn": 1}, "mode": "hybrid"}, "bgp.interfaces: hybrid mode needs at least one"),
        (
            {**MINIMAL, "services": {"labelSelector": "a in (b"}},
            "services.labelSelector: unbalanced '('",
        ),
        (
            {
                **MINIMAL,
                "services": {"advertise": {"externalIPs": {"allowedCIDRs": ["1.2.3.4/8"]}}},
            },
            "services.advertise.externalIPs.enabled: required key is missing",
        ),
        (
            {
                **MINIMAL,
                "services": {
                    "advertise": {"clusterIP": {"enabled": True, "allowedCIDRs": ["1.2.3.4/8"]}}
                },
            },
            "services.advertise.clusterIP.allowedCIDRs[0]: expected a CIDR",
        ),
        ({**MINIMAL, "http": {"listen": "9179"}}, "http.listen: '9179' is not HOST:PORT"),
        ({**MINIMAL, "shutdown": {"mode": "later"}}, "shutdown.mode: Input should be 'graceful'"),
        ({**MINIMAL, "services": {"maxRoutes": -1}}, "services.maxRoutes: Input should be greater"),
        ([1, 2], "expected a mapping of keys at the top level"),
    ],
)
def test_errors_name_the_field(data: Any, expected: str) -> None:
    found = problems(data)
    assert any(problem.startswith(expected) for problem in found), found


def peers(*items: dict[str, Any]) -> dict[str, Any]:
    return {"bgp": {"asn": 65001, "peers": list(items)}}


PEER = {"address": "192.0.2.1", "asn": 65101}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # What YAML hands over as written and a lax model would have coerced.
        ({"bgp": {"asn": True}}, "bgp.asn: Input should be a valid integer (got True)"),
        ({"bgp": {"asn": 65001.0}}, "bgp.asn: Input should be a valid integer (got 65001.0)"),
        ({"bgp": {"asn": "65001"}}, "bgp.asn: Input should be a valid integer (got '65001')"),
        (peers({**PEER, "asn": "65101"}), "bgp.peers[0].asn: expected an AS number 1-"),
        (peers({**PEER, "multihop": True}), "bgp.peers[0].multihop: Input should be a valid int"),
        ({"bgp": {"asn": 1, "peerAsn": "65001"}}, "bgp.peerAsn: expected an AS number 1-"),
        ({"bgp": {"asn": 1, "peerAsn": True}}, "bgp.peerAsn: expected an AS number 1-"),
        ({"bgp": {"asn": 1, "holdTime": "9"}}, "bgp.holdTime: Input should be a valid integer"),
        ({"bgp": {"asn": 1, "med": 1.0}}, "bgp.med: Input should be a valid integer"),
        ({"bgp": {"asn": 1, "localPreference": False}}, "bgp.localPreference: Input should be"),
        (
            {"bgp": {"asn": 1, "gracefulRestart": {"restartTime": 120.0}}},
            "bgp.gracefulRestart.restartTime: Input should be a valid integer",
        ),
        ({**MINIMAL, "services": {"maxRoutes": "10"}}, "services.maxRoutes: Input should be a va"),
        ({**MINIMAL, "shutdown": {"drainSeconds": True}}, "shutdown.drainSeconds: Input should be"),
        ({**MINIMAL, "loopIntervalSeconds": "15"}, "loopIntervalSeconds: Input should be a valid"),
        ({**MINIMAL, "loopIntervalSeconds": 0.5}, "loopIntervalSeconds: Input should be greater"),
        ({**MINIMAL, "http": {"listen": "0.0.0.0:\u0669\u0661"}}, "http.listen: '0.0.0.0:"),
        # Peer addresses a session cannot have.
        (peers({**PEER, "address": "fe80::1%eth0"}), "bgp.peers[0].address: fe80::1%eth0 carr"),
        (peers({**PEER, "address": "0.0.0.0"}), "bgp.peers[0].address: 0.0.0.0 is the unspec"),
        (peers({**PEER, "address": "::"}), "bgp.peers[0].address: :: is the unspecified"),
        (peers({**PEER, "address": "127.0.0.1"}), "bgp.peers[0].address: 127.0.0.1 is a loop"),
        (peers({**PEER, "address": "::1"}), "bgp.peers[0].address: ::1 is a loopback"),
        (peers({**PEER, "address": "224.0.0.5"}), "bgp.peers[0].address: 224.0.0.5 is a multi"),
        (peers({**PEER, "address": "255.255.255.255"}), "bgp.peers[0].address: 255.255.255.255"),
        (peers({**PEER, "localAddress": "fe80::2%eth0"}), "bgp.peers[0].localAddress: fe80::2"),
        ({"bgp": {"asn": 1, "routerId": "0.0.0.0"}}, "bgp.routerId: 0.0.0.0 is not a usable"),
        # The same session twice, or a family twice.
        (peers(PEER, {**PEER, "asn": 65102}), "bgp.peers[1]: same address as bgp.peers[0]"),
        (
            peers(PEER, {**PEER, "address": "192.0.2.3"}, {**PEER, "localAddress": "192.0.2.9"}),
            "bgp.peers[2]: same address as bgp.peers[0]",
        ),
        (peers({**PEER, "address": "2001:db8::1"}, {**PEER, "address": "2001:DB8:0::1"}), "bgp.pe"),
        (peers({**PEER, "families": ["ipv4", "ipv4"]}), "bgp.peers[0].families: expected each"),
        (peers({**PEER, "families": []}), "bgp.peers[0].families: expected at least one family"),
        # Interface names, which go into frr.conf.
        ({"bgp": {"asn": 1, "interfaces": ["eth1", ""]}}, "bgp.interfaces[1]: expected an interf"),
        ({"bgp": {"asn": 1, "interfaces": ["eth 1"]}}, "bgp.interfaces[0]: 'eth 1' is not a Lin"),
        ({"bgp": {"asn": 1, "interfaces": ["a/b"]}}, "bgp.interfaces[0]: 'a/b' is not a Linux"),
        ({"bgp": {"asn": 1, "interfaces": ["eth1\n!"]}}, "bgp.interfaces[0]: 'eth1\\n!' is not"),
        ({"bgp": {"asn": 1, "interfaces": ["e\x7f"]}}, "bgp.interfaces[0]: 'e\\x7f' is not"),
        ({"bgp": {"asn": 1, "interfaces": ["x" * 16]}}, "bgp.interfaces[0]: 'xxxxxxxxxxxxxxxx'"),
        ({"bgp": {"asn": 1, "interfaces": [".."]}}, "bgp.interfaces[0]: '..' is not a Linux"),
    ],
)
def test_what_start_would_fail_on_or_ignore_is_refused(data: Any, expected: str) -> None:
    found = problems(data)
    assert any(problem.startswith(expected) for problem in found), found


def test_what_is_still_accepted() -> None:
    config = validate(
        {
            "loopIntervalSeconds": 1,
            "shutdown": {"drainSeconds": 0},
            "services": {"healthHold": {"riseSeconds": 0.5}},
            "bgp": {
                "asn": 4200000001,
                "peerAsn": 65000,
                "interfaces": ["eth1", "x" * 15, "enp[0-9]s[0-9]f[0-9]*", "swp?"],
                "peers": [
                    {"address": "fe80::1", "asn": 65101},  # unscoped link-local, as before
                    {"address": "192.0.2.1", "asn": 65101, "families": ["ipv4"]},
                    {"address": "2001:db8::1", "asn": 65101, "localAddress": "2001:db8::2"},
                ],
            },
        }
    )
    assert config.loop_interval_seconds == 1.0
    assert config.bgp.peer_asn == 65000
    assert len(config.bgp.interfaces) == 4


def test_all_problems_are_reported_at_once() -> None:
    found = problems({"bgp": {"asn": -1, "holdTime": 1}, "typo": 1})
    assert len(found) == 3


def test_warnings() -> None:
    config = validate({**MINIMAL, "services": {"advertise": {"externalIPs": {"enabled": True}}}})
    paths = {warning.path for warning in warnings_for(config)}
    assert "services.advertise.externalIPs.allowedCIDRs" in paths
    assert "bgp.peers" in paths


def test_keys_of_the_other_mode_are_warned_about() -> None:
    numbered = validate(
        {
            "nodeName": "n1",
            "bgp": {
                "asn": 65001,
                "peers": [PEER],
                "interfaces": ["eth1"],
                "peerAsn": 65100,
                "routerAdvertisementInterval": 10,
                "bfd": {"enabled": True},
            },
        }
    )
    found = {str(warning) for warning in warnings_for(numbered)}
    assert found == {  # bgp.bfd serves both modes
        f"bgp.{key}: ignored in numbered mode (a hybrid mode setting)"
        for key in ("interfaces", "peerAsn", "routerAdvertisementInterval")
    }
    defaults = validate({"nodeName": "n1", "bgp": {"asn": 65001, "peers": [PEER]}})
    assert warnings_for(defaults) == []
    hybrid = validate(
        {
            "mode": "hybrid",
            "nodeName": "n1",
            "bgp": {"asn": 1, "interfaces": ["e*"], "peers": [PEER]},
        }
    )
    assert [str(w) for w in warnings_for(hybrid)] == [
        "bgp.peers: ignored in hybrid mode: the switches on bgp.interfaces are the peers"
    ]


def test_a_namespace_both_selected_and_excluded_is_warned_about() -> None:
    config = validate(
        {
            **MINIMAL,
            "services": {"namespaces": ["a", "b"], "excludeNamespaces": ["c", "b"]},
        }
    )
    overlap = [w for w in warnings_for(config) if w.path.startswith("services")]
    assert [w.path for w in overlap] == ["services.excludeNamespaces[1]"]
    assert "'b' is also in services.namespaces" in overlap[0].message


@pytest.mark.parametrize(
    ("bgp", "node_ip", "warned"),
    [
        ({"asn": 1}, "", True),
        ({"asn": 1}, "fd00::7", False),  # derived from the IPv6 NODE_IP (IPv6-only nodes)
        ({"asn": 1}, "10.1.2.3", False),
        ({"asn": 1, "routerId": "192.0.2.1"}, "", False),
        ({"asn": 1, "peers": [{**PEER, "localAddress": "192.0.2.2"}]}, "", False),
        (
            {"asn": 1, "peers": [{"address": "fd00::1", "asn": 2, "localAddress": "fd00::2"}]},
            "",
            True,
        ),
        ({"asn": 1, "interfaces": ["eth1"]}, "", True),  # hybrid mode: the same rule
    ],
)
def test_a_router_id_that_cannot_be_derived_is_warned_about(
    bgp: dict[str, Any], node_ip: str, warned: bool
) -> None:
    config = validate({"mode": "hybrid" if "interfaces" in bgp else "numbered", "bgp": bgp})
    found = router_id_warnings(config, node_ip)
    assert bool(found) is warned
    if warned:
        assert found[0].path == "bgp.routerId"
        assert "NODE_IP" in found[0].message


def test_load_config_refuses_deep_nesting(tmp_path: Path) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("bgp: " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply") as caught:
        load_config(deep)
    assert caught.value.source == str(deep)


def test_load_config_reports_unreadable_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("bgp: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_example_config_is_valid() -> None:
    config = load_config(Path(__file__).parents[2] / "lab/examples/config.yaml")
    assert config.node_name == "node1"
