"""``withdraw-file``: an objects-file change making one Service unhealthy -> its route gone."""

from __future__ import annotations

import functools
import statistics
import time
from typing import Any

from lab.bench.common import gone, healthy_cluster, p99, received, say
from lab.netns import Lab, wait_for
from lab.numbered import build_numbered


def withdraw_file(services: int, samples: int, quiet: bool = False) -> dict[str, Any]:
    """Objects-file change making one Service unhealthy -> its route gone from the FRR RIB."""
    with Lab() as lab:
        fabric = build_numbered(lab)
        node = fabric.cosmolet(logging={"level": "warning", "format": "json"})
        node.config["bgp"]["peers"] = node.config["bgp"]["peers"][:1]
        node.__post_init__()
        objects = healthy_cluster(services)
        node.set_objects(objects)
        node.start()
        wait_for(lambda: received(fabric, fabric.NODE_V4) >= services, 600, 0.05)
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
            wait_for(functools.partial(gone, fabric, ip), 30, 0.002)
            latencies.append((time.monotonic() - started) * 1000)
            victim["endpoints"][0]["conditions"]["ready"] = True
        p50, tail = statistics.median(latencies), p99(latencies)
        say(quiet, f"withdraw via objects file: p50 {p50:.0f} ms, p99 {tail:.0f} ms")
        return {"services": services, "p50_ms": round(p50, 1), "p99_ms": round(tail, 1)}
