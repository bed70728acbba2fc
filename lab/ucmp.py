"""Weighted ECMP as the data plane sees it: a route's next-hop weights in a namespace's kernel
FIB, and a flow test that counts where many flows through the fabric's hashes really land.

The weights are what FRR's zebra installed from the link-bandwidth communities (``weight N``
per next hop, scaled by FRR to 100 in total; plain ECMP shows ``weight 1`` each). The flow test
is the proof that the kernel hashes by them: a thousand UDP flows (one source port each) from
the client to a Service address, a listener on that address in each node counting the flows it
got. The hash covers the ports only with ``fib_multipath_hash_policy=1``, set here in the
switches' namespaces (never on the host). Packets go only to addresses inside the lab.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from lab.fabric import Fabric
from lab.fabric import running as fabric_running
from lab.netns import FrrRouter, Namespace

#: The UDP port the flow test sends to (nothing else in the lab listens on it).
FLOW_PORT = 9909

#: A listener in a node: counts the distinct source (address, port) pairs of what reaches
#: ADDRESS:PORT, says "ready" once bound, prints the count as JSON on SIGTERM.
_LISTEN = """
import json, signal, socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
sock = socket.socket(family, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
sock.bind((sys.argv[1], int(sys.argv[2])))
flows = set()
def done(*_):
    print(json.dumps({"flows": len(flows)}), flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, done)
print("ready", flush=True)
while True:
    _, source = sock.recvfrom(64)
    flows.add(source[:2])
"""

#: The sender in the client: one datagram from each of COUNT source ports from FIRST up.
_SEND = """
import socket, sys
address, port, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
family = socket.AF_INET6 if ":" in address else socket.AF_INET
for source_port in range(first, first + count):
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind(("", source_port))
        sock.sendto(b"cosmolet-ucmp", (address, port))
print(count)
"""


def fib_weights(ns: Namespace, prefix: str) -> dict[str, int]:
    """The weight of each next hop of ``prefix``'s BGP route in ``ns``'s kernel FIB, by
    outgoing interface (one next hop per interface in the lab); {} when there is no such route.
    A route with a single next hop has weight 1 (the kernel does not show it)."""
    family = "-6" if ":" in prefix else "-4"
    weights: dict[str, int] = {}
    for route in ns.ip_json(family, "route", "show", prefix):
        if route.get("protocol") != "bgp":
            continue
        for hop in route.get("nexthops") or [route]:
            weights[str(hop["dev"])] = int(hop.get("weight", 1))
    return weights


_LINK_BANDWIDTH = re.compile(r"\bLB:\d+:(\d+)\b")


def link_bandwidths(router: FrrRouter, prefix: str) -> dict[str, int | None]:
    """The link bandwidth (bytes/s) each path of ``prefix`` in ``router``'s BGP table carries,
    by the peer's interface (or address); None for a path without one."""
    family = "ipv6" if ":" in prefix else "ipv4"
    found: dict[str, int | None] = {}
    for path in router.json(f"show bgp {family} unicast {prefix} json").get("paths", []):
        peer = path.get("peer", {})
        name = str(peer.get("interface") or peer.get("peerId"))
        match = _LINK_BANDWIDTH.search(path.get("extendedCommunity", {}).get("string", ""))
        found[name] = int(match[1]) if match else None
    return found


def hash_by_ports(*switches: Namespace) -> None:
    """Multipath hashing by the 5-tuple (L4) for IPv4 and IPv6 in each switch's namespace, as
    data-centre switches hash (the kernel's default, L3, sends every flow between two addresses
    down one path), each with a seed of its own. The kernel's default seed is one random key
    shared by every namespace: the spine and a leaf would then hash a flow alike, the spine's
    half of the flows would reach each leaf already sorted, and the leaf would send them down
    a subset of its paths (hash polarization; seen here: a node of three got no flow)."""
    for index, ns in enumerate(switches, 1):
        for family in ("ipv4", "ipv6"):
            ns.run("sysctl", "-qw", f"net.{family}.fib_multipath_hash_policy=1")
        ns.run("sysctl", "-qw", f"net.ipv4.fib_multipath_hash_seed={index * 7919}")


@dataclass(frozen=True)
class FlowSplit:
    """Where ``sent`` flows to one address landed: node name -> flows received."""

    sent: int
    received: dict[str, int]

    @property
    def lost(self) -> int:
        return self.sent - sum(self.received.values())

    def ratio(self, first: str, second: str) -> float:
        """Flows at ``first`` per flow at ``second`` (inf if none reached ``second``)."""
        return self.received[first] / self.received[second] if self.received[second] else math.inf


def flow_split(
    client: Namespace,
    nodes: Mapping[str, Namespace],
    address: str,
    flows: int = 2000,
    first_port: int = 20000,
    settle: float = 0.5,
) -> FlowSplit:
    """Send ``flows`` UDP flows (one datagram from each source port ``first_port`` on) from
    ``client`` to ``address``, and count in each of ``nodes`` (which hold ``address``, standing
    in for the Service's endpoints) the flows that arrived there."""
    listeners: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, ns in nodes.items():
            process = ns.popen(
                sys.executable, "-c", _LISTEN, address, str(FLOW_PORT), stdout_pipe=True
            )
            listeners[name] = process
            assert process.stdout is not None
            if process.stdout.readline().strip() != b"ready":
                raise RuntimeError(f"the flow listener in {name} did not start")
        out = client.run(
            sys.executable, "-c", _SEND, address, str(FLOW_PORT), str(first_port), str(flows)
        )
        sent = int(out.strip())
        time.sleep(settle)  # the last datagrams are still in the fabric
        return FlowSplit(sent, {name: _count(p) for name, p in listeners.items()})
    finally:
        for process in listeners.values():
            if process.poll() is None:
                process.kill()
                process.wait(5)


def _count(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=10)
    return int(json.loads(out.decode().strip().splitlines()[-1])["flows"])


def describe(weights: Mapping[str, int]) -> str:
    """``node1 weight 75, node2 weight 25``: for the demo's narration."""
    return ", ".join(f"{hop} weight {weight}" for hop, weight in sorted(weights.items()))


@contextlib.contextmanager
def running(nodes: int = 3) -> Iterator[Fabric]:
    """The reference fabric (hybrid, each node on both leaves) with ``nodes`` nodes, the lab API
    server, cosmolet on every node, and L4 hashing on the switches; removed on exit."""
    with fabric_running("hybrid", nodes=nodes) as fabric:
        hash_by_ports(fabric.spine, *fabric.leaves)
        yield fabric
