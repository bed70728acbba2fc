"""Data-plane probes for the fleet benchmark: a steady UDP stream, receivers on the nodes, and a
log of FIB changes.

- ``python -m lab.bench.traffic --rate R --port P --run ID VIP...`` (started in the client's
  namespace, a process of its own so that the benchmark's own work never bends its schedule)
  sends R packets a second to each VIP, each carrying (run, stream, sequence number); on SIGTERM
  it prints ``{"sent": [...]}``, the packets sent per stream, and exits.
- ``Receivers``: one UDP socket in each node's namespace, read by one thread here; it records
  which sequence numbers of each stream arrived, and which node got the latest.
- ``FibLog``: ``ip monitor route`` in a router's namespace; every change to a watched prefix's
  route, timed.

Lost packets are sent minus received; the longest run of missing sequence numbers, times the
interval, is how long a stream was black-holed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import selectors
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lab.netns import Namespace, socket_made_in

PACKET = struct.Struct("!HHI")  # run, stream, sequence number
RECEIVE_BUFFER = 4 << 20  # a receiver thread stalled for seconds must not drop anything
SO_RCVBUFFORCE = 33  # <asm-generic/socket.h>: past rmem_max, as root (not in typeshed)


def send(targets: Sequence[str], port: int, rate: float, run: int) -> list[int]:
    """Send to every target ``rate`` times a second until SIGTERM; the counts sent."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent = [0] * len(targets)
    interval, next_at, sequence = 1.0 / rate, time.monotonic(), 0
    while not stop.is_set():
        for stream, target in enumerate(targets):
            try:
                sock.sendto(PACKET.pack(run, stream, sequence), (target, port))
            except OSError:
                continue  # not sent, so not counted: loss is measured on what left
            sent[stream] += 1
        sequence += 1
        next_at += interval
        stop.wait(max(0.0, next_at - time.monotonic()))
    return sent


@dataclass
class Stream:
    """What arrived of one stream: its sequence numbers, and where the latest went."""

    seen: set[int] = field(default_factory=set)
    last_node: int = 0  # the node that got the latest packet


class Receivers:
    """A UDP socket on ``port`` in each node's namespace (node numbers from 1), one reader."""

    def __init__(self, namespaces: Sequence[Namespace], port: int) -> None:
        self.lock = threading.Lock()
        self.streams: dict[tuple[int, int], Stream] = {}
        self.selector = selectors.DefaultSelector()
        self.sockets = [udp_socket_in(ns.name, port) for ns in namespaces]
        for node, sock in enumerate(self.sockets, 1):
            self.selector.register(sock, selectors.EVENT_READ, node)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._read, name="udp-receivers", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self.stopping.is_set():
            for key, _ in self.selector.select(0.2):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                with contextlib.suppress(BlockingIOError):
                    while True:
                        data = sock.recv(64, socket.MSG_DONTWAIT)
                        if len(data) == PACKET.size:
                            self._record(key.data, *PACKET.unpack(data))

    def _record(self, node: int, run: int, stream: int, sequence: int) -> None:
        with self.lock:
            state = self.streams.setdefault((run, stream), Stream())
            state.seen.add(sequence)
            state.last_node = node

    def stream(self, run: int, stream: int) -> Stream:
        with self.lock:
            state = self.streams.get((run, stream), Stream())
            return Stream(set(state.seen), state.last_node)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join()
        for sock in self.sockets:
            sock.close()
        self.selector.close()


def udp_socket_in(netns: str, port: int) -> socket.socket:
    """A UDP socket bound to 0.0.0.0:``port`` in the named namespace."""

    def bound() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
        sock.bind(("0.0.0.0", port))
        return sock

    return socket_made_in(netns, bound)


class Sender:
    """The sending process in the client's namespace, for one run."""

    def __init__(
        self, client: Namespace, targets: Sequence[str], port: int, rate: float, run: int
    ) -> None:
        self.targets, self.rate, self.run = list(targets), rate, run
        self.process = client.popen(
            sys.executable,
            "-m",
            "lab.bench.traffic",
            "--rate",
            str(rate),
            "--port",
            str(port),
            "--run",
            str(run),
            *targets,
            stdout_pipe=True,
        )
        self.started = time.monotonic()

    def stop(self) -> list[int]:
        """Stop sending; the packets sent per target."""
        self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=10)
        return [int(n) for n in json.loads(out)["sent"]]


def outcome(sent: int, stream: Stream, interval: float) -> dict[str, Any]:
    """Lost packets, and the longest gap (ms): the longest run of missing sequence numbers."""
    missing = [seq for seq in range(sent) if seq not in stream.seen]
    longest = run = 0
    previous = -2
    for seq in missing:
        run = run + 1 if seq == previous + 1 else 1
        longest, previous = max(longest, run), seq
    return {
        "sent": sent,
        "lost": len(missing),
        "longest_gap_ms": round(longest * interval * 1000, 1),
    }


@dataclass
class FibChange:
    at: float  # time.monotonic()
    prefix: str
    deleted: bool


class FibLog:
    """``ip monitor route`` in a namespace: each change to the route of a watched prefix."""

    def __init__(self, ns: Namespace, prefixes: Sequence[str]) -> None:
        self.ns, self.watched = ns, set(prefixes)
        self.changes: list[FibChange] = []
        self.lock = threading.Lock()
        self.process = ns.popen("ip", "monitor", "route", stdout_pipe=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            words = raw.decode(errors="replace").split()
            if not words or raw[:1].isspace():
                continue  # a next hop of the route above
            deleted = words[0] == "Deleted"
            prefix = words[1] if deleted and len(words) > 1 else words[0]
            if prefix in self.watched:
                with self.lock:
                    self.changes.append(FibChange(time.monotonic(), prefix, deleted))

    def since(self, started: float, prefix: str | None = None) -> list[FibChange]:
        """The changes from ``started`` on; an error if the monitor is gone (it would miss
        them)."""
        code = self.process.poll()
        if code is not None:
            raise RuntimeError(f"ip monitor route in {self.ns.name} exited {code}")
        with self.lock:
            return [
                c
                for c in self.changes
                if c.at >= started and (prefix is None or c.prefix == prefix)
            ]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.bench.traffic", description=__doc__)
    parser.add_argument("--rate", type=float, default=200, help="packets a second per target")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--run", type=int, default=0, help="tags the packets of this run")
    parser.add_argument("targets", nargs="+")
    args = parser.parse_args(argv)
    sent = send(args.targets, args.port, args.rate, args.run)
    print(json.dumps({"sent": sent}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
