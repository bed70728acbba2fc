"""From a container of the pod to a ``Launch``: its command, environment, identity and mounts,
with host mode's adjustments (the host's ``cosmolet`` on the PATH, the interpreter's tree under
``/root``, the image's named groups as the host's)."""

from __future__ import annotations

import dataclasses
import grp
import os
import pwd
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lab.pod.container import Launch, Mount
from lab.pod.env import ApiEndpoint, environment
from lab.pod.image import Image
from lab.pod.spec import Container, Identity, LabNode, Objects, Pod, PodError
from lab.pod.volumes import Volume, service_account_mount


def build(
    container: Container,
    pod: Pod,
    node: LabNode,
    objects: Objects,
    image: Image,
    api: ApiEndpoint | None,
    volumes: Mapping[str, Volume],
    service_account: bool,
    host_bin: Path,
) -> Launch:
    host_mode = image.rootfs is None
    env = environment(container, pod, node, objects, image, api, str(host_bin) if host_mode else "")
    mounts = [*container.mounts]
    if service_account and pod.automount_token:
        mounts.append(service_account_mount())
    resolved = []
    for mount in mounts:
        if mount["name"] not in volumes:
            raise PodError(f"container {container.name}: no volume {mount['name']}")
        resolved.append(
            Mount(
                volumes[mount["name"]],
                mount["mountPath"],
                bool(mount.get("readOnly")),
                mount.get("subPath", ""),
            )
        )
    identity = container.identity(pod, image)
    if host_mode:
        identity = host_groups(identity, image.groups)
    return Launch(
        container.name,
        container.argv(image, env),
        env,
        identity,
        resolved,
        container.raw.get("workingDir") or image.working_dir,
        image.rootfs or Path("/"),
        root_trees() if host_mode else (),
        host_accounts(image) if host_mode else ((), ()),
    )


def host_groups(identity: Identity, image_groups: Mapping[int, str]) -> Identity:
    """Host mode: the image's groups are the host's groups of the same name (the image's
    frrvty, 10003, owns FRR's vtysh sockets in the pod; the host's frrvty owns the host FRR's).
    A group the host does not have keeps its number."""
    mapping: dict[int, int] = {}
    for gid, name in image_groups.items():
        try:
            mapping[gid] = grp.getgrnam(name).gr_gid
        except KeyError:
            continue
    return dataclasses.replace(
        identity,
        gid=mapping.get(identity.gid, identity.gid),
        groups=tuple(mapping.get(g, g) for g in identity.groups),
    )


def host_accounts(image: Image) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Host mode: the image's users and groups that the host has under no name or id, as
    lines for the container's own /etc/passwd and /etc/group (in its writable layer; the host's
    files are not touched). The image's uid 10001 is ``cosmolet``: without a passwd entry, vtysh
    exits ("could not lookup user ID 10001") as it would in the image under an unknown uid."""
    passwd = tuple(
        account.passwd_line(uid)
        for uid, account in image.users.items()
        if not _known(pwd.getpwuid, uid) and not _known(pwd.getpwnam, account.name)
    )
    group = tuple(
        f"{name}:x:{gid}:"
        for gid, name in image.groups.items()
        if not _known(grp.getgrgid, gid) and not _known(grp.getgrnam, name)
    )
    return passwd, group


def _known(lookup: Callable[[Any], object], key: int | str) -> bool:
    try:
        lookup(key)
    except KeyError:
        return False
    return True


def root_trees() -> Sequence[Path]:
    """Host mode: the tree under root's 0700 home that holds this interpreter (pyenv), which
    the container must see to run the host's install; none when it lives elsewhere."""
    interpreter = Path(os.path.realpath(sys.executable))
    if not interpreter.is_relative_to("/root"):
        return ()
    return (Path("/root") / interpreter.relative_to("/root").parts[0],)
