"""The pod to run, read from rendered manifests: what the API server would hand the kubelet.

Pure: parsing and the decisions the kubelet makes before it starts anything (where the process
image comes from, which command, which environment, which identity, whether the node may run
the pod). Nothing here touches the system; ``volumes``, ``container`` and ``runner`` do.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lab.pod.image import Image

#: Kinds that make pods, and where their pod template is.
WORKLOADS = {"DaemonSet", "Deployment", "StatefulSet", "ReplicaSet", "Job"}
#: Tolerations the DaemonSet controller adds to every pod it makes.
DAEMONSET_TOLERATIONS = (
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
    "node.kubernetes.io/disk-pressure",
    "node.kubernetes.io/memory-pressure",
    "node.kubernetes.io/pid-pressure",
    "node.kubernetes.io/unschedulable",
    "node.kubernetes.io/network-unavailable",
)
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


class PodError(Exception):
    """What a kubelet would report instead of starting the pod (CreateContainerConfigError,
    a failed admission, a volume it cannot set up)."""


@dataclass(frozen=True)
class LabNode:
    """The node the pod runs on: a lab network namespace and the Node object's fields that the
    downward API and scheduling read."""

    name: str
    netns: str
    addresses: tuple[str, ...]  # InternalIP first: status.hostIP
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Mapping[str, str], ...] = ()

    @property
    def host_ip(self) -> str:
        return self.addresses[0]

    @classmethod
    def from_object(cls, node: Mapping[str, Any], netns: str) -> LabNode:
        """From a Node object (as given to the lab API server): InternalIP addresses first."""
        addresses = node.get("status", {}).get("addresses", [])
        ordered = [a["address"] for a in addresses if a.get("type") == "InternalIP"]
        ordered += [a["address"] for a in addresses if a.get("type") == "ExternalIP"]
        if not ordered:
            raise PodError(f"Node {node['metadata']['name']}: no InternalIP in status.addresses")
        return cls(
            node["metadata"]["name"],
            netns,
            tuple(ordered),
            dict(node["metadata"].get("labels") or {}),
            tuple(node.get("spec", {}).get("taints") or ()),
        )


@dataclass(frozen=True)
class Probe:
    """A liveness, readiness or startup probe with the kubelet's defaults."""

    handler: str  # httpGet, tcpSocket or exec
    spec: Mapping[str, Any]
    initial_delay: float = 0
    period: float = 10
    timeout: float = 1
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def parse(cls, probe: Mapping[str, Any] | None) -> Probe | None:
        if probe is None:
            return None
        handlers = [h for h in ("httpGet", "tcpSocket", "exec") if h in probe]
        if len(handlers) != 1:
            raise PodError(f"probe: one of httpGet, tcpSocket, exec expected, got {dict(probe)}")
        return cls(
            handlers[0],
            probe[handlers[0]],
            probe.get("initialDelaySeconds", 0),
            probe.get("periodSeconds", 10),
            probe.get("timeoutSeconds", 1),
            probe.get("successThreshold", 1),
            probe.get("failureThreshold", 3),
        )


@dataclass(frozen=True)
class Identity:
    """Who a container's process is, and what it may do."""

    uid: int
    gid: int
    groups: tuple[int, ...]
    #: the capability set (names without CAP_, lower case); a non-root process keeps none
    capabilities: frozenset[str]
    no_new_privs: bool
    read_only_root: bool


#: containerd's and Docker's default capabilities, which ``capabilities.add/drop`` start from.
RUNTIME_DEFAULT_CAPS = frozenset(
    {
        *("chown", "dac_override", "fowner", "fsetid", "kill", "setgid", "setuid", "setpcap"),
        *("net_bind_service", "net_raw", "sys_chroot", "mknod", "audit_write", "setfcap"),
    }
)


@dataclass(frozen=True)
class Container:
    name: str
    raw: Mapping[str, Any]

    @property
    def probes(self) -> dict[str, Probe]:
        found = {}
        for kind in ("startup", "liveness", "readiness"):
            probe = Probe.parse(self.raw.get(f"{kind}Probe"))
            if probe is not None:
                found[kind] = probe
        return found

    @property
    def ports(self) -> dict[str, int]:
        ports = self.raw.get("ports", [])
        return {p["name"]: int(p["containerPort"]) for p in ports if "name" in p}

    @property
    def mounts(self) -> list[Mapping[str, Any]]:
        return list(self.raw.get("volumeMounts", []))

    def argv(self, image: Image, env: Mapping[str, str]) -> list[str]:
        """``command`` replaces the image's ENTRYPOINT (and drops its CMD), ``args`` its CMD;
        ``$(VAR)`` expands from the container's environment, ``$$`` is a literal ``$``."""
        command = self.raw.get("command")
        args = self.raw.get("args")
        if command is not None:
            words = [*command, *(args or [])]
        else:
            words = [*image.entrypoint, *(image.cmd if args is None else args)]
        if not words:
            raise PodError(f"container {self.name}: no command and no ENTRYPOINT/CMD")
        return [expand(str(word), env) for word in words]

    def identity(self, pod: Pod, image: Image) -> Identity:
        """runAsUser/runAsGroup (container over pod over the image's USER), supplementalGroups
        and fsGroup as extra groups, and the capability set from the runtime's default."""
        context: Mapping[str, Any] = self.raw.get("securityContext") or {}
        pod_context = pod.security_context

        def setting(key: str) -> Any:
            return context.get(key, pod_context.get(key))

        uid = setting("runAsUser")
        uid = image.uid if uid is None else int(uid)
        gid = setting("runAsGroup")
        gid = (image.gid if image.uid == uid else uid) if gid is None else int(gid)
        if setting("runAsNonRoot") and uid == 0:
            raise PodError(f"container {self.name}: runAsNonRoot and the user is root (uid 0)")
        groups = [int(g) for g in pod_context.get("supplementalGroups", [])]
        if pod_context.get("fsGroup") is not None:
            groups.append(int(pod_context["fsGroup"]))
        caps = set(RUNTIME_DEFAULT_CAPS)
        if context.get("privileged"):
            raise PodError(f"container {self.name}: privileged containers are not supported")
        capabilities = context.get("capabilities") or {}
        drop = {c.lower() for c in capabilities.get("drop", [])}
        caps = set() if "all" in drop else caps - drop
        caps |= {c.lower() for c in capabilities.get("add", [])}
        return Identity(
            uid,
            gid,
            tuple(dict.fromkeys(groups)),
            frozenset(caps),
            context.get("allowPrivilegeEscalation") is False,
            bool(context.get("readOnlyRootFilesystem")),
        )


@dataclass(frozen=True)
class Pod:
    """One pod of a workload's template, as the API server would create it."""

    name: str
    namespace: str
    uid: str
    metadata: Mapping[str, Any]
    spec: Mapping[str, Any]

    @classmethod
    def from_manifests(cls, documents: Iterable[Mapping[str, Any]], workload: str = "") -> Pod:
        """The pod of the (only, or named) workload: ``<name>-<5 letters>`` like the
        DaemonSet controller's, in the workload's namespace."""
        found = [
            d
            for d in documents
            if d.get("kind") in WORKLOADS and (not workload or d["metadata"]["name"] == workload)
        ]
        if len(found) != 1:
            names = [f"{d['kind']}/{d['metadata']['name']}" for d in found]
            raise PodError(f"expected one workload{' ' + workload if workload else ''}: {names}")
        (owner,) = found
        template = owner["spec"]["template"]
        suffix = "".join(secrets.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
        metadata = {**template.get("metadata", {})}
        namespace = owner["metadata"].get("namespace", "default")
        return cls(
            f"{owner['metadata']['name']}-{suffix}",
            namespace,
            secrets.token_hex(16),
            metadata,
            template["spec"],
        )

    @property
    def init_containers(self) -> list[Container]:
        return [Container(c["name"], c) for c in self.spec.get("initContainers", [])]

    @property
    def containers(self) -> list[Container]:
        return [Container(c["name"], c) for c in self.spec["containers"]]

    @property
    def security_context(self) -> Mapping[str, Any]:
        context: Mapping[str, Any] = self.spec.get("securityContext") or {}
        return context

    @property
    def grace_seconds(self) -> float:
        return float(self.spec.get("terminationGracePeriodSeconds", 30))

    @property
    def service_account(self) -> str:
        return str(self.spec.get("serviceAccountName") or "default")

    @property
    def automount_token(self) -> bool:
        return self.spec.get("automountServiceAccountToken", True) is not False

    def unschedulable(self, node: LabNode) -> str | None:
        """Why the DaemonSet controller would not put this pod on ``node``, or None."""
        for key, value in (self.spec.get("nodeSelector") or {}).items():
            if node.labels.get(key) != value:
                return f"nodeSelector {key}={value}: the node has {node.labels.get(key)!r}"
        tolerations = list(self.spec.get("tolerations") or [])
        tolerations += [{"key": k, "operator": "Exists"} for k in DAEMONSET_TOLERATIONS]
        for taint in node.taints:
            if taint.get("effect") not in ("NoSchedule", "NoExecute"):
                continue
            if not any(tolerates(t, taint) for t in tolerations):
                return f"taint {taint.get('key')}:{taint.get('effect')} not tolerated"
        return None

    def field(self, path: str, node: LabNode) -> str:
        """A downward API ``fieldRef`` as the kubelet resolves it (``hostNetwork``: the pod's
        IP is the node's)."""
        values = {
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "metadata.uid": self.uid,
            "spec.nodeName": node.name,
            "spec.serviceAccountName": self.service_account,
            "status.hostIP": node.host_ip,
            "status.hostIPs": ",".join(node.addresses),
        }
        if self.spec.get("hostNetwork"):
            values["status.podIP"] = node.host_ip
            values["status.podIPs"] = ",".join(node.addresses)
        if path in values:
            return values[path]
        match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
        if match:
            return str(self.metadata.get(match[1], {}).get(match[2], ""))
        raise PodError(f"fieldRef {path}: not supported here")


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("operator", "Equal") == "Exists":
        return not toleration.get("key") or toleration["key"] == taint.get("key")
    return bool(
        toleration.get("key") == taint.get("key")
        and toleration.get("value", "") == taint.get("value", "")
    )


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: a defined variable is replaced, an undefined one is
    left as written, ``$$`` is ``$``."""

    def one(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        return env.get(match[1], match[0])

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", one, text)


@dataclass(frozen=True)
class Objects:
    """ConfigMaps and Secrets the pod may refer to, by (namespace, name)."""

    config_maps: Mapping[tuple[str, str], Mapping[str, str]]
    secrets: Mapping[tuple[str, str], Mapping[str, bytes]]

    @classmethod
    def from_manifests(cls, documents: Iterable[Mapping[str, Any]]) -> Objects:
        config_maps: dict[tuple[str, str], dict[str, str]] = {}
        secret_data: dict[tuple[str, str], dict[str, bytes]] = {}
        for doc in documents:
            key = (doc["metadata"].get("namespace", "default"), doc["metadata"]["name"])
            if doc.get("kind") == "ConfigMap":
                config_maps[key] = dict(doc.get("data") or {})
            elif doc.get("kind") == "Secret":
                data = {k: base64.b64decode(v) for k, v in (doc.get("data") or {}).items()}
                data.update({k: v.encode() for k, v in (doc.get("stringData") or {}).items()})
                secret_data[key] = data
        return cls(config_maps, secret_data)

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None:
        return self.config_maps.get((namespace, name))

    def secret(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        return self.secrets.get((namespace, name))
