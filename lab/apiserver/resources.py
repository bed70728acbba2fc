"""The kinds the lab API server serves, its error type, and its discovery documents.

Discovery is what ``kubectl`` and the official client read first (``/api``, ``/apis``,
``/api/v1``, ``/apis/discovery.k8s.io/v1``, ``/version``) to learn which resources exist and
which verbs they take, so these documents must describe exactly the kinds in ``RESOURCES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]
# The release whose API this server speaks: /version, and the OpenAPI schemas it serves.
KUBERNETES_VERSION = (1, 30)
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class Resource:
    """One served kind: where it lives in the URL space and whether it is namespaced."""

    group: str  # "" for core
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()


RESOURCES = [
    Resource("", "v1", "services", "Service", True, ("svc",)),
    Resource("", "v1", "nodes", "Node", False, ("no",)),
    Resource("", "v1", "namespaces", "Namespace", False, ("ns",)),
    Resource("", "v1", "events", "Event", True, ("ev",)),
    Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
]
BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
WITH_STATUS = {"services"}  # kinds whose /status subresource is advertised


class ApiError(Exception):
    """A failure the client must see as a Kubernetes ``Status`` with this HTTP code."""

    def __init__(self, code: int, reason: str, message: str, details: JSON | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.details = details  # the Status's ``details`` (403 names the resource), if any

    def status(self) -> JSON:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            **({"details": self.details} if self.details is not None else {}),
            "code": self.code,
        }


def version_info() -> JSON:
    major, minor = KUBERNETES_VERSION
    return {
        "major": str(major),
        "minor": str(minor),
        "gitVersion": f"v{major}.{minor}.0-cosmolet-lab",
        "platform": "linux/amd64",
    }


def api_versions() -> JSON:
    return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}


def _group(name: str) -> JSON:
    version = {"groupVersion": f"{name}/v1", "version": "v1"}
    return {"name": name, "versions": [version], "preferredVersion": version}


def api_group_list() -> JSON:
    groups = sorted({r.group for r in RESOURCES if r.group})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group(g) for g in groups]}


def api_group(name: str) -> JSON:
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name)}


def resource_list(group: str, version: str) -> JSON:
    """The ``APIResourceList`` of one group version; 404 for a group version not served."""
    served = [r for r in RESOURCES if r.group == group and r.version == version]
    if not served:
        raise ApiError(404, "NotFound", f"no API {group}/{version}")
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": [
            {
                "name": r.plural,
                "singularName": r.singular,
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": VERBS,
                **({"shortNames": list(r.short_names)} if r.short_names else {}),
            }
            for r in served
        ]
        + [
            {
                "name": f"{r.plural}/status",
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["get", "patch", "update"],
            }
            for r in served
            if r.plural in WITH_STATUS
        ],
    }
