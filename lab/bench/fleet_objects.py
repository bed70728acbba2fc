"""The Kubernetes objects both fleet benchmarks write (``lab.bench.fleet_nodes``,
``lab.bench.economy_cluster``): how their Services are named, and their EndpointSlices."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def service_names(index: int) -> tuple[str, str]:
    """(namespace, name) of Service ``index``; its EndpointSlice is ``<name>-x1``."""
    return f"ns-{index % 20}", f"svc-{index}"


def endpoint_slice(index: int, endpoints: Iterable[tuple[int, bool]]) -> dict[str, Any]:
    """Service ``index``'s EndpointSlice: an endpoint on each (node, ready) of ``endpoints``."""
    namespace, name = service_names(index)
    return {
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{name}-x1",
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": name},
        },
        "addressType": "IPv4",
        "endpoints": [
            {
                "addresses": [f"10.244.{node}.{index % 250 + 2}"],
                "nodeName": f"node{node}",
                "conditions": {"ready": up},
            }
            for node, up in endpoints
        ],
        "ports": [{"port": 5000, "protocol": "UDP"}],
    }
