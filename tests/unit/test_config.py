"""Config validation: defaults, the announcement's keys, and errors that name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cosmolet.config.loader import load_config, with_node_name
from cosmolet.config.schema import ConfigError, Mode, validate, warnings_for

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
            "bgp.peers[0].asn: Input should be less than or equal to 4294967295",
        ),
        (
            {
                "bgp": {
                    "asn": 1,
                    "peers": [{"address": "192.0.2.1", "asn": 2, "localAddress": "::1"}],
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


def test_all_problems_are_reported_at_once() -> None:
    found = problems({"bgp": {"asn": -1, "holdTime": 1}, "typo": 1})
    assert len(found) == 3


def test_warnings() -> None:
    config = validate({**MINIMAL, "services": {"advertise": {"externalIPs": {"enabled": True}}}})
    paths = {warning.path for warning in warnings_for(config)}
    assert "services.advertise.externalIPs.allowedCIDRs" in paths
    assert "bgp.peers" in paths


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
