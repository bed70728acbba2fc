"""Benchmark of the pure route engine: decode + plan for N Services and their EndpointSlices.

    python -m lab.bench.plan_engine --services 10000

Prints one JSON object: the time to decode the raw objects (best of ``--repeat`` runs), to compute
the plan the first time (cold: every address parsed) and again (warm: parsed addresses cached, as
in the agent's steady state), and the routes planned.
"""

from __future__ import annotations

import argparse
import json
import time
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
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
