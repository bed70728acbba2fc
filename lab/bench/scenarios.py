"""Benchmark scenarios: each builds its own fabric, measures, and tears it down."""

from __future__ import annotations

import functools
import statistics
import time
from typing import Any

from lab.bench.plan_engine import synthetic_cluster
from lab.netns import Lab, wait_for
from tests.integration.conftest import build_numbered


def _say(quiet: bool, *args: Any) -> None:
    if not quiet:
        print(*args, flush=True)


def _received(fabric: Any, peer: str) -> int:
    summary = fabric.frr.json("show bgp ipv4 unicast summary json")
    return int(summary.get("peers", {}).get(peer, {}).get("pfxRcd", 0))


def _gone(fabric: Any, ip: str) -> bool:
    return not fabric.frr.json(f"show bgp ipv4 unicast {ip}/32 json").get("paths")


def _healthy_cluster(services: int) -> list[dict[str, Any]]:
    objects = synthetic_cluster(services)
    for obj in objects:
        if obj["kind"] == "Service":
            obj["spec"]["type"] = "ClusterIP"
            obj.pop("status", None)
        else:
            obj["endpoints"][0]["conditions"]["ready"] = True
    return objects


def coldstart(routes: int, quiet: bool = False) -> dict[str, Any]:
    """From ``cosmolet start`` to N routes in the FRR peer's RIB (one IPv4 session)."""
    with Lab() as lab:
        fabric = build_numbered(lab)
        node = fabric.cosmolet(logging={"level": "warning", "format": "json"})
        node.config["bgp"]["peers"] = node.config["bgp"]["peers"][:1]
        node.__post_init__()
        node.set_objects(_healthy_cluster(routes))
        started = time.monotonic()
        node.start()
        wait_for(lambda: fabric.established(fabric.NODE_V4), 60, 0.01)
        up = time.monotonic() - started
        wait_for(lambda: _received(fabric, fabric.NODE_V4) >= routes, 600, 0.05)
        total = time.monotonic() - started
        _say(quiet, f"coldstart: session up {up:.2f}s, {routes} routes in RIB after {total:.2f}s")
        return {"routes": routes, "cosmolet_s": round(total, 2), "session_up_s": round(up, 2)}


def withdraw_file(services: int, samples: int, quiet: bool = False) -> dict[str, Any]:
    """Objects-file change making one Service unhealthy -> its route gone from the FRR RIB."""
    with Lab() as lab:
        fabric = build_numbered(lab)
        node = fabric.cosmolet(logging={"level": "warning", "format": "json"})
        node.config["bgp"]["peers"] = node.config["bgp"]["peers"][:1]
        node.__post_init__()
        objects = _healthy_cluster(services)
        node.set_objects(objects)
        node.start()
        wait_for(lambda: _received(fabric, fabric.NODE_V4) >= services, 600, 0.05)
        latencies = []
        slices = [obj for obj in objects if obj["kind"] == "EndpointSlice"]
        for index in range(samples):
            victim = slices[index * 7 % len(slices)]
            ip = next(
                o["spec"]["clusterIP"]
                for o in objects
                if o["kind"] == "Service"
                and o["metadata"]["name"]
                == victim["metadata"]["labels"]["kubernetes.io/service-name"]
            )
            victim["endpoints"][0]["conditions"]["ready"] = False
            started = time.monotonic()
            node.set_objects(objects)
            wait_for(functools.partial(_gone, fabric, ip), 30, 0.002)
            latencies.append((time.monotonic() - started) * 1000)
            victim["endpoints"][0]["conditions"]["ready"] = True
        latencies.sort()
        p50 = statistics.median(latencies)
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        _say(quiet, f"withdraw via objects file: p50 {p50:.0f} ms, p99 {p99:.0f} ms")
        return {"services": services, "p50_ms": round(p50, 1), "p99_ms": round(p99, 1)}
