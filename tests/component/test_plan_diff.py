"""``cosmolet diff``: every node's routes under the old and the new config, from an objects file
or from the lab API server; exit 0 (no route changes), 1 (routes change), 2 (bad input)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from cosmolet.cli import main
from cosmolet.engine.model import Attributes, Family, Plan, Route, Skip, SkipCode
from cosmolet.plan_diff import diff_plans, format_text
from lab.apiserver import serving, write_kubeconfig
from lab.kube_client import request_body
from tests.factories import config_dict, endpoint, node, service, slice_

LB_CIDR = "198.51.100.0/24"


def objects() -> dict[str, Any]:
    """Two nodes; a ClusterIP Service with an endpoint on node2; a LoadBalancer Service with
    externalTrafficPolicy Local whose only endpoint is on node1."""
    items = [
        node("node1"),
        node("node2"),
        service("api", cluster_ips=("10.96.0.10",)),
        slice_("api", [endpoint(node="node2")]),
        service(
            "web",
            cluster_ips=("10.96.0.20",),
            type="LoadBalancer",
            external_policy="Local",
            lb_ips=["198.51.100.7"],
        ),
        slice_("web", [endpoint(node="node1")]),
    ]
    return {"apiVersion": "v1", "kind": "List", "items": items}


def write_config(path: Path, **http_and_bgp: Any) -> Path:
    data = config_dict(**http_and_bgp)
    del data["nodeName"]  # as the chart ships it: each agent's name comes from NODE_NAME
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    objects_file = tmp_path / "objects.json"
    objects_file.write_text(json.dumps(objects()))
    lb = {"loadBalancerIPs": {"enabled": True, "allowedCIDRs": [LB_CIDR]}}
    return {
        "objects": objects_file,
        "old": write_config(tmp_path / "old.yaml"),
        "new": write_config(tmp_path / "new.yaml", advertise=lb),
    }


def diff(*args: str | Path) -> int:
    return main(["diff", *map(str, args)])


def test_enabling_load_balancer_ips_adds_exactly_the_local_node_s_prefix(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = diff(
        "--old-config", files["old"], "--config", files["new"], "--objects", files["objects"]
    )
    assert code == 1
    assert capsys.readouterr().out == (
        "node node1: 1 added, 0 removed, 0 changed\n"
        "  + 198.51.100.7/32            default/web\n"
        "  skipped items: 0 new, 1 gone (cosmolet plan lists them)\n"  # kind-disabled
        "node node2: no route changes\n"  # no local endpoint: kind-disabled, now no-local-...
        "  skipped items: 1 new, 1 gone (cosmolet plan lists them)\n"
        "routes change on 1 of 2 nodes: 1 added, 0 removed, 0 changed\n"
    )


def test_json_lists_every_node(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    args: list[str | Path] = ["--old-config", files["old"], "--config", files["new"]]
    args += ["--objects", files["objects"]]
    assert diff(*args, "--json") == 1
    data = json.loads(capsys.readouterr().out)
    assert data["changed"] is True
    by_node = {item["node"]: item for item in data["nodes"]}
    assert [route["prefix"] for route in by_node["node1"]["added"]] == ["198.51.100.7/32"]
    assert by_node["node1"]["added"][0]["services"] == ["default/web"]
    assert by_node["node1"]["removed"] == by_node["node1"]["changed"] == []
    assert by_node["node2"]["added"] == [] and by_node["node2"]["skipsAdded"] == 1
    assert by_node["node1"]["skipsRemoved"] == 1


def test_the_reverse_change_removes_it_and_one_node_can_be_asked(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args: list[str | Path] = ["--old-config", files["new"], "--config", files["old"]]
    args += ["--objects", files["objects"]]
    assert diff(*args, "--node", "node1") == 1
    out = capsys.readouterr().out
    assert "  - 198.51.100.7/32            default/web\n" in out
    assert "node2" not in out and "routes change on 1 of 1 nodes" in out
    assert diff(*args, "--node", "node2") == 0
    assert "node node2: no route changes\n" in capsys.readouterr().out


def test_no_change_exits_0(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        diff("--old-config", files["new"], "--config", files["new"], "--objects", files["objects"])
        == 0
    )
    assert capsys.readouterr().out == "no route changes on 2 nodes\n"


def test_attribute_changes_are_shown_field_by_field(
    tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data = config_dict()
    data["bgp"]["localPreference"] = 200
    data["bgp"]["communities"] = ["65001:1"]
    new = tmp_path / "attrs.yaml"
    new.write_text(yaml.safe_dump(data))
    assert diff("--old-config", files["old"], "--config", new, "--objects", files["objects"]) == 1
    out = capsys.readouterr().out
    assert (
        "  ~ 10.96.0.10/32              communities - -> 65001:1; localPreference - -> 200\n" in out
    )
    assert "routes change on 2 of 2 nodes: 0 added, 0 removed, 4 changed" in out


def test_a_service_joining_a_shared_prefix_is_no_change_on_the_wire() -> None:
    route = Route("10.96.0.1/32", Family.IPV4, ("a/x",), Attributes())
    shared = Route(route.prefix, route.family, ("a/x", "a/y"), Attributes())
    skip = Skip("a/z", SkipCode.HEADLESS, "headless")
    result = diff_plans(Plan("n", (route,)), Plan("n", (shared,), (skip,)))
    assert not result.routes_change and result.skips_added == 1
    assert format_text([result]) == (
        "node n: no route changes\n"
        "  skipped items: 1 new, 0 gone (cosmolet plan lists them)\n"
        "no route changes on 1 node"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--config", "NEW", "--objects", "OBJ"], "give --old-config FILE"),
        (["--old-config", "BAD", "--config", "NEW", "--objects", "OBJ"], "unknown key"),
        (["--old-config", "OLD", "--config", "NEW", "--objects", "MISSING"], "cannot read"),
        (["--old-config", "OLD", "--config", "NEW", "--objects", "EMPTY"], "no Node objects"),
    ],
)
def test_bad_input_exits_2(
    files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("bgp: {asn: 65001}\nservics: {}\n")
    empty = tmp_path / "empty.json"
    empty.write_text('{"apiVersion": "v1", "kind": "List", "items": []}')
    paths = {
        "NEW": files["new"],
        "OLD": files["old"],
        "OBJ": files["objects"],
        "BAD": bad,
        "MISSING": tmp_path / "missing.json",
        "EMPTY": empty,
    }
    assert diff(*(paths.get(arg, arg) for arg in args)) == 2
    err = capsys.readouterr().err
    assert message in err
    if message.startswith("give --old-config"):
        assert "http.statusListen" in err  # why the agents cannot be asked


def test_objects_and_kubeconfig_are_exclusive(files: dict[str, Path]) -> None:
    with pytest.raises(SystemExit) as exit_:
        diff(
            "--old-config",
            files["old"],
            "--config",
            files["new"],
            "--objects",
            files["objects"],
            "--kubeconfig",
            files["objects"],
        )
    assert exit_.value.code == 2


def test_an_unreachable_cluster_exits_2(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    write_kubeconfig(kubeconfig, "http://127.0.0.1:9")
    code = diff("--old-config", files["old"], "--config", files["new"], "--kubeconfig", kubeconfig)
    assert code == 2
    assert "diff: cannot reach the API server" in capsys.readouterr().err


def test_diff_against_the_lab_api_server(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serving() as (_, port):
        kubeconfig = tmp_path / "kubeconfig"
        write_kubeconfig(kubeconfig, f"http://127.0.0.1:{port}")
        api = config.new_client_from_config(config_file=str(kubeconfig))
        core, discovery = client.CoreV1Api(api), client.DiscoveryV1Api(api)
        for item in objects()["items"]:
            body: Any = request_body(item)  # the client takes dicts as well as its models
            if item["kind"] == "Node":
                core.create_node(body)
            elif item["kind"] == "Service":
                core.create_namespaced_service("default", body)
            else:
                discovery.create_namespaced_endpoint_slice("default", body)
        args: list[str | Path] = ["--old-config", files["old"], "--config", files["new"]]
        args += ["--kubeconfig", kubeconfig]
        assert diff(*args) == 1
    out = capsys.readouterr().out
    assert "node node1: 1 added, 0 removed, 0 changed\n  + 198.51.100.7/32" in out
    assert "routes change on 1 of 2 nodes" in out
