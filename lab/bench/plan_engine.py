"""Benchmark of the pure route engine: decode + plan for N Services and their EndpointSlices.

    python -m lab.bench.plan_engine --services 10000
    python -m lab.bench.plan_engine --services 100000 --memory

Prints one JSON object: the time to decode the raw objects (best of ``--repeat`` runs), to compute
the plan the first time (cold) and at best (warm: caches and allocator warmed, as in the agent's
steady state), and the routes planned. With ``--memory``: what the agent's cluster
state holds once the Services and EndpointSlices are listed into it as the Kubernetes source
does (pages of raw JSON through the sinks), from tracemalloc, by where it was allocated.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
import tracemalloc
from typing import Any

from cosmolet.config.schema import validate
from cosmolet.engine.objects import decode_all
from cosmolet.engine.plan import plan_from_records


def synthetic_cluster(services: int, node_name: str = "node1") -> list[dict[str, Any]]:
    """N dual-purpose Services: ClusterIPs in 10.96/12, a third with an LB IP, a tenth unhealthy."""
    objects: list[dict[str, Any]] = []
    for index in range(services):
        name = f"svc-{index}"
        ip = f"10.{96 + index // 65536}.{index // 256 % 256}.{index % 256}"
        spec: dict[str, Any] = {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip]}
        svc: dict[str, Any] = {
            "kind": "Service",
            "metadata": {
                "name": name,
                "namespace": f"ns-{index % 50}",
                "labels": {"app": name},
                "creationTimestamp": "2024-06-01T00:00:00Z",
            },
            "spec": spec,
        }
        if index % 3 == 0:
            spec["type"] = "LoadBalancer"
            svc["status"] = {
                "loadBalancer": {"ingress": [{"ip": f"198.51.{index // 256 % 256}.{index % 256}"}]}
            }
        objects.append(svc)
        objects.append(
            {
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{name}-x1",
                    "namespace": f"ns-{index % 50}",
                    "labels": {"kubernetes.io/service-name": name},
                },
                "addressType": "IPv4",
                "endpoints": [
                    {
                        "addresses": [f"10.244.{index // 256 % 256}.{index % 256}"],
                        "nodeName": node_name if index % 2 else "node2",
                        "conditions": {"ready": index % 10 != 0},
                    }
                ],
            }
        )
    return objects


#: tracemalloc's files, grouped into what they hold
_GROUPS = {
    "cosmolet/engine/objects.py": "records (Services as decoded, slices' keys)",
    "cosmolet/sources/sinks.py": "records (Services as decoded, slices' keys)",
    "cosmolet/engine/rules.py": "decisions and routes",
    "cosmolet/engine/model.py": "decisions and routes",
    "cosmolet/engine/builder.py": "the builder's indexes",
}


def agent_memory(services: int, config: Any) -> dict[str, Any]:
    """The cluster state's live Python objects after the first list, by what holds them, and
    the time that list took to go through the sinks (decode, evaluate, announce)."""
    import msgspec

    from cosmolet.engine.builder import PlanBuilder
    from cosmolet.engine.objects import EndpointSlice, Service, decode_json
    from cosmolet.kube.client import RawList
    from cosmolet.sources.sinks import ServiceSink, SliceSink
    from cosmolet.sources.state import ClusterState
    from lab.bench.common import healthy_cluster
    from lab.bench.listserver import _pages

    objects = healthy_cluster(services)
    pages = [
        (kind, page)
        for kind in ("Service", "EndpointSlice")
        for page in _pages(kind, [o for o in objects if o["kind"] == kind])
    ]
    del objects
    gc.collect()
    tracemalloc.start(1)
    started = time.perf_counter()
    state = ClusterState(PlanBuilder(config, "node1"), lambda _cause: None)
    state.mark_node_known()
    sinks: dict[str, Any] = {
        "Service": ServiceSink(state, False),
        "EndpointSlice": SliceSink(state),
    }
    types: dict[str, Any] = {"Service": Service, "EndpointSlice": EndpointSlice}
    announced = 0
    for kind, raw in pages:
        page = msgspec.json.decode(raw, type=RawList)
        sinks[kind].upsert([decode_json(types[kind], item) for item in page.items or ()])
        announced += len(state.take_announcements())
    seconds = time.perf_counter() - started
    gc.collect()
    snapshot = tracemalloc.take_snapshot()
    tracemalloc.stop()
    groups: dict[str, int] = {}
    for stat in snapshot.statistics("filename"):
        name = stat.traceback[0].filename
        group = next((g for f, g in _GROUPS.items() if name.endswith(f)), "other")
        groups[group] = groups.get(group, 0) + stat.size
    total = sum(groups.values())
    return {
        "services": services,
        "routes": announced,
        "list_through_sinks_s": round(seconds, 2),
        "live_mb": round(total / 2**20, 1),
        "bytes_per_service": round(total / max(services, 1)),
        "by_what_mb": {g: round(size / 2**20, 1) for g, size in sorted(groups.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--memory", action="store_true", help="the agent's cluster state")
    args = parser.parse_args()
    config = validate(
        {
            "nodeName": "node1",
            "bgp": {"asn": 65001},
            "services": {
                "advertise": {
                    "loadBalancerIPs": {"enabled": True, "allowedCIDRs": ["198.51.0.0/16"]}
                }
            },
        }
    )
    if args.memory:
        print(json.dumps(agent_memory(args.services, config)))
        return
    objects = synthetic_cluster(args.services)
    decode_s = plan_s = float("inf")
    cold_plan_s = 0.0
    routes = 0
    for attempt in range(args.repeat):
        start = time.perf_counter()
        records, malformed = decode_all(objects)
        decoded = time.perf_counter()
        plan = plan_from_records(config, "node1", records, malformed)
        done = time.perf_counter()
        decode_s = min(decode_s, decoded - start)
        plan_s = min(plan_s, done - decoded)
        if attempt == 0:
            cold_plan_s = done - decoded
        routes = len(plan.routes)
    print(
        json.dumps(
            {
                "services": args.services,
                "routes": routes,
                "decode_ms": round(decode_s * 1000, 1),
                "plan_cold_ms": round(cold_plan_s * 1000, 1),
                "plan_warm_ms": round(plan_s * 1000, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
