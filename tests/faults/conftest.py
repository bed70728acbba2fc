"""The fault suite's fabric: a numbered FRR leaf, one cosmolet node on the Kubernetes source,
and the lab API server as a process of its own (so that it can be stopped and restarted), with
a hundred healthy Services. Every fault test samples what the leaf holds while the fault runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from lab.apiserver import free_port, serving, start_host_apiserver, write_kubeconfig
from lab.kube_client import request_body
from lab.netns import Lab, wait_for
from lab.node import Cosmolet
from lab.numbered import NumberedFabric, build_numbered
from tests.factories import endpoint, service, slice_
from tests.integration.conftest import lab  # noqa: F401 - the fixture

SERVICES = 100


@dataclass
class Faulty:
    lab: Lab
    fabric: NumberedFabric
    node: Cosmolet
    port: int
    kubeconfig: Path
    state: Path
    server: Any
    ready: dict[str, bool] = field(default_factory=dict)

    @property
    def discovery(self) -> client.DiscoveryV1Api:
        return client.DiscoveryV1Api(config.new_client_from_config(str(self.kubeconfig)))

    def set_ready(self, index: int, ready: bool, api: client.DiscoveryV1Api | None = None) -> None:
        (api or self.discovery).patch_namespaced_endpoint_slice(
            f"s{index}-abcde", "default", {"endpoints": [endpoint(ready=ready)]}
        )
        self.ready[ip(index)] = ready

    def expected(self) -> set[str]:
        return {f"{address}/32" for address, ready in self.ready.items() if ready}

    def start_apiserver(self) -> None:
        self.server = start_host_apiserver(
            self.lab, self.port, self.kubeconfig, self.state, self.fabric.node.name
        )

    def leaf_fib(self) -> set[str]:
        return self.fabric.fib(4)

    def converged(self, timeout: float = 30) -> None:
        expected = self.expected()
        try:
            wait_for(lambda: set(self.fabric.rib()) == expected, timeout, 0.1, "the exact set")
        except TimeoutError:
            rib = set(self.fabric.rib())
            raise AssertionError(
                f"the leaf's RIB is not the expected set: missing {sorted(expected - rib)[:5]}, "
                f"extra {sorted(rib - expected)[:5]} ({len(rib)} held, {len(expected)} expected)"
            ) from None
        wait_for(lambda: self.leaf_fib() == expected, timeout, 0.05, "the exact FIB")


def ip(index: int) -> str:
    return f"10.96.{index // 250}.{index % 250 + 1}"


@pytest.fixture
def faulty(lab: Lab) -> Iterator[Faulty]:  # noqa: F811 - the fixture above
    fabric = build_numbered(lab)
    port, state, kubeconfig = (
        free_port(),
        lab.workdir / "apiserver.json",
        lab.workdir / "kubeconfig",
    )
    harness = Faulty(lab, fabric, None, port, kubeconfig, state, None)
    harness.start_apiserver()
    api = config.new_client_from_config(str(kubeconfig))
    core, discovery = client.CoreV1Api(api), client.DiscoveryV1Api(api)
    for index in range(SERVICES):
        core.create_namespaced_service(
            "default", request_body(service(f"s{index}", cluster_ips=(ip(index),)))
        )
        discovery.create_namespaced_endpoint_slice("default", request_body(slice_(f"s{index}")))
        harness.ready[ip(index)] = True
    node = fabric.cosmolet(kubeconfig=kubeconfig)
    node.config["bgp"]["peers"] = node.config["bgp"]["peers"][:1]  # IPv4 only: one session
    node.__post_init__()
    harness.node = node.start()
    harness.converged(60)
    wait_for(lambda: fabric.established(fabric.NODE_V4), 20)
    yield harness


@contextlib.contextmanager
def fabric_with_apiserver() -> Iterator[tuple[Lab, NumberedFabric, Path, client.ApiClient]]:
    """For module-scoped fixtures: a numbered fabric and the lab API server in this process
    (listening in the node's namespace too); yields the lab, fabric, kubeconfig and a client."""
    with Lab() as instance:
        fabric = build_numbered(instance)
        with serving(netns=[fabric.node.name]) as (_store, port):
            kubeconfig = instance.workdir / "kubeconfig"
            write_kubeconfig(kubeconfig, f"http://127.0.0.1:{port}")
            yield instance, fabric, kubeconfig, config.new_client_from_config(str(kubeconfig))
