"""The offline commands: ``check-config`` and ``plan`` (golden file), exit codes and messages."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cosmolet.cli import main

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "lab/examples"
GOLDEN = ROOT / "tests/golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def check_golden(name: str, text: str) -> None:
    """Compare with ``tests/golden/NAME``; ``UPDATE_GOLDEN=1`` rewrites it."""
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs; rerun with UPDATE_GOLDEN=1 if intended"


def test_check_config_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(EXAMPLES / "config.yaml")]) == 0
    out = capsys.readouterr().out
    assert "valid: mode numbered, AS 65001, 2 peers" in out


def test_check_config_invalid_lists_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "bgp:\n  asn: 65001\n  peers:\n    - {address: 192.0.2.0, asn: 65101}\n"
        "    - {address: 192.0.2.2, asn: banana}\nservics: {}\n"
    )
    assert main(["check-config", str(bad)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2
    assert any("bgp.peers[1].asn: expected an AS number 1-" in line for line in lines)
    assert any("servics: unknown key" in line for line in lines)


def test_plan_of_the_examples_matches_golden(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "plan",
            "--config",
            str(EXAMPLES / "config.yaml"),
            "--objects",
            str(EXAMPLES / "objects.json"),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    check_golden("plan-examples.json", out)
    plan = json.loads(out)
    skipped_codes = {item["code"] for item in plan["skipped"]}
    # The examples exercise every rule: each skip reason but the node-level and maxRoutes ones.
    assert skipped_codes >= {
        "bad-annotation",
        "no-ready-endpoints",
        "not-allowed",
        "external-name",
        "headless",
        "not-selected",
        "no-local-endpoints",
        "malformed",
        "opted-out",
    }


def test_plan_accepts_yaml_documents(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    objects = tmp_path / "objects.yaml"
    objects.write_text(
        "kind: Service\nmetadata: {name: web, namespace: default}\n"
        "spec: {clusterIPs: [10.96.0.10]}\n---\n"
        "kind: EndpointSlice\nmetadata: {name: web-1, namespace: default, labels: "
        "{kubernetes.io/service-name: web}}\naddressType: IPv4\n"
        "endpoints: [{addresses: [10.1.1.1]}]\n"
    )
    code = main(
        [
            "plan",
            "--config",
            str(EXAMPLES / "config.yaml"),
            "--node",
            "n9",
            "--objects",
            str(objects),
        ]
    )
    assert code == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["node"] == "n9"
    assert [route["prefix"] for route in plan["routes"]] == ["10.96.0.10/32"]


@pytest.mark.parametrize(
    "content",
    [
        None,
        "{not: [json",
        "\x00\x01",
        "",  # kubectl get ... > file: truncated first, written a moment later
        " \n",
        '{"apiVersion": "v1", "kind": "List", "items": [{"kind": "Serv',
        "apiVersion: v1\nitems:\n- kind: Service\n  metadata: {name: web}\n",  # kind comes last
        '"a string"',
        "[" * 100_000,
        "a:\n" + "- " * 100_000 + "x\n",
    ],
)
def test_plan_unreadable_objects_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None
) -> None:
    path = tmp_path / "objects"
    if content is not None:
        path.write_text(content)
    code = main(["plan", "--config", str(EXAMPLES / "config.yaml"), "--objects", str(path)])
    assert code == 2
    assert str(path) in capsys.readouterr().err


def test_check_config_refuses_with_the_field_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "bgp:\n  asn: true\n  interfaces: ['']\n  peers:\n"
        "    - {address: 192.0.2.1, asn: 65101}\n    - {address: 192.0.2.1, asn: 65101}\n"
        "    - {address: 'fe80::1%eth0', asn: 65101, families: [ipv6, ipv6]}\n"
        "loopIntervalSeconds: 0\n"
    )
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    for expected in (
        "bgp.asn: Input should be a valid integer (got True)",
        "bgp.interfaces[0]: expected an interface name or glob",
        "bgp.peers[2].address: fe80::1%eth0 carries a zone",
        "bgp.peers[2].families: expected each family once",
        "loopIntervalSeconds: Input should be greater than or equal to 1",
    ):
        assert f"{bad}: {expected}" in err, err


def test_check_config_refuses_duplicate_peers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "bgp:\n  asn: 65001\n  peers:\n    - {address: 192.0.2.1, asn: 65101}\n"
        "    - {address: 192.0.2.1, asn: 65102}\n"
    )
    assert main(["check-config", str(bad)]) == 2
    assert f"{bad}: bgp.peers[1]: same address as bgp.peers[0]" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("node_ip", "node_name", "warned"),
    [
        (None, "", True),
        ("fd00::5", "", False),  # derived from the IPv6 NODE_IP
        (None, "n1", False),  # derived from the node's name
        ("10.0.0.5", "", False),
    ],
)
def test_check_config_warns_when_no_router_id_can_be_derived(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    node_ip: str | None,
    node_name: str,
    warned: bool,
) -> None:
    if node_ip is None:
        monkeypatch.delenv("NODE_IP", raising=False)
    else:
        monkeypatch.setenv("NODE_IP", node_ip)
    monkeypatch.delenv("NODE_NAME", raising=False)
    config = tmp_path / "hybrid.yaml"
    name = f"nodeName: {node_name}\n" if node_name else ""
    config.write_text(f"mode: hybrid\n{name}bgp:\n  asn: 65001\n  interfaces: [eth1]\n")
    assert main(["check-config", str(config)]) == 0
    captured = capsys.readouterr()
    assert "valid: mode hybrid" in captured.out
    assert (f"{config}: warning: bgp.routerId: " in captured.err) is warned, captured.err
    if warned:
        assert "NODE_IP" in captured.err


def test_check_config_warns_about_keys_the_mode_ignores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "numbered.yaml"
    config.write_text(
        "nodeName: n1\nbgp:\n  asn: 65001\n  routerId: 192.0.2.1\n  interfaces: [eth1]\n"
        "  peers: [{address: 192.0.2.0, asn: 65101}]\n"
        "services: {namespaces: [a], excludeNamespaces: [a]}\n"
    )
    assert main(["check-config", str(config)]) == 0
    warnings = capsys.readouterr().err.strip().splitlines()
    assert warnings == [
        f"{config}: warning: bgp.interfaces: ignored in numbered mode (a hybrid mode setting)",
        f"{config}: warning: services.excludeNamespaces[0]: 'a' is also in services.namespaces: "
        "excluded wins, so nothing there is advertised",
    ]


@pytest.mark.parametrize("command", ["check-config", "plan"])
def test_a_deeply_nested_config_exits_2_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("bgp: " + "[" * 100_000 + "\n")
    args = [deep.as_posix()] if command == "check-config" else ["--config", str(deep)]
    objects = ["--objects", str(EXAMPLES / "objects.json")] if command == "plan" else []
    assert main([command, *args, *objects]) == 2
    assert f"{deep}: nested too deeply" in capsys.readouterr().err


def test_each_log_line_is_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """A line and its newline in one write: unbuffered, another process's output sharing the
    stream could otherwise land between them (seen in the container's log)."""
    from cosmolet import logs

    writes: list[str] = []

    class Recorder:
        def write(self, text: str) -> int:
            writes.append(text)
            return len(text)

        def flush(self) -> None:
            pass

    monkeypatch.setattr("sys.stderr", Recorder())
    logs.configure("info", "json")
    logs.get("test").info("one line", key="value")
    assert len(writes) == 1 and writes[0].endswith("}\n") and '"one line"' in writes[0]
