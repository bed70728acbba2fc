"""What a container image gives a container: its ENTRYPOINT, CMD, USER, ENV and working
directory, and its root filesystem.

Host mode reads them from the Dockerfile and runs the host's install of cosmolet on the host's
root filesystem (an overlay of it); image mode reads them from a built image (``docker image
inspect``) and runs on that image's filesystem, unpacked once (``docker export``) into a cache.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

#: Where image mode unpacks images, one directory per image id.
IMAGE_CACHE = Path("/var/tmp/cosmolet-lab-pod-images")


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
        uid = (
            int(name) if name.isdigit() else next(u for u, a in accounts.items() if a.name == name)
        )
        if group:
            gid = int(group)
        elif uid in accounts:
            gid = accounts[uid].gid
        else:
            gid = 0  # Docker's group for a user the image's passwd does not know
        return cls(entrypoint, cmd, uid, gid, env, working_dir, groups, accounts)

    @classmethod
    def from_docker(cls, reference: str, cache: Path = IMAGE_CACHE) -> Image:
        """A built image: its config from ``docker image inspect`` and its filesystem unpacked
        (as root, owners kept) into ``cache/<image id>`` the first time it is used."""
        (info,) = json.loads(_docker("image", "inspect", reference))
        config = info["Config"]
        rootfs = cache / info["Id"].replace(":", "-") / "rootfs"
        if not rootfs.exists():
            _unpack(reference, rootfs)
        passwd = _colon_file(rootfs / "etc/passwd")
        groups = {int(row[2]): row[0] for row in _colon_file(rootfs / "etc/group")}
        name, _, group = (config.get("User") or "0").partition(":")
        users = {row[0]: (int(row[2]), int(row[3])) for row in passwd}
        by_uid = {uid: gid for uid, gid in users.values()}
        uid = int(name) if name.isdigit() else users[name][0]
        if group:
            gid = int(group) if group.isdigit() else {v: k for k, v in groups.items()}[group]
        else:
            gid = by_uid.get(uid, 0)
        env = dict(item.split("=", 1) for item in config.get("Env") or [])
        return cls(
            tuple(config.get("Entrypoint") or ()),
            tuple(config.get("Cmd") or ()),
            uid,
            gid,
            env,
            config.get("WorkingDir") or "/",
            groups,
            rootfs=rootfs,
        )


def _docker(*args: str) -> str:
    docker = shutil.which("docker")
    if docker is None:
        raise RuntimeError("image mode needs the docker CLI and a running engine")
    result = subprocess.run([docker, *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def _unpack(reference: str, rootfs: Path) -> None:
    """``docker export`` of a created (never started) container, into a temporary directory
    renamed into place, so that an interrupted unpack is never taken for an image."""
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    container = _docker("create", reference).strip()
    staging = Path(tempfile.mkdtemp(dir=rootfs.parent, prefix="unpack-"))
    try:
        export = subprocess.Popen(["docker", "export", container], stdout=subprocess.PIPE)
        subprocess.run(
            ["tar", "-x", "--numeric-owner", "-C", str(staging)], stdin=export.stdout, check=True
        )
        if export.wait() != 0:
            raise RuntimeError(f"docker export {container} exited {export.returncode}")
        os.rename(staging, rootfs)
    finally:
        _docker("rm", container)
        shutil.rmtree(staging, ignore_errors=True)


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
