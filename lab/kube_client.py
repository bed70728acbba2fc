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
    address_type: str = "IPv4",
) -> None:
    """Set the endpoints of ``service``'s EndpointSlice ``slice_name``, creating it if needed
    (one slice per IP family, as the EndpointSlice controller makes them)."""
    try:
        discovery.patch_namespaced_endpoint_slice(slice_name, namespace, {"endpoints": endpoints})
    except client.ApiException as error:
        if error.status != 404:
            raise
        body: dict[str, Any] = {
            "metadata": {"name": slice_name, "labels": {"kubernetes.io/service-name": service}},
            "addressType": address_type,
            "endpoints": endpoints,
        }
        discovery.create_namespaced_endpoint_slice(namespace, body)  # type: ignore[arg-type]


def _collection(obj: dict[str, Any]) -> str:
    plural = {"Service": "services", "EndpointSlice": "endpointslices"}[obj["kind"]]
    group = "/api/v1" if obj["kind"] == "Service" else "/apis/discovery.k8s.io/v1"
    return f"{group}/namespaces/{obj['metadata']['namespace']}/{plural}"


def _raw(api: client.ApiClient, method: str, path: str, body: Any = None) -> int:
    request = api.param_serialize(
        method=method,
        resource_path=path,
        header_params={"Content-Type": "application/json", "Accept": "application/json"},
        body=body,
    )
    response = api.call_api(*request)
    response.read()
    return int(response.status)


def create_raw(api: client.ApiClient, obj: dict[str, Any]) -> int:
    """POST ``obj`` as it is, past the client's own models (which refuse, say, an integer where
    an IP string belongs, on the way out and when reading the answer back): how a buggy or
    hostile writer's object reaches the API server. Returns the HTTP status."""
    return _raw(api, "POST", _collection(obj), obj)


def delete_raw(api: client.ApiClient, obj: dict[str, Any]) -> int:
    """DELETE ``obj`` without reading the answer into the client's models."""
    return _raw(api, "DELETE", f"{_collection(obj)}/{obj['metadata']['name']}")
