"""``cosmolet render exabgp``: golden files, and every rendering accepted by ExaBGP itself."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cosmolet.config.schema import Config, ConfigError, validate
from cosmolet.exabgp.api import Address
from cosmolet.exabgp.config import (
    RenderError,
    Secrets,
    kernel_source,
    read_secrets,
    render,
)
from tests.unit.test_cli import check_golden

AGENT = ["/usr/bin/python3", "-m", "cosmolet", "agent", "--config", "/etc/cosmolet/config.yaml"]
V4 = {"address": "10.0.1.0", "asn": 65101, "localAddress": "10.0.1.1"}
V6 = {"address": "fd00:1::", "asn": 65101, "localAddress": "fd00:1::1"}

CASES: dict[str, dict[str, Any]] = {
    "ipv4": {"bgp": {"asn": 65001, "routerId": "192.0.2.1", "peers": [V4]}},
    "ipv6": {"bgp": {"asn": 65001, "routerId": "192.0.2.1", "peers": [V6]}},
    "dual-stack": {"bgp": {"asn": 65001, "holdTime": 30, "peers": [V4, {**V6, "asn": 65102}]}},
    "gr-off": {
        "bgp": {
            "asn": 65001,
            "routerId": "192.0.2.1",
            "peers": [V4],
            "gracefulRestart": {"enabled": False},
        }
    },
    "password": {
        "bgp": {
            "asn": 65001,
            "routerId": "192.0.2.1",
            "peers": [{**V4, "passwordFile": "PASSWORD_FILE"}],
        }
    },
    "multihop": {
        "bgp": {
            "asn": 4200000001,
            "routerId": "192.0.2.1",
            "peers": [
                {"address": "192.0.2.254", "asn": 65000, "multihop": 3, "families": ["ipv4"]},
                {"address": "2001:db8::fe", "asn": 65000, "multihop": 3},
            ],
        }
    },
}


#: The kernel's source addresses in these tests (the multihop peers have no ``localAddress``).
SOURCES = {"192.0.2.254": "192.0.2.10"}


def sources(peer: Address) -> str | None:
    return SOURCES.get(str(peer))


def _config(name: str, tmp_path: Path) -> Config:
    password = tmp_path / "md5"
    password.write_text("s3cret-pass\n")
    data = json.loads(json.dumps(CASES[name]).replace("PASSWORD_FILE", str(password)))
    return validate({"nodeName": "node1", **data})


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str, tmp_path: Path) -> None:
    config = _config(name, tmp_path)
    check_golden(f"exabgp-{name}.conf", render(config, AGENT, environ={}, source_of=sources))


@pytest.mark.parametrize("name", sorted(CASES))
def test_exabgp_accepts_the_rendering(name: str, tmp_path: Path) -> None:
    config = _config(name, tmp_path)
    conf = tmp_path / "exabgp.conf"
    conf.write_text(render(config, AGENT, read_secrets(config), environ={}, source_of=sources))
    result = subprocess.run(
        [sys.executable, "-m", "exabgp", "validate", str(conf)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_password_is_masked_unless_secrets_are_given(tmp_path: Path) -> None:
    config = _config("password", tmp_path)
    assert "s3cret" not in render(config, AGENT, environ={})
    assert '"<masked>"' in render(config, AGENT, environ={})
    assert 'md5-password "s3cret-pass";' in render(config, AGENT, read_secrets(config), {})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("", "expected 1-80"),
        ("two words", "expected 1-80"),
        ('quo"te', "the password may not contain"),
        ("x" * 81, "expected 1-80"),
    ],
)
def test_bad_password_files_name_the_peer(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "md5"
    if content is not None:
        path.write_text(content)
    config = validate({"bgp": {"asn": 1, "peers": [V4, {**V6, "passwordFile": str(path)}]}})
    with pytest.raises(RenderError, match=r"bgp\.peers\[1\]\.passwordFile: " + message):
        read_secrets(config)


def test_router_id_fallbacks() -> None:
    no_v4_local = validate({"bgp": {"asn": 1, "peers": [V6]}})
    with pytest.raises(RenderError, match=r"bgp\.routerId: required"):
        render(no_v4_local, AGENT, Secrets({}), environ={})
    assert "router-id 10.1.2.3;" in render(no_v4_local, AGENT, environ={"NODE_IP": "10.1.2.3"})
    with_local = validate({"bgp": {"asn": 1, "peers": [V4]}})
    assert "router-id 10.0.1.1;" in render(with_local, AGENT, environ={})


def test_agent_arguments_are_checked() -> None:
    config = validate({"bgp": {"asn": 1, "routerId": "1.1.1.1"}})
    with pytest.raises(RenderError, match="cannot pass"):
        render(config, [*AGENT, "/path with space;"], environ={})


def test_a_peer_without_local_address_gets_the_kernels_source_address() -> None:
    """ExaBGP without ``local-address`` resolves ``next-hop self`` only after its first
    connection, and fails (AttributeError) on every command before it; rendered, it never does.
    Where the kernel has no route to the peer, ExaBGP is left to learn it as before."""
    text = render(validate(CASES["multihop"]), AGENT, environ={}, source_of=sources)
    v4, v6 = text.split("neighbor 192.0.2.254 {")[1].split("neighbor 2001:db8::fe {")
    assert "    local-address 192.0.2.10;" in v4
    assert "local-address" not in v6
    # The kernel's own answer: the loopback reaches itself from itself.
    assert kernel_source(ipaddress.ip_address("127.0.0.1")) == "127.0.0.1"
    assert kernel_source(ipaddress.ip_address("fe80::1")) is None  # no scope: no route


@pytest.mark.parametrize(
    ("address", "families", "family"),
    [("192.0.2.1", ["ipv4", "ipv6"], "ipv4"), ("2001:db8::1", ["ipv4"], "ipv6")],
)
def test_a_numbered_session_carries_its_own_family_only(
    address: str, families: list[str], family: str
) -> None:
    """ExaBGP drops ``next-hop self`` across families (only logged) or sends the router id as
    an IPv4 next hop over IPv6; no next hop of the other family can be derived every time, so
    the config says what to do instead."""
    peer = {"address": address, "asn": 65101, "families": families}
    with pytest.raises(ConfigError, match=r"bgp\.peers\[0\]\.families: expected only " + family):
        validate({"bgp": {"asn": 65001, "routerId": "192.0.2.9", "peers": [peer]}})
    assert validate(
        {"bgp": {"asn": 1, "routerId": "1.1.1.1", "peers": [{**peer, "families": [family]}]}}
    )
