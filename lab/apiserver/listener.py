"""Where the lab API server listens: the host's loopback and, for the lab's nodes, theirs.

Each lab node is a network namespace with its own 127.0.0.1, so cosmolet on a node reaches the
server only if the server also listens there. A socket made inside a namespace stays in it, so
one process (one store, one kubeconfig with one ``http://127.0.0.1:PORT``) serves them all.
``serving()`` runs it in this process (tests, the demo); ``start_host_apiserver()`` runs
``python -m lab.apiserver`` as a process, for tests that stop and restart it.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from lab.apiserver.http import LabServer
from lab.apiserver.store import Store
from lab.netns import Lab, wait_for

CLONE_NEWNET = 0x40000000


def socket_in_netns(netns: str | None, host: str, port: int) -> socket.socket:
    """A listening socket in the named network namespace (``None``: ours).

    ``setns`` changes the namespace of the calling thread only, so a helper thread makes the
    socket there; the socket keeps its namespace when the thread ends.
    """
    result: list[socket.socket | BaseException] = []

    def make() -> None:
        try:
            if netns:
                libc = ctypes.CDLL(None, use_errno=True)
                with open(f"/run/netns/{netns}") as handle:
                    if libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), f"setns {netns}")
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(128)
            result.append(sock)
        except BaseException as error:  # handed to the caller's thread, raised there
            result.append(error)

    thread = threading.Thread(target=make)
    thread.start()
    thread.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


@contextlib.contextmanager
def serving(
    port: int = 0,
    host: str = "127.0.0.1",
    netns: list[str] | None = None,
    store: Store | None = None,
    bookmark_seconds: float = 1.0,
) -> Iterator[tuple[Store, int]]:
    """Run the server in this process (threads) for in-process tests; yields (store, port).

    It listens on ``host:port`` here and on the same address and port in every ``netns``.
    """
    store = store or Store()
    first = socket_in_netns(None, host, port)
    port = first.getsockname()[1]
    sockets = [first] + [socket_in_netns(ns, host, port) for ns in netns or []]
    servers = [LabServer(sock, store, bookmark_seconds) for sock in sockets]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    try:
        yield store, port
    finally:
        for server in servers:
            server.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_kubeconfig(path: Path, server: str) -> None:
    """A kubeconfig for ``server`` (any token: the lab server does not authenticate)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "lab", "cluster": {"server": server}}],
        "users": [{"name": "lab", "user": {"token": "lab"}}],
        "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "lab"}}],
        "current-context": "lab",
    }
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(config, indent=2))
    os.replace(temporary, path)


def start_host_apiserver(
    lab: Lab, port: int, kubeconfig: Path, state: Path, netns: str
) -> subprocess.Popen[bytes]:
    """``python -m lab.apiserver`` on the host's loopback and inside ``netns``; stopped by PID.

    Ready once it has written ``kubeconfig`` (it writes it after it listens).
    """
    kubeconfig.unlink(missing_ok=True)
    log = open(lab.workdir / "apiserver.log", "ab")  # noqa: SIM115 - closed by the process
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lab.apiserver",
            "--port",
            str(port),
            "--kubeconfig",
            str(kubeconfig),
            "--listen-netns",
            netns,
            "--state",
            str(state),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    lab.processes.append(server)
    wait_for(kubeconfig.exists, 10, what="the lab API server's kubeconfig")
    return server
