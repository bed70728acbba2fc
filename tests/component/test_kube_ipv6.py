"""The agent's Kubernetes client over IPv6: the lab API server at ``https://[::1]``, TLS with
its certificate for ``::1``, and the Nodes listed page by page for the router id check."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client, config

from cosmolet.engine.router_ids import NodeIdentity
from cosmolet.kube import router_ids
from cosmolet.kube.client import InFlight, api_client
from cosmolet.kube.node import read_node
from lab.apiserver import serving_tls


def test_nodes_are_read_and_listed_over_https_at_ipv6_loopback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(router_ids, "PAGE", 2)  # three Nodes: two pages
    with serving_tls(tmp_path / "tls", host="::1") as api:
        assert api.url.startswith("https://[::1]:")
        admin = client.CoreV1Api(config.new_client_from_config(config_file=str(api.kubeconfig)))
        for index, address in enumerate(["fd00:255::1", "fd00:255::2", "10.0.0.3"], 1):
            annotations = {"cosmolet.io/router-id": "10.9.9.9"} if index == 2 else {}
            kind = "ExternalIP" if index == 3 else "InternalIP"
            body = {
                "metadata": {"name": f"node{index}", "annotations": annotations},
                "status": {"addresses": [{"type": kind, "address": address}]},
            }
            admin.create_node(body)  # type: ignore[arg-type]  # the client takes dicts
        kubeconfig = str(api.kubeconfig)
        node = read_node(kubeconfig, "node1")
        assert node is not None and node.metadata.name == "node1"
        found = router_ids.list_identities(api_client(kubeconfig), InFlight())
    assert sorted(found, key=lambda n: n.name) == [
        NodeIdentity("node1", None, ("fd00:255::1",)),
        NodeIdentity("node2", "10.9.9.9", ("fd00:255::2",)),
        NodeIdentity("node3", None, (), ("10.0.0.3",)),
    ]
