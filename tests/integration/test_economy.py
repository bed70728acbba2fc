"""The fabric-economy benchmark kept honest: ``python -m lab.bench economy`` on a small fleet
(six nodes, three a rack, 60 Services), every mix run for real, each switch's kernel counts
checked against the model (``lab.bench.economy_cluster``) and against each other."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from lab.bench.economy_cluster import LOCAL_EVERY, MIXES

ROOT = Path(__file__).resolve().parents[2]
SERVICES = 60


def test_a_small_fleet_costs_what_the_model_says() -> None:
    command = [sys.executable, "-m", "lab.bench", "economy", "--nodes", "6"]
    run = subprocess.run(
        [*command, "--services", str(SERVICES), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert list(result["mixes"]) == list(MIXES)
    for mix, found in result["mixes"].items():
        for router in ("leaf1", "leaf2", "spine"):
            at = found[router]
            # Both readings of the kernel agree, and with the model.
            assert at["nexthop_sets"] == at["nexthop_objects"] == at["groups_predicted"], (
                mix,
                router,
                at,
            )
    cluster, local, aggregate = (result["mixes"][mix] for mix in ("cluster", "local", "aggregate"))
    # All Cluster: every node advertises every ClusterIP, one group per switch.
    assert cluster["routes_per_node"] == SERVICES
    assert all(
        cluster[r]["routes"] == SERVICES and cluster[r]["nexthop_sets"] == 1
        for r in ("leaf1", "leaf2")
    )
    # All Local: the nodes' sets differ, so the leaves need more groups (and no fewer routes).
    assert all(
        local[r]["routes"] == SERVICES and local[r]["nexthop_sets"] > 1 for r in ("leaf1", "leaf2")
    )
    # The aggregate: one route for the Cluster ClusterIPs and the Local ones one by one.
    locals_ = SERVICES // LOCAL_EVERY
    assert all(aggregate[r]["routes"] == 1 + locals_ for r in ("leaf1", "leaf2", "spine"))
