"""A container's environment as the kubelet builds it: the image's ENV, the in-cluster API
server's address, ``envFrom``, then ``env`` in order (the downward API, ConfigMap and Secret
keys, ``$(VAR)`` references to variables defined before)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lab.pod.image import Image
from lab.pod.spec import Container, LabNode, Objects, Pod, PodError, expand

#: The image's PATH when it sets none (the runtimes' default).
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class ApiEndpoint:
    """Where the in-cluster API server is: the kubelet's ``KUBERNETES_SERVICE_HOST/PORT``."""

    host: str
    port: int


def environment(
    container: Container,
    pod: Pod,
    node: LabNode,
    objects: Objects,
    image: Image,
    api: ApiEndpoint | None,
    path_prefix: str = "",
) -> dict[str, str]:
    """Every variable the container's process starts with. ``path_prefix`` goes before the
    image's PATH (host mode: the directory of the host's ``cosmolet``)."""
    env: dict[str, str] = {"PATH": DEFAULT_PATH, **image.env}
    if path_prefix:
        env["PATH"] = f"{path_prefix}:{env['PATH']}"
    env["HOSTNAME"] = node.name if pod.spec.get("hostNetwork") else pod.name
    env.setdefault("HOME", "/")
    if api is not None:
        host = f"[{api.host}]" if ":" in api.host else api.host
        env.update(
            {
                "KUBERNETES_SERVICE_HOST": api.host,
                "KUBERNETES_SERVICE_PORT": str(api.port),
                "KUBERNETES_SERVICE_PORT_HTTPS": str(api.port),
                "KUBERNETES_PORT": f"tcp://{host}:{api.port}",
            }
        )
    for source in container.raw.get("envFrom", []):
        env.update(_env_from(source, pod, objects))
    for variable in container.raw.get("env", []):
        value = _value(variable, pod, node, objects, env)
        if value is not None:
            env[variable["name"]] = value
    return env


def _env_from(source: Mapping[str, Any], pod: Pod, objects: Objects) -> dict[str, str]:
    prefix = source.get("prefix", "")
    if "configMapRef" in source:
        ref = source["configMapRef"]
        data: Mapping[str, str] | None = objects.config_map(pod.namespace, ref["name"])
    else:
        ref = source["secretRef"]
        secret = objects.secret(pod.namespace, ref["name"])
        data = None if secret is None else {k: v.decode() for k, v in secret.items()}
    if data is None:
        if ref.get("optional"):
            return {}
        raise PodError(f"envFrom: {ref['name']} not found in {pod.namespace}")
    return {prefix + key: value for key, value in data.items()}


def _value(
    variable: Mapping[str, Any],
    pod: Pod,
    node: LabNode,
    objects: Objects,
    env: Mapping[str, str],
) -> str | None:
    if "valueFrom" not in variable:
        return expand(str(variable.get("value", "")), env)
    source = variable["valueFrom"]
    if "fieldRef" in source:
        return pod.field(source["fieldRef"]["fieldPath"], node)
    if "configMapKeyRef" in source:
        ref = source["configMapKeyRef"]
        data = objects.config_map(pod.namespace, ref["name"])
        value = None if data is None else data.get(ref["key"])
    elif "secretKeyRef" in source:
        ref = source["secretKeyRef"]
        secret = objects.secret(pod.namespace, ref["name"])
        raw = None if secret is None else secret.get(ref["key"])
        value = None if raw is None else raw.decode()
    else:
        raise PodError(f"env {variable['name']}: {sorted(source)} not supported here")
    if value is None and not ref.get("optional"):
        raise PodError(f"env {variable['name']}: {ref['name']}/{ref['key']} not found")
    return value
