"""Where the lab API server listens: the host's loopback and, for the lab's nodes, theirs.

Each lab node is a network namespace with its own 127.0.0.1, so cosmolet on a node reaches the
server only if the server also listens there. A socket made inside a namespace stays in it, so
one process (one store, one kubeconfig with one ``http://127.0.0.1:PORT``) serves them all.
``serving()`` runs it in this process (tests, the demo), plain HTTP; ``serving_tls()`` likewise
with TLS, tokens and RBAC (``Secured`` says where everything is); ``start_host_apiserver()`` runs
``python -m lab.apiserver`` as a process, for tests that stop and restart it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from lab.apiserver import tls
from lab.apiserver.auth import Guard, ServiceAccount
from lab.apiserver.http import LabServer, Security
from lab.apiserver.rbac import Rbac
from lab.apiserver.resources import JSON
from lab.apiserver.store import Store
from lab.netns import Lab, socket_made_in, wait_for


def socket_in_netns(netns: str | None, host: str, port: int) -> socket.socket:
    """A listening socket in the named network namespace (``None``: ours)."""

    def listening() -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        return sock

    return socket_made_in(netns, listening)


@contextlib.contextmanager
def serving(
    port: int = 0,
    host: str = "127.0.0.1",
    netns: list[str] | None = None,
    store: Store | None = None,
    bookmark_seconds: float = 1.0,
    security: Security | None = None,
) -> Iterator[tuple[Store, int]]:
    """Run the server in this process (threads) for in-process tests; yields (store, port).

    It listens on ``host:port`` here and on the same address and port in every ``netns``;
    plain HTTP unless given a ``security`` (see ``secure`` and ``serving_tls``).
    """
    store = store or Store()
    first = socket_in_netns(None, host, port)
    port = first.getsockname()[1]
    sockets = [first] + [socket_in_netns(ns, host, port) for ns in netns or []]
    servers = [LabServer(sock, store, bookmark_seconds, security) for sock in sockets]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    try:
        yield store, port
    finally:
        for server in servers:
            server.stop()


def secure(
    tls_dir: Path,
    tls_sans: Sequence[str] = (),
    service_account: str | None = None,
    rbac: Path | Sequence[JSON] | None = None,
) -> tuple[Security, tls.TlsFiles]:
    """The TLS material in ``tls_dir`` (made or kept) and the guard: the admin token, and
    ``service_account`` (``NAMESPACE/NAME``) authorized by the roles and bindings in ``rbac``
    (a file of rendered manifests, or the parsed documents; None: allowed everything)."""
    account = ServiceAccount.parse(service_account) if service_account else None
    if rbac is not None and account is None:
        raise ValueError("RBAC is enforced for a service account: name one")
    files = tls.prepare(tls_dir, tls_sans, account.namespace if account else None)
    policy = None
    if rbac is not None and account is not None:
        if isinstance(rbac, Path):
            policy = Rbac.load(rbac, account.namespace)
        else:
            policy = Rbac.from_manifests(rbac, account.namespace)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.cert, files.key)
    context.set_alpn_protocols(["http/1.1"])
    sa = (account, files.token) if account is not None and files.token is not None else None
    return Security(context, Guard(files.admin_token, sa, policy)), files


@dataclass(frozen=True)
class Secured:
    """A ``serving_tls`` server: where it is, and the credentials to reach it."""

    store: Store
    port: int
    url: str  # https://127.0.0.1:PORT
    tls_dir: Path
    ca: Path  # TLS_DIR/ca.crt
    token: str | None  # the service account's (TLS_DIR/token); None without one
    admin_token: str
    kubeconfig: Path  # TLS_DIR/kubeconfig: the admin's


@contextlib.contextmanager
def serving_tls(
    tls_dir: Path,
    *,
    service_account: str | None = None,
    rbac: Path | Sequence[JSON] | None = None,
    tls_sans: Sequence[str] = (),
    port: int = 0,
    host: str = "127.0.0.1",
    netns: list[str] | None = None,
    store: Store | None = None,
    bookmark_seconds: float = 1.0,
) -> Iterator[Secured]:
    """``serving`` over HTTPS with bearer tokens and RBAC (see ``secure``), in this process."""
    security, files = secure(tls_dir, tls_sans, service_account, rbac)
    with serving(port, host, netns, store, bookmark_seconds, security) as (store_, port_):
        url = f"https://{_url_host(host)}:{port_}"
        kubeconfig = tls_dir / "kubeconfig"
        write_kubeconfig(kubeconfig, url, token=files.admin_token, ca=files.ca)
        yield Secured(
            store_, port_, url, tls_dir, files.ca, files.token, files.admin_token, kubeconfig
        )


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_kubeconfig(path: Path, server: str, token: str = "lab", ca: Path | None = None) -> None:
    """A kubeconfig for ``server``: over plain HTTP any token does (nothing is checked); over
    HTTPS, ``ca`` is the CA to trust and ``token`` the admin's (or another user's)."""
    cluster: JSON = {"server": server}
    if ca is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca.read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "lab", "cluster": cluster}],
        "users": [{"name": "lab", "user": {"token": token}}],
        "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "lab"}}],
        "current-context": "lab",
    }
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(config, indent=2))
    temporary.chmod(0o600)
    os.replace(temporary, path)


def start_host_apiserver(
    lab: Lab,
    port: int,
    kubeconfig: Path,
    state: Path,
    netns: str,
    *,
    tls_dir: Path | None = None,
    service_account: str | None = None,
    rbac: Path | None = None,
    tls_sans: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """``python -m lab.apiserver`` on the host's loopback and inside ``netns``; stopped by PID.

    Ready once it has written ``kubeconfig`` (it writes it after it listens). With ``tls_dir``
    it serves HTTPS (``--tls-dir``, ``--service-account``, ``--rbac``, ``--tls-san``): the
    kubeconfig is the admin's, and ``tls_dir`` holds ``ca.crt`` and the account's ``token``.
    """
    kubeconfig.unlink(missing_ok=True)
    options = []
    if tls_dir is not None:
        options += ["--tls-dir", str(tls_dir)]
        options += [f"--tls-san={name}" for name in tls_sans]
    if service_account is not None:
        options += ["--service-account", service_account]
    if rbac is not None:
        options += ["--rbac", str(rbac)]
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
            *options,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    lab.processes.append(server)
    wait_for(kubeconfig.exists, 10, what="the lab API server's kubeconfig")
    return server
