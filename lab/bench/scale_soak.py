"""Soak at scale: 100,000 Services listed (``lab.bench.listserver``), readiness flips pushed on
the EndpointSlice watch at a steady rate, RSS and open fds of the agent and ExaBGP sampled, and
the leaf's final route count checked.

    python -m lab.bench.scale_soak --services 100000 --minutes 10 --rate 100

``lab.bench soak`` does the same through the lab API server, whose lists cost O(N) a page and
make 100,000 Services impractical to start with; here the changes arrive as a real watch sends
them (MODIFIED events), which is the path a steady state exercises.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import time
from typing import Any

from lab.bench.churn import slope_per_hour
from lab.bench.common import (
    PROCESS_SERIES,
    healthy_cluster,
    one_peer_node,
    process_sample,
    received,
    say,
    settle,
)
from lab.bench.listserver import ListServer
from lab.netns import Lab, wait_for
from lab.numbered import build_numbered


def scale_soak(
    services: int,
    minutes: float,
    rate: float,
    every: float = 10,
    quiet: bool = False,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Churn ``rate`` readiness flips a second for ``minutes`` over ``services`` Services."""
    objects = healthy_cluster(services)
    slices = [o for o in objects if o["kind"] == "EndpointSlice"]
    ready = [True] * len(slices)
    lists = ListServer(objects, "node1")
    with Lab() as lab:
        fabric = build_numbered(lab)
        kubeconfig = lab.workdir / "kubeconfig"
        with lists.serving(fabric.node.name, kubeconfig):
            node = one_peer_node(fabric, kubeconfig, env)
            settle()
            node.start()
            wait_for(lambda: received(fabric, fabric.NODE_V4) >= services, 900, 0.2)
            wait_for(lambda: lists.watching("EndpointSlice") > 0, 60)
            agent, exabgp = node.agent_pid(), node.exabgp_pid()
            series: dict[str, list[tuple[float, float]]] = {k: [] for k in PROCESS_SERIES}
            rng = random.Random(1)
            version, changes = 1, 0
            started = time.monotonic()
            next_sample = started
            deadline = started + minutes * 60
            while time.monotonic() < deadline:
                now = time.monotonic()
                if now >= next_sample:
                    point = process_sample(agent, exabgp)
                    for key, value in point.items():
                        series[key].append((now - started, value))
                    say(quiet, json.dumps({"t": round(now - started), **point}))
                    next_sample += every
                index = rng.randrange(len(slices))
                ready[index] = not ready[index]
                version += 1
                changed = copy.deepcopy(slices[index])
                changed["metadata"]["resourceVersion"] = str(version)
                changed["endpoints"][0]["conditions"]["ready"] = ready[index]
                lists.push("EndpointSlice", "MODIFIED", changed)
                changes += 1
                time.sleep(max(0.0, started + changes / rate - time.monotonic()))
            expected = sum(ready)
            try:
                wait_for(lambda: received(fabric, fabric.NODE_V4) == expected, 120, 0.5)
                exact = True
            except TimeoutError:
                exact = False
            same = (node.agent_pid(), node.exabgp_pid()) == (agent, exabgp)
    warm = {k: [(t, v) for t, v in points if t >= 60] or points for k, points in series.items()}
    result: dict[str, Any] = {
        "services": services,
        "minutes": minutes,
        "rate": rate,
        "exabgp_tuning": (env or {}).get("COSMOLET_EXABGP_TUNING", "on"),
        "changes": changes,
        "final_count_matches": exact,
        "same_processes": same,
    }
    for key, points in series.items():
        result[f"{key}_start"] = round(points[0][1], 1)
        result[f"{key}_end"] = round(points[-1][1], 1)
        result[f"{key}_max"] = round(max(v for _, v in points), 1)
        result[f"{key}_slope_per_hour"] = round(slope_per_hour(warm[key]), 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, default=100_000)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--every", type=float, default=10)
    parser.add_argument("--exabgp-tuning", help="COSMOLET_EXABGP_TUNING for this run")
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args()
    env = {"COSMOLET_EXABGP_TUNING": args.exabgp_tuning} if args.exabgp_tuning else {}
    result = scale_soak(args.services, args.minutes, args.rate, args.every, args.json, env)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
