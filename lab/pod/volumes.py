"""The pod's volumes, set up on the node as the kubelet does before any container starts.

ConfigMaps, Secrets (decoded), downward API files and the ServiceAccount's token volume become
directories of files under the pod's directory, with ``defaultMode``/``mode`` and root as owner;
with a pod ``fsGroup`` every volume's files get that group and group read (write for writable
volumes) as the kubelet's ``SetVolumeOwnership`` gives them. An ``emptyDir`` is a tmpfs (mode
0777) mounted in the pod's sandbox mount namespace, so that it is shared by the pod's
containers and gone with the pod. A ``hostPath`` is the host's path itself.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.pod.spec import SERVICE_ACCOUNT_DIR, LabNode, Objects, Pod, PodError

SERVICE_ACCOUNT_VOLUME = "kube-api-access-lab"


@dataclass(frozen=True)
class Volume:
    name: str
    kind: str  # files, emptyDir or hostPath
    path: Path  # where the content is (on the host, or in the sandbox for an emptyDir)
    tmpfs_size: int | None = None  # emptyDir: bytes, None for no limit


@dataclass(frozen=True)
class ServiceAccount:
    """The in-cluster credentials given to the pod: a token and the API server's CA."""

    token: str
    ca_crt: bytes


def service_account_mount() -> dict[str, Any]:
    """The mount the ServiceAccount admission plugin adds to every container."""
    return {"name": SERVICE_ACCOUNT_VOLUME, "mountPath": SERVICE_ACCOUNT_DIR, "readOnly": True}


def set_up(
    pod: Pod,
    node: LabNode,
    objects: Objects,
    directory: Path,
    account: ServiceAccount | None,
) -> dict[str, Volume]:
    """Every volume of ``pod`` under ``directory`` (one subdirectory each)."""
    directory.mkdir(parents=True, exist_ok=True)  # bound into every container, even empty
    fs_group = pod.security_context.get("fsGroup")
    volumes: dict[str, Volume] = {}
    specs: list[Mapping[str, Any]] = list(pod.spec.get("volumes", []))
    for spec in specs:
        name = spec["name"]
        target = directory / name
        if "emptyDir" in spec:
            target.mkdir(parents=True)
            size = spec["emptyDir"].get("sizeLimit")
            volumes[name] = Volume(name, "emptyDir", target, quantity(size) if size else None)
            continue
        if "hostPath" in spec:
            volumes[name] = Volume(name, "hostPath", _host_path(spec["hostPath"]))
            continue
        files = _files(spec, pod, node, objects)
        if files is None:
            continue  # an optional ConfigMap or Secret that does not exist: no volume
        _write(target, files, fs_group)
        volumes[name] = Volume(name, "files", target)
    if account is not None and pod.automount_token:
        files = {
            "token": (account.token.encode(), 0o644),
            "ca.crt": (account.ca_crt, 0o644),
            "namespace": (pod.namespace.encode(), 0o644),
        }
        target = directory / SERVICE_ACCOUNT_VOLUME
        _write(target, files, fs_group)
        volumes[SERVICE_ACCOUNT_VOLUME] = Volume(SERVICE_ACCOUNT_VOLUME, "files", target)
    return volumes


def _files(
    spec: Mapping[str, Any], pod: Pod, node: LabNode, objects: Objects
) -> dict[str, tuple[bytes, int]] | None:
    """Relative path -> (content, mode) of a ConfigMap, Secret or downward API volume."""
    if "configMap" in spec:
        source = spec["configMap"]
        config_map = objects.config_map(pod.namespace, source["name"])
        data = None if config_map is None else {k: v.encode() for k, v in config_map.items()}
        what = f"ConfigMap {source['name']}"
    elif "secret" in spec:
        source = spec["secret"]
        secret = objects.secret(pod.namespace, source["secretName"])
        data = None if secret is None else dict(secret)
        what = f"Secret {source['secretName']}"
    elif "downwardAPI" in spec:
        source = spec["downwardAPI"]
        data = {
            item["path"]: pod.field(item["fieldRef"]["fieldPath"], node).encode()
            for item in source.get("items", [])
        }
        what = "downwardAPI"
    else:
        raise PodError(f"volume {spec['name']}: {sorted(set(spec) - {'name'})} not supported")
    if data is None:
        if source.get("optional"):
            return None
        raise PodError(f"volume {spec['name']}: {what} not found in {pod.namespace}")
    mode = int(source.get("defaultMode", 0o644))
    items = source.get("items")
    if items is None:
        return {key: (value, mode) for key, value in data.items()}
    files = {}
    for item in items:
        if item["key"] not in data:
            raise PodError(f"volume {spec['name']}: {what} has no key {item['key']}")
        files[item["path"]] = (data[item["key"]], int(item.get("mode", mode)))
    return files


def _write(target: Path, files: Mapping[str, tuple[bytes, int]], fs_group: int | None) -> None:
    target.mkdir(parents=True)
    target.chmod(0o755)
    for relative, (content, mode) in files.items():
        path = target / relative
        if not path.resolve().is_relative_to(target.resolve()):
            raise PodError(f"volume file {relative}: outside the volume")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        if fs_group is not None:  # read-only volumes: group read, as SetVolumeOwnership
            os.chown(path, 0, int(fs_group))
            mode |= 0o440
        path.chmod(mode)
    if fs_group is not None:
        for directory in [target, *(p for p in target.rglob("*") if p.is_dir())]:
            os.chown(directory, 0, int(fs_group))
            directory.chmod(0o755 | stat.S_ISGID)


def _host_path(spec: Mapping[str, Any]) -> Path:
    path = Path(spec["path"])
    kind = spec.get("type", "")
    if kind == "DirectoryOrCreate":
        path.mkdir(parents=True, exist_ok=True)
    elif kind == "FileOrCreate":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
    checks = {
        "Directory": path.is_dir,
        "File": path.is_file,
        "Socket": path.is_socket,
        "CharDevice": path.is_char_device,
        "BlockDevice": path.is_block_device,
    }
    if kind in checks and not checks[kind]():
        raise PodError(f"hostPath {path}: not a {kind}")
    return path


def quantity(text: str | int) -> int:
    """A Kubernetes quantity (``64Mi``, ``1G``, ``500``) in bytes."""
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti|k|M|G|T)?", str(text))
    if not match:
        raise PodError(f"quantity {text!r}: not understood")
    factors = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6}
    factors.update({"G": 10**9, "T": 10**12})
    return int(match[1]) * factors.get(match[2] or "", 1)
