"""Builders of raw Kubernetes object dicts, as the API server or kubectl would write them."""

from __future__ import annotations

from typing import Any

CREATED = "2024-06-01T00:00:00Z"


def service(
    name: str,
    namespace: str = "default",
    cluster_ips: tuple[str, ...] | None = ("10.96.0.10",),
    *,
    type: str = "ClusterIP",
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    external_ips: list[str] | None = None,
    lb_ips: list[str] | None = None,
    lb_ip_modes: dict[str, str] | None = None,
    internal_policy: str | None = None,
    external_policy: str | None = None,
    created: str = CREATED,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": type}
    if cluster_ips is not None:
        spec["clusterIP"] = cluster_ips[0]
        spec["clusterIPs"] = list(cluster_ips)
    if external_ips is not None:
        spec["externalIPs"] = external_ips
    if internal_policy:
        spec["internalTrafficPolicy"] = internal_policy
    if external_policy:
        spec["externalTrafficPolicy"] = external_policy
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "creationTimestamp": created}
    if annotations is not None:
        metadata["annotations"] = annotations
    if labels is not None:
        metadata["labels"] = labels
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": spec,
    }
    if lb_ips is not None:
        modes = lb_ip_modes or {}
        ingress = [{"ip": ip, **({"ipMode": modes[ip]} if ip in modes else {})} for ip in lb_ips]
        obj["status"] = {"loadBalancer": {"ingress": ingress}}
    return obj


def endpoint(
    address: str = "10.244.0.5",
    node: str | None = "node1",
    ready: bool | None = True,
    terminating: bool | None = None,
    serving: bool | None = None,
) -> dict[str, Any]:
    conditions: dict[str, Any] = {}
    if ready is not None:
        conditions["ready"] = ready
    if serving is not None:
        conditions["serving"] = serving
    if terminating is not None:
        conditions["terminating"] = terminating
    result: dict[str, Any] = {"addresses": [address], "conditions": conditions}
    if node is not None:
        result["nodeName"] = node
    return result


def slice_(
    service_name: str,
    endpoints: list[dict[str, Any]] | None = None,
    namespace: str = "default",
    suffix: str = "abcde",
    address_type: str | None = "IPv4",
) -> dict[str, Any]:
    """An EndpointSlice; ``address_type=None`` leaves the field out (the API requires it)."""
    if endpoints is None:
        endpoints = [endpoint("fd00:244::5" if address_type == "IPv6" else "10.244.0.5")]
    obj: dict[str, Any] = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service_name}-{suffix}",
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "endpoints": endpoints,
    }
    if address_type is not None:
        obj["addressType"] = address_type
    return obj


def family_slices(
    service_name: str, addresses: tuple[str, ...], namespace: str = "default", **conditions: Any
) -> list[dict[str, Any]]:
    """One EndpointSlice per IP family of ``addresses`` (a Service's IPs), each with one endpoint,
    as the EndpointSlice controller makes them for a dual-stack Service. ``conditions``:
    ``endpoint``'s keywords (``node``, ``ready``, ``serving``, ``terminating``)."""
    families = {"IPv6" if ":" in address else "IPv4" for address in addresses}
    return [
        slice_(
            service_name,
            [endpoint("fd00:244::5" if family == "IPv6" else "10.244.0.5", **conditions)],
            namespace,
            suffix=family.lower(),
            address_type=family,
        )
        for family in sorted(families)
    ]


def node(
    name: str = "node1",
    labels: dict[str, str] | None = None,
    unschedulable: bool = False,
    taints: list[tuple[str, str]] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Node; ``taints`` as ``(key, effect)`` pairs."""
    spec: dict[str, Any] = {"unschedulable": True} if unschedulable else {}
    if taints:
        spec["taints"] = [{"key": key, "effect": effect} for key, effect in taints]
    metadata: dict[str, Any] = {"name": name, "labels": labels or {}}
    if annotations is not None:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Node", "metadata": metadata, "spec": spec}


def config_dict(**services: Any) -> dict[str, Any]:
    """A minimal valid config, with ``services`` overrides."""
    data: dict[str, Any] = {
        "nodeName": "node1",
        "bgp": {"asn": 65001, "peers": [{"address": "192.0.2.0", "asn": 65101}]},
    }
    if services:
        data["services"] = services
    return data
