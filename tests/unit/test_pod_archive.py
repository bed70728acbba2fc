"""Image mode's unpacking of a ``docker save`` archive (``lab.pod.archive``): layers in order,
whiteouts and opaque directories as the overlay shows them, the config read from the archive."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Mapping
from pathlib import Path

import pytest

from lab.pod.archive import unpack
from lab.pod.image import Image


def layer(entries: dict[str, bytes | str | None]) -> bytes:
    """A layer tar: bytes are a file, a str a symlink to it, None a directory."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in entries.items():
            info = tarfile.TarInfo(name)
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
                tar.addfile(info)
            else:
                info.size, info.mode = len(content), 0o644
                tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def archive(path: Path, layers: list[bytes], config: Mapping[str, object]) -> Path:
    names = [f"layer{i}.tar" for i in range(len(layers))]
    files = {
        "manifest.json": json.dumps([{"Config": "abc123.json", "Layers": names}]).encode(),
        "abc123.json": json.dumps({"config": config}).encode(),
        **dict(zip(names, layers, strict=True)),
    }
    with tarfile.open(path, "w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path


def test_layers_whiteouts_and_the_config(tmp_path: Path) -> None:
    lower = layer(
        {
            "etc": None,
            "etc/passwd": b"root:x:0:0::/root:/bin/sh\napp:x:10001:10001::/:/bin/sh\n",
            "etc/group": b"root:x:0:\napp:x:10001:\n",
            "a": None,
            "a/gone": b"1",
            "a/kept": b"2",
            "b": None,
            "b/hidden": b"3",
            "link": "a/kept",
        }
    )
    upper = layer({"a/.wh.gone": b"", "b/.wh..wh..opq": b"", "b/new": b"4", "link": b"now a file"})
    config = {"Entrypoint": ["run"], "Cmd": ["x"], "User": "app", "Env": ["PATH=/bin", "A=b=c"]}
    path = archive(tmp_path / "image.tar", [lower, upper], config)

    read, rootfs = unpack(path, tmp_path / "cache")
    assert read == config and rootfs == tmp_path / "cache" / "abc123" / "rootfs"
    assert not (rootfs / "a" / "gone").exists()
    assert (rootfs / "a" / "kept").read_bytes() == b"2"
    assert sorted(p.name for p in (rootfs / "b").iterdir()) == ["new"]
    assert not (rootfs / "link").is_symlink() and (rootfs / "link").read_bytes() == b"now a file"
    assert not list(rootfs.rglob(".wh.*"))

    image = Image.from_archive(path, tmp_path / "cache")
    assert (image.entrypoint, image.cmd) == (("run",), ("x",))
    assert (image.uid, image.gid, image.env["A"]) == (10001, 10001, "b=c")
    assert image.rootfs == rootfs

    (rootfs / "a" / "kept").write_bytes(b"cached")  # unpacked once: the cache is reused
    assert unpack(path, tmp_path / "cache")[1] == rootfs
    assert (rootfs / "a" / "kept").read_bytes() == b"cached"


def test_an_entry_escaping_the_root_is_refused(tmp_path: Path) -> None:
    path = archive(tmp_path / "bad.tar", [layer({"../outside": b"x"})], {})
    with pytest.raises(ValueError, match="escapes"):
        unpack(path, tmp_path / "cache")
    assert not (tmp_path / "outside").exists()
    assert not (tmp_path / "cache" / "abc123" / "rootfs").exists()
