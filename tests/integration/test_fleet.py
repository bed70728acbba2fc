"""The fleet benchmark kept working: ``python -m lab.bench fleet`` on a tiny fleet (two nodes,
one per rack, 20 Services), every phase run for real, its figures checked for sense."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from lab.fabric import node_links

ROOT = Path(__file__).resolve().parents[2]
KEYS = {
    "nodes",
    "services",
    "converge_s",
    "api_events_per_change",
    "api_bytes_per_change",
    "rolling_restart_lost_packets",
    "failover_ms_bfd",
    "failover_ms_hold",
}


def test_two_racks_split_the_nodes_and_the_default_stays_dual_homed() -> None:
    racks = node_links(4, racks=True)
    assert [(link.leaf, link.leaf_port, link.node_port) for link in racks] == [
        (1, "eth1", "eth1"),
        (1, "eth2", "eth1"),
        (2, "eth1", "eth1"),
        (2, "eth2", "eth1"),
    ]
    dual = node_links(2, racks=False)
    assert [(link.node, link.leaf, link.leaf_port, link.node_port) for link in dual] == [
        (1, 1, "eth1", "eth1"),
        (2, 1, "eth2", "eth1"),
        (1, 2, "eth1", "eth2"),
        (2, 2, "eth2", "eth2"),
    ]


def test_a_tiny_fleet_converges_restarts_without_loss_and_fails_over() -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "lab.bench",
            "fleet",
            "--nodes",
            "2",
            "--services",
            "20",
            "--idle-seconds",
            "2",
            "--changes",
            "4",
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result.keys() >= KEYS
    assert (result["nodes"], result["services"], result["mode"]) == (2, 20, "hybrid")
    # Routes follow sessions; with one node a rack, the spine needs every node's routes.
    assert 0 < result["sessions_up_s"] <= min(result["converge_s"], result["converge_leaves_s"])
    assert result["converge_s"] < 60
    assert result["spine_rib_exact"] is True
    # Each of the two agents watches every EndpointSlice: one event each per change.
    assert result["api_watches"] == 6
    assert result["api_events_per_change"] == 2
    assert result["api_bytes_per_event"] > 300  # one EndpointSlice with its two endpoints
    assert abs(result["api_bytes_per_change"] - 2 * result["api_bytes_per_event"]) <= 1
    assert result["api_events_per_change_1000_nodes"] == 1000
    # Graceful restart: the leaves keep the routes, the streams lose nothing.
    assert result["rolling_restart_sent_packets"] > 1000
    assert result["rolling_restart_lost_packets"] == 0
    assert result["rolling_restart_spine_route_changes"] == 0
    # A silent node: BFD moves the VIP in well under a second, the hold time takes seconds.
    assert 0 < result["failover_ms_bfd"] < 1500
    assert 3000 < result["failover_ms_hold"] < 12_000
    assert 0 < result["failover_lost_packets_bfd"] < result["failover_lost_packets_hold"]
    assert result["agent_rss_mb"] > 0 and result["exabgp_rss_mb"] > 0
