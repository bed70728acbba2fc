"""The operator documents (``docs/switch-side.md``, ``docs/troubleshooting.md``,
``docs/upgrading.md``) checked against what they describe, so that they cannot drift:

- every ``frr`` block is parsed by FRR itself (``vtysh --dryrun``), and the leaf and spine
  blocks keep the statements the lab's switches run (``lab/frr_configs.py``, the configurations
  the integration tests and the demo use); ``tests/integration/test_switch_side_docs.py`` runs
  the two leaf blocks against real cosmolet nodes;
- every ``cosmolet`` command in a ``sh`` block parses with cosmolet's own argument parser;
- every skip code is explained, every metric named exists (and the removed one does not), and
  every config key named is in the config's schema.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cosmolet.cli import build_parser
from cosmolet.engine.model import SkipCode
from lab.frr_configs import UCMP_ROUTE_MAP, Neighbor, numbered_router, spine, unnumbered_leaf

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SWITCH_SIDE = DOCS / "switch-side.md"
TROUBLESHOOTING = DOCS / "troubleshooting.md"
UPGRADING = DOCS / "upgrading.md"
OPERATOR_DOCS = (SWITCH_SIDE, TROUBLESHOOTING, UPGRADING)

#: Metrics the docs name as removed in this release: they must no longer exist.
REMOVED_METRICS = {"cosmolet_bgp_session_uptime_seconds"}

_FENCE = re.compile(r"^```(\S*)[^\n]*\n(.*?)^```$", re.MULTILINE | re.DOTALL)
_TAG = re.compile(r"^! docs: (\S+)$", re.MULTILINE)


def fenced(path: Path, language: str) -> list[str]:
    """The bodies of the ``language`` fenced blocks of a Markdown file, in order."""
    return [body for lang, body in _FENCE.findall(path.read_text()) if lang == language]


def frr_blocks() -> dict[str, str]:
    """The ``frr`` blocks of the switch-side page by their ``! docs: TAG`` first line."""
    blocks = {}
    for body in fenced(SWITCH_SIDE, "frr"):
        tag = _TAG.match(body)
        assert tag, f"an frr block without a '! docs: TAG' first line:\n{body}"
        assert tag[1] not in blocks, f"two frr blocks tagged {tag[1]}"
        blocks[tag[1]] = body
    return blocks


def frr_block(tag: str) -> str:
    """One ``frr`` block of ``docs/switch-side.md``, as a configuration file's text."""
    return frr_blocks()[tag]


# --- FRR's parser ------------------------------------------------------------------------------


def dryrun(text: str, directory: Path) -> subprocess.CompletedProcess[str]:
    conf = directory / "frr.conf"
    conf.write_text(text)
    return subprocess.run(
        ["vtysh", "--dryrun", "-f", str(conf)], capture_output=True, text=True, check=False
    )


def test_the_page_has_the_blocks_the_other_tests_use() -> None:
    assert {
        "numbered-leaf",
        "numbered-leaf-traditional",
        "unnumbered-leaf",
        "unnumbered-spine",
        "ucmp-leaf-to-spine",
    } <= set(frr_blocks())


@pytest.mark.parametrize("tag", sorted(frr_blocks()))
def test_frr_accepts_the_block(tag: str, tmp_path: Path) -> None:
    block = frr_block(tag)
    result = dryrun(block, tmp_path)
    assert result.returncode == 0, (
        f"vtysh --dryrun refused the '{tag}' block of {SWITCH_SIDE.name}:\n"
        f"{result.stdout}{result.stderr}\n--- the block ---\n{block}"
    )


def test_the_dryrun_check_can_fail(tmp_path: Path) -> None:
    """A misspelt command in a block is refused, so the test above means something."""
    block = frr_block("numbered-leaf").replace(
        " neighbor NODES-V4 remote-as", " neighbr NODES-V4 remote-as", 1
    )
    assert dryrun(block, tmp_path).returncode != 0


# --- the same statements as the lab's switches -------------------------------------------------


def statements(config: str) -> list[str]:
    """The configuration's lines without comments, stripped."""
    lines = (line.strip() for line in config.splitlines())
    return [line for line in lines if line and not line.startswith("!")]


def groups_of(config: str) -> dict[str, str]:
    """Interface neighbors: interface -> peer group."""
    found = (
        re.fullmatch(r"neighbor (\S+) interface peer-group (\S+)", s) for s in statements(config)
    )
    return {m[1]: m[2] for m in found if m}


def remote_as(config: str) -> dict[str, str]:
    found = (re.fullmatch(r"neighbor (\S+) remote-as (\S+)", s) for s in statements(config))
    return {m[1]: m[2] for m in found if m}


def in_families(config: str, pattern: str) -> dict[str, set[str]]:
    """Address family -> the first group of each of its statements matching ``pattern``."""
    result: dict[str, set[str]] = {}
    family = ""
    for line in statements(config):
        if line.startswith("address-family "):
            family = line.split()[1]
        elif line == "exit-address-family":
            family = ""
        elif family and (m := re.fullmatch(pattern, line)):
            result.setdefault(family, set()).add(m[1])
    return result


def activated(config: str) -> dict[str, set[str]]:
    """Address family -> the neighbors or groups activated in it."""
    return in_families(config, r"neighbor (\S+) activate")


def interface_blocks(config: str) -> dict[str, list[str]]:
    """``interface X`` stanzas: name -> their statements."""
    result: dict[str, list[str]] = {}
    current: list[str] | None = None
    for raw in config.splitlines():
        if m := re.fullmatch(r"interface (\S+)", raw):
            current = result.setdefault(m[1], [])
        elif raw.startswith(" ") and current is not None:
            current.append(raw.strip())
        else:
            current = None
    return result


LAB_NODES_AS = "65001"  # lab.numbered / lab.fabric: every node is in AS 65001
LAB_NUMBERED = numbered_router(
    "leaf1",
    65101,
    "10.255.0.1",
    [Neighbor("10.1.1.1", int(LAB_NODES_AS)), Neighbor("fd10:1:1::1", int(LAB_NODES_AS))],
)
LAB_LEAF = unnumbered_leaf("leaf1", 65101, "10.255.0.1", ["eth1", "eth2"], bfd=True)
LAB_SPINE = spine("spine", 65000, "10.255.0.100", ["eth1", "eth2"])


@pytest.mark.parametrize("tag", ["numbered-leaf", "unnumbered-leaf", "unnumbered-spine"])
def test_the_blocks_keep_the_lab_profile_timers_and_graceful_restart(tag: str) -> None:
    lab = {"numbered-leaf": LAB_NUMBERED, "unnumbered-leaf": LAB_LEAF}.get(tag, LAB_SPINE)
    for shape in (r"frr defaults datacenter", r"bgp graceful-restart", r"neighbor \S+ timers 3 9"):
        assert any(re.fullmatch(shape, s) for s in statements(lab)), f"the lab lost {shape!r}"
        assert any(re.fullmatch(shape, s) for s in statements(frr_block(tag))), (
            f"the '{tag}' block lacks {shape!r}, which the lab's switches run"
        )


def test_numbered_leaf_peers_with_the_lab_nodes_as_and_covers_their_addresses() -> None:
    lab_peers = remote_as(LAB_NUMBERED)
    assert set(lab_peers.values()) == {LAB_NODES_AS}
    doc = frr_block("numbered-leaf")
    groups = remote_as(doc)
    ranges = dict(
        (ipaddress.ip_network(m[1]), m[2])
        for s in statements(doc)
        if (m := re.fullmatch(r"bgp listen range (\S+) peer-group (\S+)", s))
    )
    for peer in lab_peers:  # the lab's nodes would be accepted, in a group of their AS
        group = next(g for net, g in ranges.items() if ipaddress.ip_address(peer) in net)
        assert groups[group] == LAB_NODES_AS
    # Each cosmolet session carries one family: one group per family, as the lab activates.
    assert set(activated(LAB_NUMBERED)) == set(activated(doc)) == {"ipv4", "ipv6"}
    assert not activated(doc)["ipv4"] & activated(doc)["ipv6"]


def test_unnumbered_leaf_peers_as_the_lab_leaves_do() -> None:
    doc = frr_block("unnumbered-leaf")
    for config in (LAB_LEAF, doc):
        groups, peers_as, families = groups_of(config), remote_as(config), activated(config)
        assert groups, "no `neighbor X interface peer-group Y`"
        for interface, group in groups.items():
            assert peers_as[group] == "external"
            assert all(group in families[f] for f in ("ipv4", "ipv6"))
            stanza = interface_blocks(config)[interface]
            assert "no ipv6 nd suppress-ra" in stanza
            assert any(re.fullmatch(r"ipv6 nd ra-interval \d+", s) for s in stanza)
        # BFD toward the nodes through a profile, as the lab's BFD leaves.
        assert any(re.fullmatch(r"neighbor \S+ bfd profile \S+", s) for s in statements(config))
        for timer in ("receive-interval", "transmit-interval", "detect-multiplier"):
            assert any(s.startswith(timer + " ") for s in statements(config))


def test_spine_relaxes_the_as_path_as_the_lab_spine_does() -> None:
    for config in (LAB_SPINE, frr_block("unnumbered-spine")):
        assert "bgp bestpath as-path multipath-relax" in statements(config)
        assert set(groups_of(config).values()) == {"fabric"}


def test_ucmp_block_re_advertises_the_sum_as_the_lab_leaves_do() -> None:
    """The leaves' cumulative link bandwidth towards the spine (weighted ECMP), in both
    families, with the lab's route-map statements."""
    for config in (LAB_LEAF, frr_block("ucmp-leaf-to-spine")):
        found = statements(config)
        assert all(line.strip() in found for line in UCMP_ROUTE_MAP if line != "!")
        applied = in_families(config, r"neighbor (\S+) route-map UCMP out")
        assert set(applied) == {"ipv4", "ipv6"}


# --- cosmolet commands, skip codes, metrics, config keys ---------------------------------------

_PROCESS_SUBSTITUTION = re.compile(r"<\([^)]*\)")
#: ``cosmolet`` as a command word (not ``cosmolet-system``, ``-c cosmolet --``, ``=cosmolet``).
_COMMAND = re.compile(r"(?:^|(?<=[\s(]))cosmolet (?=[a-z])")


def cosmolet_commands() -> list[tuple[Path, str]]:
    """Every ``cosmolet ...`` command line in the ``sh`` blocks of the operator docs."""
    found = []
    for path in OPERATOR_DOCS:
        for body in fenced(path, "sh"):
            for line in body.replace("\\\n", " ").splitlines():
                command = line.split(" #", 1)[0].strip()
                if match := _COMMAND.search(command):
                    found.append((path, command[match.start() :]))
    return found


def test_the_docs_show_cosmolet_commands() -> None:
    subcommands = {shlex.split(command)[1] for _, command in cosmolet_commands()}
    assert {"status", "plan", "check-config", "diff"} <= subcommands


@pytest.mark.parametrize("where,command", cosmolet_commands(), ids=lambda x: str(x)[-60:])
def test_cosmolet_command_parses(where: Path, command: str) -> None:
    argv = shlex.split(_PROCESS_SUBSTITUTION.sub("FILE", command))
    assert argv[0] == "cosmolet"
    try:
        build_parser().parse_args(argv[1:])
    except SystemExit as error:
        pytest.fail(f"{where.name}: `{command}` is not a valid cosmolet command ({error})")


def test_every_skip_code_is_explained() -> None:
    table = TROUBLESHOOTING.read_text()
    rows = set(re.findall(r"^\| `([a-z-]+)` \|", table, re.MULTILINE))
    assert rows == {str(code) for code in SkipCode}, "the skip code table and SkipCode differ"


def metric_names() -> set[str]:
    """The metric families cosmolet defines (a counter's ``_total`` is added on exposition)."""
    names = set()
    for module in (ROOT / "cosmolet").rglob("*.py"):
        names |= set(re.findall(r'"(cosmolet_[a-z_]+)"', module.read_text()))
    return names


def test_metrics_named_exist_and_removed_ones_do_not() -> None:
    defined = metric_names()
    named = set()
    for path in OPERATOR_DOCS:
        named |= set(re.findall(r"\b(cosmolet_[a-z_]*[a-z])\b", path.read_text()))
    assert named - REMOVED_METRICS, "no metric named"
    for metric in named - REMOVED_METRICS:
        assert metric in defined or metric.removesuffix("_total") in defined, (
            f"{metric} is not a metric cosmolet defines"
        )
    for metric in REMOVED_METRICS:
        assert metric in named and metric not in defined


def _schema_has(schema: dict[str, Any], node: dict[str, Any], path: list[str]) -> bool:
    while "$ref" in node or "anyOf" in node or node.get("type") == "array":
        if "$ref" in node:
            node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
        elif "anyOf" in node:
            node = next((n for n in node["anyOf"] if n.get("type") != "null"), {})
        else:
            node = node.get("items", {})
    if not path:
        return True
    child = node.get("properties", {}).get(path[0])
    return child is not None and _schema_has(schema, child, path[1:])


_CONFIG_KEY = re.compile(
    r"`((?:bgp|services|http|node|shutdown|kubernetes|events|logging)\.[A-Za-z.\[\]]+)`"
)


def test_config_keys_named_are_in_the_schema() -> None:
    schema = json.loads((ROOT / "charts" / "cosmolet" / "values.schema.json").read_text())
    config = schema["properties"]["config"]
    keys = set()
    for path in OPERATOR_DOCS:
        keys |= set(_CONFIG_KEY.findall(path.read_text()))
    assert "services.healthHold.riseSeconds" in keys and "http.statusListen" in keys
    for key in keys:
        parts = key.replace("[]", "").split(".")
        assert _schema_has(schema, config, parts), f"`{key}` is not a config key"
