"""Network-namespace building blocks for the lab, the integration tests and the benchmarks.

Everything made here carries a unique prefix (``cml<6 hex>``), is recorded in a ``Lab``, and is
removed by ``Lab.close()``: namespaces (which takes their veths and addresses with them),
processes (stopped by the PID we started, never by name), and the work directory. Nothing here
touches the host's own interfaces or routes: veths are created directly inside namespaces.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

FRR_DIR = Path("/usr/lib/frr")
PREFIX = "cml"
T = TypeVar("T")


def run(args: Sequence[str], check: bool = True, timeout: float = 30) -> str:
    """Run a command and return its stdout; raise with its stderr on failure."""
    result = subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")
    return result.stdout


def wait_for(
    predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.05, what: str = ""
) -> T:
    """Poll ``predicate`` until it returns a truthy value; raise TimeoutError naming ``what``.

    An exception from ``predicate`` counts as "not yet" (a daemon still starting refuses
    connections) and is retried while time lasts. If the last attempt raised, the timeout is
    raised *from* that exception and names it: a bug in the predicate must show as itself, not
    as a mysterious timeout.
    """
    deadline = time.monotonic() + timeout
    last: T | None = None
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as error:  # retried: see the docstring
            last, last_error = None, error
        else:
            if last:
                return last
            last_error = None
        time.sleep(interval)
    waited = f"timed out after {timeout:.0f}s waiting for {what or predicate}"
    if last_error is not None:
        raise TimeoutError(f"{waited}: last attempt raised {last_error!r}") from last_error
    raise TimeoutError(f"{waited}: {last!r}")


@dataclass
class Namespace:
    """One network namespace of the lab."""

    name: str
    lab: Lab

    def cmd(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *args]

    def run(self, *args: str, check: bool = True, timeout: float = 30) -> str:
        return run(self.cmd(*args), check=check, timeout=timeout)

    def ip(self, *args: str, check: bool = True) -> str:
        return run(["ip", "-n", self.name, *args], check=check)

    def ip_json(self, *args: str) -> Any:
        return json.loads(run(["ip", "-n", self.name, "-j", *args]) or "[]")

    def popen(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        log: Path | None = None,
        stdout_pipe: bool = False,
        **kw: Any,
    ) -> subprocess.Popen[bytes]:
        """Start a process inside the namespace; the lab stops it (by PID) on close."""
        out: Any = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
        if stdout_pipe:
            out = subprocess.PIPE
        process = subprocess.Popen(
            self.cmd(*args),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
            start_new_session=True,
            **kw,
        )
        self.lab.processes.append(process)
        return process

    def up(self, *interfaces: str) -> None:
        for interface in ("lo", *interfaces):
            self.ip("link", "set", "dev", interface, "up")

    def link_local(self, interface: str) -> str:
        """This namespace's IPv6 link-local address on ``interface`` (once DAD is done)."""
        for address in self.ip_json("-6", "addr", "show", "dev", interface, "scope", "link"):
            for info in address.get("addr_info", []):
                if info.get("family") == "inet6" and "tentative" not in info:
                    return str(info["local"])
        raise LookupError(f"no link-local address on {self.name} {interface}")

    def routes(self, family: int = 4) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.ip_json(f"-{family}", "route", "show")
        return result


@dataclass
class FrrRouter:
    """FRR daemons (zebra + bgpd, optionally bfdd) in a namespace, driven with ``vtysh``."""

    ns: Namespace
    directory: Path
    daemons: tuple[str, ...] = ("zebra", "bgpd")
    pids: dict[str, int] = field(default_factory=dict)

    def start(self, config: str) -> FrrRouter:
        self.directory.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.directory, "frr", "frr")
        self.directory.chmod(0o755)
        conf = self.directory / "frr.conf"
        conf.write_text(config)
        shutil.chown(conf, "frr", "frr")
        for daemon in self.daemons:
            self._start_daemon(daemon, conf)
        wait_for(lambda: self.vtysh("show version"), 10, what=f"{self.ns.name} vtysh")
        return self

    def _start_daemon(self, daemon: str, conf: Path) -> None:
        pid_file = self.directory / f"{daemon}.pid"
        pid_file.unlink(missing_ok=True)
        self.ns.run(
            str(FRR_DIR / daemon),
            "-d",
            "-N",
            self.ns.name,
            "-i",
            str(pid_file),
            "-z",
            str(self.directory / "zserv.api"),
            "--vty_socket",
            str(self.directory),
            "-P",
            "0",
            "-f",
            str(conf),
            "--log",
            f"file:{self.directory / (daemon + '.log')}",
        )
        pid = int(wait_for(lambda: pid_file.read_text().strip(), 10, what=f"{daemon} pid"))
        self.pids[daemon] = pid
        self.ns.lab.pids.append(pid)

    def stop(self, daemon: str | None = None, sig: int = signal.SIGTERM) -> None:
        """Stop one daemon, or all, by the PIDs we recorded."""
        for name in [daemon] if daemon else list(self.pids):
            pid = self.pids.pop(name, None)
            if pid is not None:
                _kill_and_wait(pid, sig)

    def restart(self, daemon: str) -> None:
        self.stop(daemon)
        self._start_daemon(daemon, self.directory / "frr.conf")

    def vtysh(self, *commands: str) -> str:
        args = ["vtysh", "--vty_socket", str(self.directory)]
        for command in commands:
            args += ["-c", command]
        return self.ns.run(*args)

    def json(self, command: str) -> Any:
        return json.loads(self.vtysh(command) or "{}")

    def received_routes(self, family: str = "ipv4") -> dict[str, Any]:
        """The BGP table (``show bgp <family> unicast json``): prefix -> list of paths."""
        table = self.json(f"show bgp {family} unicast json")
        routes: dict[str, Any] = table.get("routes", {})
        return routes


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_and_wait(pid: int, sig: int = signal.SIGTERM, timeout: float = 5.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        time.sleep(0.02)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@dataclass
class Lab:
    """A set of namespaces, links and processes that is removed as a whole."""

    tag: str = field(default_factory=lambda: f"{PREFIX}{secrets.token_hex(3)}")
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix=f"{PREFIX}-")))
    namespaces: list[Namespace] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workdir.chmod(0o755)

    def namespace(self, role: str) -> Namespace:
        ns = Namespace(f"{self.tag}-{role}", self)
        run(["ip", "netns", "add", ns.name])
        self.namespaces.append(ns)
        ns.up()
        return ns

    def link(self, a: Namespace, a_if: str, b: Namespace, b_if: str) -> None:
        """A veth pair with one end in each namespace, both up."""
        run(
            [
                "ip",
                "link",
                "add",
                "name",
                a_if,
                "netns",
                a.name,
                "type",
                "veth",
                "peer",
                "name",
                b_if,
                "netns",
                b.name,
            ]
        )
        a.ip("link", "set", "dev", a_if, "up")
        b.ip("link", "set", "dev", b_if, "up")

    def frr(
        self, ns: Namespace, config: str, daemons: tuple[str, ...] = ("zebra", "bgpd")
    ) -> FrrRouter:
        return FrrRouter(ns, self.workdir / ns.name, daemons).start(config)

    def close(self) -> None:
        """Stop every process we started (by PID), delete every namespace and the workdir."""
        for process in reversed(self.processes):
            if process.poll() is None:
                _kill_and_wait(process.pid)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=1)
        for pid in reversed(self.pids):
            _kill_and_wait(pid)
        for ns in reversed(self.namespaces):
            run(["ip", "netns", "del", ns.name], check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.namespaces.clear()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def leftovers() -> list[str]:
    """Namespaces with the lab prefix that still exist (for tests of the clean-up itself)."""
    listing = run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in listing.splitlines() if line.startswith(PREFIX)]


CLONE_NEWNET = 0x40000000


def enter_netns(netns: str) -> None:
    """Move the calling thread (only it) into the named network namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    with open(f"/run/netns/{netns}") as handle:
        if libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {netns}")


def socket_made_in(netns: str | None, make: Callable[[], socket.socket]) -> socket.socket:
    """The socket ``make`` returns, made in the named network namespace (``None``: ours).

    ``setns`` moves only the calling thread, so a helper thread makes it there; a socket keeps
    its namespace when the thread ends. An error is raised in the caller's thread.
    """
    made: list[socket.socket | BaseException] = []

    def run() -> None:
        try:
            if netns:
                enter_netns(netns)
            made.append(make())
        except BaseException as error:  # handed to the caller's thread, raised there
            made.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if isinstance(made[0], BaseException):
        raise made[0]
    return made[0]
