"""A Docker engine to build and run the image: the caller's own (``DOCKER_HOST``), or a private
``dockerd`` that leaves the host alone.

The private daemon lives in one temporary directory (data root, exec root, pid file, socket, its
daemon.json and its key, which default to /etc/docker), is started with no bridge, no iptables and
no IP forwarding (dockerd otherwise enables forwarding and writes firewall rules on the host), so
builds and containers use ``--network host`` or ``--network none``. Its containers' cgroups sit
under a parent named after that directory. :meth:`Engine.close` stops it by its PID (then any
containerd or shim it left), unmounts what it left mounted (it binds the host's network namespace
under the exec root), and removes the directory, the cgroup parents and the ``/run/docker``
directory that dockerd creates whatever its flags, when this engine created it.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

START_SECONDS = 60.0
STOP_SECONDS = 30.0
CGROUPS = Path("/sys/fs/cgroup")
RUN_DOCKER = Path("/run/docker")


class EngineUnavailable(RuntimeError):
    """No engine can run here; the message says exactly what failed."""


class Engine:
    """The docker CLI bound to one daemon socket; owns the daemon when it started one."""

    def __init__(
        self,
        cli: str,
        host: str,
        process: subprocess.Popen[bytes] | None = None,
        root: Path | None = None,
        created: tuple[Path, ...] = (),
    ) -> None:
        self.cli = cli
        self.host = host
        self.process = process
        self.root = root
        # Directories outside ``root`` this engine's daemon created: removed when empty.
        self.created = created

    @property
    def private(self) -> bool:
        return self.process is not None

    def docker(
        self, *args: str, check: bool = True, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``docker ARGS`` against this engine; the classic builder (this engine's CLI may
        have no buildx), output captured. Raises with the output when ``check`` and it fails."""
        env = {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "0"}
        result = subprocess.run(
            [self.cli, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"docker {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout[-4000:]}{result.stderr[-4000:]}"
            )
        return result

    def has_image(self, tag: str) -> bool:
        return self.docker("image", "inspect", tag, check=False).returncode == 0

    def close(self) -> None:
        """Stop a private daemon by its PID and remove its directory; nothing for a caller's."""
        process, root = self.process, self.root
        if process is None or root is None:
            return
        _stop(process.pid, lambda: process.poll() is None)
        process.wait()
        for pid in _processes_under(root):
            _stop(pid, functools.partial(_runs_under, pid, root))
        _remove(root)
        for cgroup in CGROUPS.glob(f"*/{root.name}"):
            cgroup.rmdir()
        for directory in self.created:
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()
        self.process = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_engine() -> Engine:
    """The caller's engine when ``DOCKER_HOST`` names one, else a private daemon."""
    host = os.environ.get("DOCKER_HOST")
    if host:
        cli = shutil.which("docker")
        if cli is None:
            raise EngineUnavailable("DOCKER_HOST is set but no docker CLI is on PATH")
        engine = Engine(cli, host)
        version = engine.docker("version", check=False)
        if version.returncode != 0:
            raise EngineUnavailable(f"docker at {host} does not answer: {version.stderr.strip()}")
        return engine
    return start_private()


def start_private() -> Engine:
    """Start dockerd in a fresh temporary directory and wait until it answers."""
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise EngineUnavailable("dockerd is not installed (apt-get install docker.io)")
    if os.geteuid() != 0:
        raise EngineUnavailable("a private dockerd needs root")
    # The CLI shipped with the daemon speaks its API version; a newer one on PATH may not.
    sibling = Path(dockerd).with_name("docker")
    cli = str(sibling) if sibling.exists() else shutil.which("docker")
    if cli is None:
        raise EngineUnavailable("dockerd is installed but no docker CLI is")
    root = Path(tempfile.mkdtemp(prefix="cosmolet-dockerd-", dir="/tmp"))
    host = f"unix://{root}/docker.sock"
    # Its key (a file only, no flag) defaults to /etc/docker/key.json.
    (root / "daemon.json").write_text(json.dumps({"deprecated-key-path": f"{root}/key.json"}))
    command = [
        dockerd,
        "--iptables=false",
        "--ip6tables=false",
        "--ip-forward=false",
        "--bridge=none",
        f"--data-root={root}/data",
        f"--exec-root={root}/exec",
        f"--pidfile={root}/dockerd.pid",
        f"--config-file={root}/daemon.json",
        f"--cgroup-parent=/{root.name}",
        f"--host={host}",
    ]
    created = () if RUN_DOCKER.exists() else (RUN_DOCKER / "plugins", RUN_DOCKER)
    with (root / "dockerd.log").open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    engine = Engine(cli, host, process, root, created)
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log_tail = (root / "dockerd.log").read_text(errors="replace")[-2000:]
            engine.close()
            raise EngineUnavailable(f"dockerd exited {process.returncode} at start:\n{log_tail}")
        if engine.docker("version", check=False).returncode == 0:
            return engine
        time.sleep(0.5)
    log_tail = (root / "dockerd.log").read_text(errors="replace")[-2000:]
    engine.close()
    raise EngineUnavailable(f"dockerd did not answer within {START_SECONDS:.0f} s:\n{log_tail}")


def _processes_under(root: Path) -> list[int]:
    """What dockerd left behind if it died uncleanly: its containerd and shims, whose command
    lines name ``root`` (a directory unique to this engine)."""
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and _runs_under(int(entry.name), root)
    ]


def _runs_under(pid: int, root: Path) -> bool:
    """Whether ``pid`` is still a process whose command line names ``root`` (not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return str(root).encode() in cmdline


def _stop(pid: int, alive: Callable[[], bool]) -> None:
    """SIGTERM, then SIGKILL if still alive after ``STOP_SECONDS``."""
    for sig, grace in ((signal.SIGTERM, STOP_SECONDS), (signal.SIGKILL, 5.0)):
        if not alive():
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while alive() and time.monotonic() < deadline:
            time.sleep(0.2)


def _mounts_under(root: Path) -> list[str]:
    prefix = f"{root}/"
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == str(root) or point.startswith(prefix):
            points.append(point)
    return points


def _remove(root: Path) -> None:
    """Unmount what the daemon left mounted under ``root`` (deepest first), then delete it; never
    delete through a mount, which could reach the host's files."""
    for point in sorted(_mounts_under(root), key=len, reverse=True):
        subprocess.run(["umount", point], check=False, capture_output=True)
    left = _mounts_under(root)
    if left:
        raise RuntimeError(f"still mounted under {root}, not removed: {left}")
    shutil.rmtree(root)
