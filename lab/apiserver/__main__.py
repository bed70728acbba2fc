"""``python -m lab.apiserver``: serve until SIGTERM or SIGINT, then save ``--state``."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

import lab.apiserver
from lab.apiserver.listener import secure, serving, write_kubeconfig
from lab.apiserver.store import Store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lab.apiserver",
        description=lab.apiserver.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", type=int, default=0, help="0: pick a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--kubeconfig", type=Path, help="write a kubeconfig for this server here")
    parser.add_argument(
        "--listen-netns",
        action="append",
        default=[],
        metavar="NS",
        help="also listen on HOST:PORT inside this network namespace",
    )
    parser.add_argument("--state", type=Path, help="load objects from / save them to this file")
    parser.add_argument("--bookmark-seconds", type=float, default=1.0)
    parser.add_argument(
        "--history",
        type=int,
        default=100_000,
        help="events kept for rewatching; older resourceVersions get 410",
    )
    secured = parser.add_argument_group("HTTPS, tokens and RBAC (the in-cluster path)")
    secured.add_argument(
        "--tls-dir",
        type=Path,
        metavar="DIR",
        help="serve HTTPS: CA in DIR/ca.crt, admin token for the kubeconfig (made or reused)",
    )
    secured.add_argument(
        "--tls-san",
        action="append",
        default=[],
        metavar="NAME",
        help="another IP or DNS name for the certificate (127.0.0.1, ::1, localhost always)",
    )
    secured.add_argument(
        "--service-account",
        metavar="NAMESPACE/NAME",
        help="accept this account's bearer token, written to DIR/token",
    )
    secured.add_argument(
        "--rbac",
        type=Path,
        metavar="FILE",
        help="rendered manifests whose (Cluster)Roles and bindings authorize the account",
    )
    args = parser.parse_args(argv)
    if args.tls_dir is None and (args.tls_san or args.service_account or args.rbac):
        parser.error("--tls-san, --service-account and --rbac need --tls-dir")
    if args.rbac and not args.service_account:
        parser.error("--rbac authorizes the --service-account: name one")

    security, scheme, token, ca = None, "http", "lab", None
    if args.tls_dir:
        try:
            security, files = secure(args.tls_dir, args.tls_san, args.service_account, args.rbac)
        except (ValueError, OSError, RuntimeError) as error:
            parser.error(str(error))
        scheme, token, ca = "https", files.admin_token, files.ca
    store = Store(args.history)
    if args.state and args.state.exists():
        store.load(args.state)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    listen = serving(
        args.port, args.host, args.listen_netns, store, args.bookmark_seconds, security
    )
    with listen as (_, port):
        host = f"[{args.host}]" if ":" in args.host else args.host
        url = f"{scheme}://{host}:{port}"
        if args.kubeconfig:
            write_kubeconfig(args.kubeconfig, url, token=token, ca=ca)
        print(f"lab apiserver listening on {url}", flush=True)
        stop.wait()
    if args.state:
        store.save(args.state)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
