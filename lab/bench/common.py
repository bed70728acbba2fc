"""What the benchmark scenarios share: the cluster they advertise, the fabric they run on,
how they read the FRR leaf, and their output.

Every scenario builds its own lab (``lab.netns.Lab``), measures, and tears it down; the ones on
the Kubernetes source start from ``kube_fabric``: a lab API server preloaded with N healthy
Services and cosmolet already converged on them.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.bench.plan_engine import synthetic_cluster
from lab.netns import Lab, wait_for
from lab.node import rss_mb
from lab.numbered import build_numbered


def say(quiet: bool, *args: Any) -> None:
    """A human line of progress, unless the scenario was asked for its JSON only."""
    if not quiet:
        print(*args, flush=True)


def cpu_ticks(pid: int) -> int:
    """CPU time a process has used so far, user + system, in clock ticks (``SC_CLK_TCK``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def received(fabric: Any, peer: str) -> int:
    """How many prefixes the leaf has received from ``peer``."""
    summary = fabric.frr.json("show bgp ipv4 unicast summary json")
    return int(summary.get("peers", {}).get(peer, {}).get("pfxRcd", 0))


def gone(fabric: Any, ip: str) -> bool:
    """Whether the leaf has no path left to ``ip``/32."""
    return not fabric.frr.json(f"show bgp ipv4 unicast {ip}/32 json").get("paths")


def present(fabric: Any, ip: str) -> bool:
    return not gone(fabric, ip)


def healthy_cluster(services: int) -> list[dict[str, Any]]:
    """N ClusterIP Services, each with a ready endpoint: N routes to advertise."""
    objects = synthetic_cluster(services)
    for obj in objects:
        if obj["kind"] == "Service":
            obj["spec"]["type"] = "ClusterIP"
            obj.pop("status", None)
        else:
            obj["endpoints"][0]["conditions"]["ready"] = True
    return objects


def frr_sender_config(leaf: str, router_id: str, prefixes: list[str]) -> str:
    """An FRR bgpd originating ``prefixes`` to the leaf from its startup config: the floor.

    ``coalesce-time 0``: by default bgpd holds its first UPDATEs for a second after the session
    comes up (update-group coalescing), a fixed wait, not a throughput, which would hide how
    fast cosmolet moves routes (the floor of 1,000 and 50,000 routes differed by 0.35 s)."""
    lines = [
        "frr defaults datacenter",
        "hostname origin",
        "router bgp 65001",
        f" bgp router-id {router_id}",
        " coalesce-time 0",
        " no bgp ebgp-requires-policy",
        " no bgp default ipv4-unicast",
        " no bgp network import-check",
        f" neighbor {leaf} remote-as 65101",
        f" neighbor {leaf} timers 3 9",
        " address-family ipv4 unicast",
        f"  neighbor {leaf} activate",
    ]
    lines += [f"  network {prefix}" for prefix in prefixes]
    lines.append(" exit-address-family")
    return "\n".join(lines) + "\n"


def settle(seconds: float = 1.0) -> None:
    """The same peer state before each cold start: the leaf's bgpd up for a while, trying its
    neighbors on its connect timer (1 s), whichever sender starts next."""
    time.sleep(seconds)


class FirstTime:
    """When (monotonic seconds after ``started``) ``condition`` first held, polled every
    ``step`` seconds from a thread until it holds or ``stop`` is called."""

    def __init__(self, condition: Callable[[], bool], started: float, step: float = 0.002) -> None:
        self.condition, self.started, self.step = condition, started, step
        self.at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            if self.condition():
                self.at = time.monotonic() - self.started
                return
            self._stop.wait(self.step)

    def stop(self) -> float | None:
        self._stop.set()
        self._thread.join()
        return self.at


def bgp_connected(fabric: Any) -> Callable[[], bool]:
    """Whether the leaf holds an established TCP connection on port 179 (a BGP session is
    Established a few milliseconds later): read from its bgpd's /proc view of its namespace,
    so polling it every few milliseconds costs no process."""
    table = Path(f"/proc/{fabric.frr.pids['bgpd']}/net/tcp")

    def connected() -> bool:
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and ":00B3" in (fields[1][-5:], fields[2][-5:]):
                return True
        return False

    return connected


def spread(values: list[float]) -> dict[str, float]:
    """Median, min and max of repeated measurements."""
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def _state_file(path: Path, objects: list[dict[str, Any]]) -> None:
    """A lab API server state file holding ``objects`` (as if created one by one)."""
    kinds = {"Service": "v1", "EndpointSlice": "discovery.k8s.io/v1"}
    for index, obj in enumerate(objects):
        obj["apiVersion"] = kinds[obj["kind"]]
        meta = obj["metadata"]
        meta.setdefault("uid", f"00000000-0000-0000-0000-{index:012d}")
        meta.setdefault("creationTimestamp", "2024-06-01T00:00:00Z")
        meta["resourceVersion"] = "1"
    path.write_text(json.dumps({"rv": 1, "objects": objects}))


def kube_fabric(
    lab: Lab, services: int, env: dict[str, str] | None = None, nodes: int = 1
) -> tuple[Any, Any, Any, Any, list[dict[str, Any]]]:
    """A leaf, node1 running cosmolet on the Kubernetes source, and an API server with N
    healthy Services preloaded; returns once every route is in the leaf's RIB.

    Returns (fabric, cosmolet node, CoreV1Api, DiscoveryV1Api, the objects preloaded).
    """
    from kubernetes import client, config

    from lab.apiserver import free_port, start_host_apiserver

    fabric = build_numbered(lab, nodes=nodes)
    objects = healthy_cluster(services)
    state = lab.workdir / "apiserver.json"
    _state_file(state, objects)
    kubeconfig = lab.workdir / "kubeconfig"
    start_host_apiserver(lab, free_port(), kubeconfig, state, fabric.node.name)
    api = config.new_client_from_config(config_file=str(kubeconfig))
    node = one_peer_node(fabric, kubeconfig, env)
    node.start()
    wait_for(lambda: received(fabric, fabric.NODE_V4) >= services, 600, 0.05)
    return fabric, node, client.CoreV1Api(api), client.DiscoveryV1Api(api), objects


def fds(pid: int) -> int:
    """Open file descriptors of a process."""
    return len(os.listdir(f"/proc/{pid}/fd"))


#: What the soaks sample of the agent and ExaBGP, in this order.
PROCESS_SERIES = ("agent_rss_mb", "exabgp_rss_mb", "agent_fds", "exabgp_fds")


def process_sample(agent: int, exabgp: int) -> dict[str, float]:
    """One point of the soaks' series: RSS (MB) and open fds of the agent and ExaBGP."""
    return {
        "agent_rss_mb": rss_mb(agent),
        "exabgp_rss_mb": rss_mb(exabgp),
        "agent_fds": float(fds(agent)),
        "exabgp_fds": float(fds(exabgp)),
    }


def one_peer_node(fabric: Any, kubeconfig: Path, env: dict[str, str] | None = None) -> Any:
    """node1's cosmolet on the Kubernetes source, peering with the first leaf only, warnings
    logged as JSON: the node every single-node bench measures (not started)."""
    node = fabric.cosmolet(kubeconfig=kubeconfig, logging={"level": "warning", "format": "json"})
    node.config["bgp"]["peers"] = node.config["bgp"]["peers"][:1]
    node.__post_init__()
    node.env.update(env or {})
    return node
