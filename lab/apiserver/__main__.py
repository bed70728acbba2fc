"""``python -m lab.apiserver``: serve until SIGTERM or SIGINT, then save ``--state``."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

import lab.apiserver
from lab.apiserver.listener import serving, write_kubeconfig
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
    args = parser.parse_args(argv)

    store = Store(args.history)
    if args.state and args.state.exists():
        store.load(args.state)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with serving(args.port, args.host, args.listen_netns, store, args.bookmark_seconds) as (
        _,
        port,
    ):
        host = f"[{args.host}]" if ":" in args.host else args.host
        if args.kubeconfig:
            write_kubeconfig(args.kubeconfig, f"http://{host}:{port}")
        print(f"lab apiserver listening on http://{host}:{port}", flush=True)
        stop.wait()
    if args.state:
        store.save(args.state)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
