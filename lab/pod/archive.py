"""An image's filesystem from a ``docker save`` archive, without an engine: its layers applied
in order, as the runtime's overlay would show them (whiteouts delete what lower layers had, an
opaque directory hides their content), owners and modes kept (as root).

The result is kept in ``IMAGE_CACHE/<config digest>/rootfs`` and reused: it is the lower layer
of every container's root filesystem, never written (each container writes to its own layer).
An unpack goes to a temporary directory renamed into place, so a half-done one is never used.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import IO, Any

IMAGE_CACHE = Path("/var/tmp/cosmolet-lab-pod-images")
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


def unpack(archive: Path, cache: Path = IMAGE_CACHE) -> tuple[dict[str, Any], Path]:
    """(the image's ``config``, its root filesystem) from a ``docker save`` archive (Docker's
    layout or the OCI one that Docker 25+ writes: both have ``manifest.json``)."""
    with tarfile.open(archive) as outer:
        (manifest,) = json.load(_member(outer, "manifest.json"))
        digest = posixpath.basename(manifest["Config"]).removesuffix(".json")
        config = json.load(_member(outer, manifest["Config"]))
        rootfs = cache / digest / "rootfs"
        if not rootfs.exists():
            rootfs.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=rootfs.parent, prefix="unpack-"))
            try:
                staging.chmod(0o755)
                for layer in manifest["Layers"]:
                    with tarfile.open(fileobj=_member(outer, layer), mode="r:*") as tar:
                        apply_layer(tar, staging)
                os.rename(staging, rootfs)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    result: dict[str, Any] = config.get("config") or {}
    return result, rootfs


def _member(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    handle = tar.extractfile(name)
    if handle is None:
        raise ValueError(f"{name}: not a file in the archive")
    return handle


def apply_layer(tar: tarfile.TarFile, root: Path) -> None:
    """One layer over what the layers before it made: its whiteouts first (they concern only
    the lower layers), then its entries, each replacing what was at its path."""
    members = tar.getmembers()
    for member in members:
        parent, base = posixpath.split(_clean(member.name))
        if base == OPAQUE:
            for child in (root / parent).iterdir() if (root / parent).is_dir() else ():
                _remove(child)
        elif base.startswith(WHITEOUT):
            _remove(root / parent / base.removeprefix(WHITEOUT))
    for member in members:
        name = _clean(member.name)
        if not name or posixpath.basename(name).startswith(WHITEOUT):
            continue
        target = root / name
        if os.path.lexists(target) and not (member.isdir() and target.is_dir()):
            _remove(target)
        tar.extract(member, root, numeric_owner=True, filter="fully_trusted")


def _clean(name: str) -> str:
    name = posixpath.normpath(name.lstrip("/"))
    if name.startswith("../") or name == "..":
        raise ValueError(f"layer entry {name!r} escapes the root")
    return "" if name == "." else name


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()
