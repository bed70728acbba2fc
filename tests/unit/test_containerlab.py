"""``lab/containerlab``: no Docker here, so check what can be checked without it. The files are
what ``lab.clab`` generates from the netns lab's own definitions; the topologies parse and are
consistent (links join declared nodes, no interface twice, eth0 left to containerlab's
management network); every bind mount's source exists, and so does every path the node-start
script reads; every FRR interface is a linked one; the node configs pass ``check-config`` and
plan the expected routes from the objects file. FRR's own parser checks the switch configs in
tests/integration/test_containerlab_frr.py."""

from __future__ import annotations

import ipaddress
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from cosmolet.cli import main as cosmolet_main
from cosmolet.config.loader import load_config
from cosmolet.engine.peers import NodeAddresses, resolve_peers
from lab import clab

TOPOLOGIES = sorted(clab.DIRECTORY.glob("*.clab.yml"))


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def test_generated_files_are_current() -> None:
    assert clab.main(["--check"]) == 0


def test_there_is_a_hybrid_and_a_numbered_topology() -> None:
    assert {p.name for p in TOPOLOGIES} == {"hybrid.clab.yml", "numbered.clab.yml"}
    assert (clab.DIRECTORY / "README.md").exists()


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.stem)
def test_topology_is_consistent(path: Path) -> None:
    data = load(path)
    assert re.fullmatch(r"[a-z0-9-]+", data["name"])
    nodes = data["topology"]["nodes"]
    assert {"spine", "leaf1", "leaf2", "node1", "node2", "client"} <= set(nodes)
    endpoints = [e for link in data["topology"]["links"] for e in link["endpoints"]]
    assert all(len(link["endpoints"]) == 2 for link in data["topology"]["links"])
    for endpoint in endpoints:
        node, interface = endpoint.split(":")
        assert node in nodes, endpoint
        assert re.fullmatch(r"eth[1-9][0-9]*", interface), f"{endpoint}: eth0 is management"
    assert not [e for e, n in Counter(endpoints).items() if n > 1]
    for node in nodes.values():
        assert node["kind"] == "linux"
        assert node["image"]


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.stem)
def test_every_bind_source_exists(path: Path) -> None:
    for name, node in load(path)["topology"]["nodes"].items():
        for bind in node.get("binds", []):
            source = (path.parent / bind.split(":")[0]).resolve()
            assert source.exists(), f"{path.name} {name}: {bind}"


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.stem)
def test_frr_interfaces_are_linked(path: Path) -> None:
    data = load(path)
    linked = {e for link in data["topology"]["links"] for e in link["endpoints"]}
    for name, node in data["topology"]["nodes"].items():
        for bind in node.get("binds", []):
            source, target = bind.split(":")[:2]
            if target != "/etc/frr/frr.conf":
                continue
            text = (path.parent / source).read_text()
            for interface in re.findall(r"^interface (\S+)", text, re.MULTILINE):
                assert f"{name}:{interface}" in linked, f"{source}: {interface} is not linked"


def node_config(mode: str, index: int) -> Path:
    """Hybrid mode: a config per node; numbered mode: one for both (each resolves its peers)."""
    name = "numbered.yaml" if mode == "numbered" else f"node{index}-{mode}.yaml"
    return clab.DIRECTORY / "configs" / name


@pytest.mark.parametrize("mode", clab.MODES)
@pytest.mark.parametrize("index", [1, 2])
def test_node_configs_check_and_plan(
    mode: str, index: int, capsys: pytest.CaptureFixture[str]
) -> None:
    config = node_config(mode, index)
    assert cosmolet_main(["check-config", str(config)]) == 0
    capsys.readouterr()
    objects = clab.DIRECTORY / "configs/objects.yaml"
    plan = ["plan", "--config", str(config), "--objects", str(objects), "--node", f"node{index}"]
    assert cosmolet_main(plan) == 0
    plan = json.loads(capsys.readouterr().out)
    assert {route["prefix"] for route in plan["routes"]} == {
        "10.96.0.10/32",
        "10.96.0.11/32",
        "fd00:96::11/128",
        "10.96.0.12/32",
        "198.51.100.10/32",
    }
    if mode == "hybrid":
        assert yaml.safe_load(config.read_text())["bgp"]["interfaces"] == ["eth1", "eth2"]


def test_node_start_adds_every_advertised_address_to_loopback() -> None:
    script = (clab.DIRECTORY / "configs/node-start.sh").read_text()
    for address in ("10.96.0.10", "10.96.0.11", "fd00:96::11", "10.96.0.12", "198.51.100.10"):
        assert address in script


def test_node_start_uses_mounted_paths() -> None:
    """What node-start.sh reads lives under a directory the topology mounts."""
    script = (clab.DIRECTORY / "configs/node-start.sh").read_text()
    node = load(clab.DIRECTORY / "hybrid.clab.yml")["topology"]["nodes"]["node1"]
    mounts = {bind.split(":")[1]: bind.split(":")[0] for bind in node["binds"]}
    for used in re.findall(r"(/(?:config|chart-files)/[\w.-]+)", script):
        directory, name = used.rsplit("/", 1)
        source = clab.DIRECTORY / mounts[directory] / name
        assert source.exists() or "$" in name, used
    for mode in clab.MODES:
        for index in (1, 2):
            assert (clab.DIRECTORY / mounts["/config"] / node_config(mode, index).name).exists()


@pytest.mark.parametrize("index", [1, 2])
def test_the_one_numbered_config_gives_each_node_its_own_leaves(index: int) -> None:
    """Resolved with the addresses the topology gives the node: its peers are the addresses the
    leaves' configurations hold for their side of its links, with the leaves' AS."""
    node = load(clab.DIRECTORY / "numbered.clab.yml")["topology"]["nodes"][f"node{index}"]
    interfaces: dict[str, list[Any]] = {}
    for command in node["exec"]:
        match = re.fullmatch(r"ip addr add (\S+) dev (\S+)", command)
        assert match is not None, command
        address, interface = match.groups()
        interfaces.setdefault(interface, []).append(ipaddress.ip_interface(address))
    addresses = NodeAddresses({name: tuple(found) for name, found in interfaces.items()})
    config = load_config(node_config("numbered", index))
    resolved = resolve_peers(
        config.model_copy(update={"node_name": f"node{index}"}), None, addresses
    )
    assert resolved.problems == ()
    found = {(str(peer.address), peer.asn) for peer in resolved.peers}
    expected = set()
    for leaf in (1, 2):
        text = (clab.DIRECTORY / f"configs/leaf{leaf}-numbered.conf").read_text()
        for address in re.findall(
            rf"^interface eth{index}\n ip address (\S+)/31\n ipv6 address (\S+)/127", text, re.M
        )[0]:
            expected.add((address, 65100 + leaf))
    assert found == expected
