"""``withdraw``: an EndpointSlice update at the API server -> the route gone from the leaf's RIB
and FIB, against the floor (an FRR sender withdrawing the same prefix by ``vtysh``)."""

from __future__ import annotations

import functools
import operator
import statistics
import threading
import time
from typing import Any

from lab.bench.common import frr_sender_config, gone, kube_fabric, p99, present, received, say
from lab.netns import Lab, wait_for


class RouteMonitor:
    """``ip monitor route`` in a namespace: the time each prefix was deleted from its FIB."""

    def __init__(self, ns: Any) -> None:
        self.deleted: dict[str, float] = {}
        self.process = ns.popen("ip", "monitor", "route", stdout_pipe=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode(errors="replace")
            if line.startswith("Deleted "):
                self.deleted[line.split()[1]] = time.monotonic()


def kube_withdraw(services: int, samples: int, quiet: bool = False) -> dict[str, Any]:
    """EndpointSlice update at the API server -> the route gone from the leaf (RIB and FIB)."""
    with Lab() as lab:
        fabric, _node, _core, discovery, objects = kube_fabric(lab, services, nodes=2)
        monitor = RouteMonitor(fabric.leaf)
        floor_rib, floor_fib = _withdraw_floor(lab, fabric, monitor, services, samples)
        slices = [o for o in objects if o["kind"] == "EndpointSlice"]
        services_by_name = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
        fib_ms, rib_ms = [], []
        for index in range(samples):
            victim = slices[(index * 7919) % len(slices)]
            name = victim["metadata"]["labels"]["kubernetes.io/service-name"]
            ip = services_by_name[name]["spec"]["clusterIP"]
            endpoints = victim["endpoints"]
            down = [{**endpoints[0], "conditions": {"ready": False}}]
            started = time.monotonic()
            discovery.patch_namespaced_endpoint_slice(
                victim["metadata"]["name"], victim["metadata"]["namespace"], {"endpoints": down}
            )
            wait_for(functools.partial(gone, fabric, ip), 30, 0.001)
            rib_ms.append((time.monotonic() - started) * 1000)
            wait_for(functools.partial(operator.contains, monitor.deleted, ip), 30, 0.001)
            fib_ms.append((monitor.deleted.pop(ip) - started) * 1000)
            discovery.patch_namespaced_endpoint_slice(
                victim["metadata"]["name"],
                victim["metadata"]["namespace"],
                {"endpoints": endpoints},
            )
            wait_for(functools.partial(present, fabric, ip), 30, 0.005)
        result = {
            "services": services,
            "p50_ms": round(statistics.median(rib_ms), 1),
            "p99_ms": round(p99(rib_ms), 1),
            "fib_p50_ms": round(statistics.median(fib_ms), 1),
            "fib_p99_ms": round(p99(fib_ms), 1),
            "floor_p50_ms": round(statistics.median(floor_rib), 1),
            "floor_p99_ms": round(p99(floor_rib), 1),
            "floor_fib_p50_ms": round(statistics.median(floor_fib), 1),
            "floor_fib_p99_ms": round(p99(floor_fib), 1),
            "samples_ms": [round(v, 2) for v in rib_ms],
            "fib_samples_ms": [round(v, 2) for v in fib_ms],
            "floor_samples_ms": [round(v, 2) for v in floor_rib],
            "floor_fib_samples_ms": [round(v, 2) for v in floor_fib],
        }
        say(
            quiet,
            f"withdraw via the API server: RIB p50 {result['p50_ms']} ms p99 "
            f"{result['p99_ms']} ms (vtysh polling); FIB p50 {result['fib_p50_ms']} ms "
            f"p99 {result['fib_p99_ms']} ms; floor (FRR sender, `no network` by vtysh): RIB "
            f"p50 {result['floor_p50_ms']} p99 {result['floor_p99_ms']} ms, FIB p50 "
            f"{result['floor_fib_p50_ms']} p99 {result['floor_fib_p99_ms']} ms",
        )
        return result


def _withdraw_floor(
    lab: Lab, fabric: Any, monitor: RouteMonitor, routes: int, samples: int
) -> tuple[list[float], list[float]]:
    """The same withdraw from an FRR bgpd on node2 that originates ``routes`` /32s: the clock
    starts before the ``vtysh`` that removes the ``network`` (its own start-up, ~20 ms, is in
    the figure, as the API write is in cosmolet's)."""
    prefixes = [f"10.{200 + i // 65536}.{i // 256 % 256}.{i % 256}/32" for i in range(routes)]
    leaf_v4, node_v4, _, _ = fabric.addresses(2)
    origin = lab.frr(fabric.nodes[1], frr_sender_config(leaf_v4, node_v4, prefixes))
    wait_for(lambda: received(fabric, node_v4) >= routes, 600, 0.05)
    rib_ms: list[float] = []
    fib_ms: list[float] = []
    for index in range(samples):
        prefix = prefixes[(index * 7919) % routes]
        ip = prefix.removesuffix("/32")
        started = time.monotonic()
        origin.vtysh(
            "configure terminal",
            "router bgp 65001",
            "address-family ipv4 unicast",
            f"no network {prefix}",
        )
        wait_for(functools.partial(gone, fabric, ip), 30, 0.001)
        rib_ms.append((time.monotonic() - started) * 1000)
        wait_for(functools.partial(operator.contains, monitor.deleted, ip), 30, 0.001)
        fib_ms.append((monitor.deleted.pop(ip) - started) * 1000)
        origin.vtysh(
            "configure terminal",
            "router bgp 65001",
            "address-family ipv4 unicast",
            f"network {prefix}",
        )
        wait_for(functools.partial(present, fabric, ip), 30, 0.005)
    return rib_ms, fib_ms
