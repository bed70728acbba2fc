"""What a container image gives a container: its ENTRYPOINT, CMD, USER, ENV and working
directory, and its root filesystem.

Host mode reads them from the Dockerfile and runs the host's install of cosmolet on the host's
root filesystem (an overlay of it); image mode reads them from a built image, a ``docker save``
archive or an engine's image, and runs on that image's filesystem (``archive``).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.pod.archive import IMAGE_CACHE, unpack


@dataclass(frozen=True)
class Account:
    """A user of the image's /etc/passwd."""

    name: str
    gid: int
    home: str
    shell: str

    def passwd_line(self, uid: int) -> str:
        return f"{self.name}:x:{uid}:{self.gid}::{self.home}:{self.shell}"


@dataclass(frozen=True)
class Image:
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    uid: int
    gid: int
    env: Mapping[str, str] = field(default_factory=dict)
    working_dir: str = "/"
    #: the image's own groups (gid -> name), which host mode translates to the host's by name
    groups: Mapping[int, str] = field(default_factory=dict)
    #: the image's own users (uid -> account), which host mode adds where the host has none
    users: Mapping[int, Account] = field(default_factory=dict)
    #: the unpacked image; None: the host's root filesystem (host mode)
    rootfs: Path | None = None

    @classmethod
    def from_dockerfile(cls, path: Path) -> Image:
        """The final stage's ENTRYPOINT, CMD, USER, ENV and WORKDIR, with ARG defaults
        substituted; the image's users and groups from its ``useradd``/``groupadd`` lines."""
        instructions = _instructions(path.read_text())
        stages = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
        final = instructions[stages[-1] + 1 :] if stages else instructions
        args: dict[str, str] = {}
        env: dict[str, str] = {}
        entrypoint: tuple[str, ...] = ()
        cmd: tuple[str, ...] = ()
        user, working_dir = "0", "/"
        groups: dict[int, str] = {}
        users: dict[str, dict[str, str]] = {}
        for word, rest in final:
            if word == "ARG":
                name, _, default = rest.partition("=")
                args[name.strip()] = default.strip().strip('"')
            elif word == "ENV":
                env.update(_env_pairs(rest, {**args, **env}))
            elif word == "ENTRYPOINT":
                entrypoint, cmd = _exec_form(rest), ()
            elif word == "CMD":
                cmd = _exec_form(rest)
            elif word == "USER":
                user = _substitute(rest.strip(), {**args, **env})
            elif word == "WORKDIR":
                working_dir = _substitute(rest.strip(), {**args, **env})
            elif word == "RUN":
                _accounts(rest, groups, users)
        by_name = {name: gid for gid, name in groups.items()}
        accounts = {
            int(options["--uid"]): Account(
                name,
                by_name.get(options.get("--gid", ""), 0),
                options.get("--home-dir", "/nonexistent"),
                options.get("--shell", "/usr/sbin/nologin"),
            )
            for name, options in users.items()
            if "--uid" in options
        }
        name, _, group = user.partition(":")
        by_user = {account.name: uid for uid, account in accounts.items()}
        uid = int(name) if name.isdigit() else by_user[name]
        if group:
            gid = int(group)
        elif uid in accounts:
            gid = accounts[uid].gid
        else:
            gid = 0  # Docker's group for a user the image's passwd does not know
        return cls(entrypoint, cmd, uid, gid, env, working_dir, groups, accounts)

    @classmethod
    def from_archive(cls, archive: Path, cache: Path = IMAGE_CACHE) -> Image:
        """A ``docker save`` archive (``make image`` writes one): its config, and its layers
        unpacked once into ``cache``."""
        config, rootfs = unpack(archive, cache)
        return cls.from_config(config, rootfs)

    @classmethod
    def from_docker(cls, reference: str, cache: Path = IMAGE_CACHE) -> Image:
        """An image of the engine at ``DOCKER_HOST`` (or the default socket), through
        ``docker save``."""
        docker = shutil.which("docker")
        if docker is None:
            raise RuntimeError("image mode needs the docker CLI and an engine (or --image-archive)")
        with tempfile.TemporaryDirectory(prefix="lab-pod-save-") as scratch:
            archive = Path(scratch) / "image.tar"
            subprocess.run([docker, "save", f"--output={archive}", reference], check=True)
            return cls.from_archive(archive, cache)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], rootfs: Path) -> Image:
        """From an image's config (``Entrypoint``, ``Cmd``, ``User``, ``Env``, ``WorkingDir``)
        and its unpacked filesystem, whose /etc/passwd and /etc/group name the user."""
        groups = {int(row[2]): row[0] for row in _colon_file(rootfs / "etc/group")}
        users = {row[0]: (int(row[2]), int(row[3])) for row in _colon_file(rootfs / "etc/passwd")}
        name, _, group = (config.get("User") or "0").partition(":")
        uid = int(name) if name.isdigit() else users[name][0]
        if group:
            gid = int(group) if group.isdigit() else {v: k for k, v in groups.items()}[group]
        else:
            gid = {u: g for u, g in users.values()}.get(uid, 0)
        return cls(
            tuple(config.get("Entrypoint") or ()),
            tuple(config.get("Cmd") or ()),
            uid,
            gid,
            dict(item.split("=", 1) for item in config.get("Env") or []),
            config.get("WorkingDir") or "/",
            groups,
            rootfs=rootfs,
        )


def _accounts(run: str, groups: dict[int, str], users: dict[str, dict[str, str]]) -> None:
    """The ``groupadd`` and ``useradd`` commands of a RUN instruction, by their options."""
    for command in re.split(r"&&|;|\|\|", run):
        words = shlex.split(command)
        if not words or words[0] not in ("groupadd", "useradd"):
            continue
        options: dict[str, str] = {}
        for index, word in enumerate(words[1:-1], 1):
            if word.startswith("--") and not words[index + 1].startswith("--"):
                options[word] = words[index + 1]
        if words[0] == "groupadd" and "--gid" in options:
            groups[int(options["--gid"])] = words[-1]
        elif words[0] == "useradd":
            users[words[-1]] = options


def _colon_file(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [line.split(":") for line in path.read_text().splitlines() if line.count(":") >= 3]


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, rest) per logical line: continuations joined, comments dropped."""
    logical: list[str] = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or (not stripped and not current):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    if current:
        logical.append(current)
    result = []
    for line in logical:
        word, _, rest = line.partition(" ")
        result.append((word.upper(), rest.strip()))
    return result


def _exec_form(text: str) -> tuple[str, ...]:
    if text.startswith("["):
        return tuple(json.loads(text))
    return ("/bin/sh", "-c", text)


def _substitute(text: str, values: Mapping[str, str]) -> str:
    return re.sub(
        r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)",
        lambda m: values.get(m[1] or m[2], ""),
        text,
    )


def _env_pairs(text: str, values: Mapping[str, str]) -> dict[str, str]:
    words = shlex.split(text)
    if words and "=" not in words[0]:  # the legacy ``ENV KEY value`` form
        return {words[0]: _substitute(" ".join(words[1:]), values)}
    pairs = dict(word.split("=", 1) for word in words)
    return {key: _substitute(value, values) for key, value in pairs.items()}
