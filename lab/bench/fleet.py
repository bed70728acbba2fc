"""``fleet``: N cosmolet nodes (ExaBGP + agent each) in two racks under two leaves and a spine,
one lab API server, S LoadBalancer Services over the nodes with Cluster and Local policies
(``lab.bench.fleet_nodes``). Measured, in one run:

1. cold start: every agent started at once -> the spine's RIB complete (each VIP from each leaf
   whose rack advertises it), and -> every node's every route at its leaf;
2. per node: RSS and CPU of cosmolet's processes (``cosmolet start``, ExaBGP, the agent) and of
   the FRR sidecar (zebra, bfdd), CPU to converge and while idle;
3. the API server's fan-out: watch events and bytes it sends per EndpointSlice change (each
   agent watches every EndpointSlice and Service, so it grows as N), and that at 1,000 nodes;
4. a rolling restart of the whole fleet, and a node falling silent with and without BFD, with a
   client streaming UDP through the spine (``lab.bench.fleet_faults``).

Hybrid mode (BGP unnumbered, the nodes' bfdd answering the leaves' BFD) by default; numbered
mode has no BFD, so its ``failover_ms_bfd`` is null.
"""

from __future__ import annotations

import os
import statistics
import time
from functools import partial
from typing import Any

from lab.bench.common import cpu_ticks, say
from lab.bench.fleet_faults import Probes, bfd_off, failover, rolling_restart
from lab.bench.fleet_nodes import (
    Api,
    Cluster,
    Node,
    leaf_session,
    leaves_progress,
    prepare_nodes,
    spine_complete,
    spine_expected,
    spine_rib_exact,
)
from lab.fabric import Fabric, build
from lab.netns import Lab, wait_for
from lab.node import rss_mb

COSMOLET = ("supervisor", "exabgp", "agent")
PAPER_NODES = 1000
LISTS = ("/api/v1/services", "/apis/discovery.k8s.io/v1/endpointslices")


def fleet(
    nodes: int = 16,
    services: int = 1000,
    mode: str = "hybrid",
    quiet: bool = False,
    idle_seconds: float = 10,
    changes: int = 10,
) -> dict[str, Any]:
    if nodes < 2 or nodes % 2:
        raise ValueError(f"two racks of equal size need an even number of nodes, got {nodes}")
    if services < 2:
        raise ValueError("at least two Services: a Cluster-policy VIP and a Local-policy VIP")
    if changes < 1:
        raise ValueError("count the fan-out of one EndpointSlice change at least")
    started = time.monotonic()
    with Lab() as lab:
        say(quiet, f"fleet: {nodes} nodes ({mode}), {services} Services; building the fabric")
        fabric = build(lab, mode, nodes=nodes, racks=True, bfd=mode == "hybrid")
        cluster = Cluster(nodes, services)
        api = Api(lab, cluster.objects(), [ns.name for ns in fabric.nodes])
        members = prepare_nodes(fabric, cluster.routes, api.kubeconfig)
        routes = sum(len(vips) for vips in cluster.routes.values())
        result: dict[str, Any] = {
            "nodes": nodes,
            "services": services,
            "mode": mode,
            "routes_per_node": round(routes / nodes, 1),
            "build_s": round(time.monotonic() - started, 1),
        }
        spine = spine_expected(cluster, members)
        result |= converge(fabric, cluster, members, spine, quiet)
        result |= footprint(members, idle_seconds, quiet)
        result |= fanout(api, fabric, cluster, members, changes, quiet)
        probes = Probes(fabric, cluster, members, lambda line: say(quiet, line))
        try:
            result |= rolling_restart(probes)
            if mode == "hybrid":
                result |= failover(probes, True, spine)
                bfd_off(fabric)
            else:
                result["failover_ms_bfd"] = None
            result |= failover(probes, False, spine)
        finally:
            probes.close()
        result["spine_rib_exact"] = spine_rib_exact(fabric, cluster, members)
    result["run_s"] = round(time.monotonic() - started, 1)
    return result


def converge(
    fabric: Fabric, cluster: Cluster, members: list[Node], spine: dict[str, int], quiet: bool
) -> dict[str, Any]:
    """Start every agent at once; time the spine's complete RIB and every route at the leaves,
    and the CPU each node's cosmolet spent getting there."""
    started = time.monotonic()
    for node in members:
        node.agent.start()
    launched = time.monotonic() - started
    spine_s = leaves_s = sessions_s = None
    while spine_s is None or leaves_s is None:
        if time.monotonic() - started > 900:
            raise TimeoutError("the fleet did not converge in 15 minutes")
        if spine_s is None and spine_complete(fabric, spine):
            spine_s = time.monotonic() - started
        up, complete = leaves_progress(fabric, cluster.routes, members)
        if sessions_s is None and up:
            sessions_s = time.monotonic() - started
        if leaves_s is None and complete:
            leaves_s = time.monotonic() - started
        time.sleep(0.1)
    assert sessions_s is not None
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = [sum(cpu_ticks(node.pids()[name]) for name in COSMOLET) / ticks for node in members]
    result = {
        "converge_s": round(spine_s, 2),
        "converge_leaves_s": round(leaves_s, 2),
        "sessions_up_s": round(sessions_s, 2),
        "launch_s": round(launched, 2),
        "node_cpu_s_to_converge": round(statistics.mean(cpu), 2),
        "node_cpu_s_to_converge_max": round(max(cpu), 2),
    }
    say(
        quiet,
        f"all {len(members)} agents started in {launched:.2f} s: every session up at "
        f"{sessions_s:.2f} s, spine RIB complete at "
        f"{spine_s:.2f} s, every route at the leaves at {leaves_s:.2f} s; cosmolet CPU to get "
        f"there {result['node_cpu_s_to_converge']} s per node (max "
        f"{result['node_cpu_s_to_converge_max']})",
    )
    return result


def footprint(members: list[Node], idle_seconds: float, quiet: bool) -> dict[str, Any]:
    """RSS per process kind (mean over nodes; the agent's max too), and CPU over an idle
    window, per node."""
    time.sleep(3)  # the last reconcile and ExaBGP's last UPDATEs
    pids = [node.pids() for node in members]
    rss = [{name: rss_mb(pid) for name, pid in found.items()} for found in pids]
    ticks = os.sysconf("SC_CLK_TCK")
    before = [sum(cpu_ticks(pid) for pid in found.values()) for found in pids]
    time.sleep(idle_seconds)
    after = [sum(cpu_ticks(pid) for pid in found.values()) for found in pids]
    idle = [(b - a) / ticks / idle_seconds * 1000 for a, b in zip(before, after, strict=True)]
    frr = [sum(mb for name, mb in sizes.items() if name not in COSMOLET) for sizes in rss]
    agent = [sizes["agent"] for sizes in rss]
    result = {
        "agent_rss_mb": round(statistics.mean(agent), 1),
        "agent_rss_mb_max": round(max(agent), 1),
        "exabgp_rss_mb": round(statistics.mean(sizes["exabgp"] for sizes in rss), 1),
        "supervisor_rss_mb": round(statistics.mean(sizes["supervisor"] for sizes in rss), 1),
        "cosmolet_rss_mb": round(statistics.mean(sum(n[k] for k in COSMOLET) for n in rss), 1),
        "frr_rss_mb": round(statistics.mean(frr), 1) if any(frr) else None,
        "node_idle_millicores": round(statistics.mean(idle), 1),
        "node_idle_millicores_max": round(max(idle), 1),
    }
    sidecar = f"FRR sidecar {result['frr_rss_mb']} MB" if any(frr) else "no FRR sidecar"
    say(
        quiet,
        f"per node: cosmolet {result['cosmolet_rss_mb']} MB (agent {result['agent_rss_mb']}, "
        f"max {result['agent_rss_mb_max']}; ExaBGP {result['exabgp_rss_mb']}; cosmolet start "
        f"{result['supervisor_rss_mb']}), {sidecar}; idle {result['node_idle_millicores']} "
        f"millicores (max {result['node_idle_millicores_max']})",
    )
    return result


def _settled(api: Api, seconds: float = 0.5, timeout: float = 60) -> tuple[int, int]:
    """The watch totals once they stop moving (events go out from the server's threads)."""
    deadline = time.monotonic() + timeout
    last = api.watch_totals()
    while time.monotonic() < deadline:
        time.sleep(seconds)
        now = api.watch_totals()
        if now == last:
            return now
        last = now
    raise TimeoutError(f"the API server's watches still sending after {timeout:.0f} s")


def _holds(fabric: Fabric, node: Node, routes: int) -> bool:
    """Whether the node's leaf has ``routes`` prefixes from it."""
    return bool(leaf_session(fabric, node).get("pfxRcd") == routes)


def fanout(
    api: Api, fabric: Fabric, cluster: Cluster, members: list[Node], changes: int, quiet: bool
) -> dict[str, Any]:
    """Flip the first endpoint of a Local Service not ready and back, ``changes`` times in
    all, each seen through to the leaf (its node withdraws or re-announces the VIP); count what
    the API server's watches sent meanwhile."""
    local = [index for index in range(cluster.services) if cluster.local(index)]
    before = _settled(api)
    for step in range(changes):
        index = local[step // 2 % len(local)]
        ready = step % 2 == 1  # first not ready, then ready again
        namespace, name = cluster.names(index)
        endpoints = cluster.endpoint_slice(index, (ready, True))["endpoints"]
        api.patch_slice(namespace, f"{name}-x1", {"endpoints": endpoints})
        node = members[cluster.endpoint_nodes(index)[0] - 1]
        want = len(cluster.routes[node.index]) - (0 if ready else 1)
        wait_for(
            partial(_holds, fabric, node, want),
            30,
            0.02,
            f"node{node.index} at its leaf after the change",
        )
    after = _settled(api)
    watches = len(api.get("/lab/watch-stats")["watches"])
    # What each agent reads when it starts (or relists): every Service and EndpointSlice.
    listed = sum(len(api.read(path)) for path in LISTS)
    events = (after[0] - before[0]) / changes
    size = (after[1] - before[1]) / changes
    result = {
        "api_watches": watches,
        "api_events_per_change": round(events, 2),
        "api_bytes_per_change": round(size),
        "api_bytes_per_event": round(size / events) if events else None,
        "api_events_per_change_1000_nodes": round(events / cluster.nodes * PAPER_NODES),
        "api_bytes_per_change_1000_nodes": round(size / cluster.nodes * PAPER_NODES),
        "api_list_bytes_per_node": listed,
    }
    say(
        quiet,
        f"API server: {watches} open watches; one EndpointSlice change sent "
        f"{result['api_events_per_change']} watch events, {result['api_bytes_per_change']} "
        f"bytes ({result['api_bytes_per_event']} each): one per node, so at {PAPER_NODES} "
        f"nodes {result['api_events_per_change_1000_nodes']} events and "
        f"{result['api_bytes_per_change_1000_nodes']} bytes per change; each agent's start "
        f"lists {listed} bytes",
    )
    return result
