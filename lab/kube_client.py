"""Small helpers for driving the lab's API server with the official client."""

from __future__ import annotations

from typing import Any

from kubernetes import client


def request_body(obj: dict[str, Any]) -> dict[str, Any]:
    """An object as a create request body (the client sets kind and apiVersion itself)."""
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


def put_endpoints(
    discovery: client.DiscoveryV1Api,
    service: str,
    endpoints: list[dict[str, Any]],
    slice_name: str,
    namespace: str = "default",
) -> None:
    """Set the endpoints of ``service``'s EndpointSlice ``slice_name``, creating it if needed."""
    try:
        discovery.patch_namespaced_endpoint_slice(slice_name, namespace, {"endpoints": endpoints})
    except client.ApiException as error:
        if error.status != 404:
            raise
        body: dict[str, Any] = {
            "metadata": {"name": slice_name, "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4",
            "endpoints": endpoints,
        }
        discovery.create_namespaced_endpoint_slice(namespace, body)  # type: ignore[arg-type]
