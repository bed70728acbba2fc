"""``cosmolet start`` reads this node's Node once, before ExaBGP starts, so that ExaBGP's first
configuration has the node's own AS and selector peers; when it cannot, it starts without it
(logged) and the agent corrects the configuration once it has listed the Node."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import yaml

from cosmolet.config.schema import validate
from cosmolet.exabgp import sessions as sessions_file
from cosmolet.exabgp import supervisor
from lab.apiserver import write_kubeconfig
from tests.factories import node as node_dict


def objects(tmp_path: Path, *items: object) -> str:
    path = tmp_path / "objects.json"
    path.write_text(json.dumps({"kind": "List", "items": list(items)}))
    return str(path)


def test_the_node_from_the_objects_file(tmp_path: Path) -> None:
    path = objects(tmp_path, node_dict("node2", {"rack": "r2"}), node_dict("node1"))
    found = supervisor.read_node("node2", path, None)
    assert found is not None and found.metadata.labels == {"rack": "r2"}
    assert supervisor.read_node("node9", path, None) is None


def test_an_unreachable_api_server_is_logged_and_start_goes_on_without_the_node(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    write_kubeconfig(kubeconfig, f"http://127.0.0.1:{port}")
    assert supervisor.read_node("node1", None, str(kubeconfig)) is None
    assert "cannot read this node's Node" in "".join(capsys.readouterr())


def test_prepare_renders_with_the_node_and_records_the_sessions(tmp_path: Path) -> None:
    config = validate(
        {
            "nodeName": "node2",
            "runtimeDir": str(tmp_path / "run"),
            "bgp": {
                "asn": 65001,
                "routerId": "192.0.2.2",
                "peers": [
                    {
                        "address": "192.0.2.254",
                        "asn": 65000,
                        "localAddress": "192.0.2.2",
                        "nodeSelector": {"matchLabels": {"rack": "r2"}},
                    }
                ],
            },
        }
    )
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump({}))
    node = supervisor.read_node(
        "node2",
        objects(
            tmp_path, node_dict("node2", {"rack": "r2"}, annotations={"cosmolet.io/asn": "65002"})
        ),
        None,
    )
    conf = supervisor.prepare(config, config_path, [], node)
    assert "local-as 65002;" in conf.read_text() and "neighbor 192.0.2.254 {" in conf.read_text()
    in_force = sessions_file.load(tmp_path / "run" / "exabgp-sessions.json")
    assert in_force is not None
    assert (in_force.asn, [str(s.peer) for s in in_force.sessions]) == (65002, ["192.0.2.254"])
