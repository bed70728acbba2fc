"""``economy``: what cosmolet costs the switches, per policy mix (issue 23).

The fleet's fabric and nodes (``lab.bench.fleet_nodes``: N nodes in two racks under two leaves
and a spine, hybrid mode, one lab API server), here advertising S ClusterIP Services whose pods
sit on random nodes (``lab.bench.economy_cluster``). For each mix in turn (all Cluster, all
Local, a realistic mix, the same mix with the aggregate), once the fabric has settled, it reads
each switch's kernel (``lab.bench.fib``): the Services' routes in the FIB and the next-hop groups
they use, counted as distinct multipath sets and as kernel nexthop group objects, beside what
the model says they should be.

One run, one fabric: the mixes follow each other by patching the Services' policies (as an
owner would) and, for the aggregate, by restarting every agent with the aggregate configured.
The switches run zebra with kernel nexthop objects (FRR's default) so both counts exist; the
lab's other fabrics turn them off for a link-flap fault the economy never exercises.
"""

from __future__ import annotations

import time
from typing import Any

from lab.bench.common import say
from lab.bench.economy_cluster import AGGREGATE, MIXES, SERVICE_CIDR, Placement, paper
from lab.bench.fib import FibCount, count
from lab.bench.fleet_nodes import Api, Node, leaves_progress, prepare_nodes
from lab.fabric import Fabric, build
from lab.netns import Lab
from lab.node import Cosmolet

ROUTERS = ("leaf1", "leaf2", "spine")
#: the fleets the model is run for on paper: the issue's 10,000 Services over 100 nodes, in racks
#: of 20 and of 50 (nodes, Services, rack size)
PAPER = ((100, 10_000, 20), (100, 10_000, 50))


def services_config(mix: str) -> dict[str, Any]:
    """The agents' ``services:`` section: ClusterIPs only, aggregated in ``aggregate``."""
    cluster_ip: dict[str, Any] = {"enabled": True}
    if mix == "aggregate":
        cluster_ip["aggregate"] = [AGGREGATE]
    return {"advertise": {"clusterIP": cluster_ip}}


def economy(
    nodes: int = 16, services: int = 1000, seed: int = 23, quiet: bool = False
) -> dict[str, Any]:
    if nodes < 2 or nodes % 2:
        raise ValueError(f"two racks of equal size need an even number of nodes, got {nodes}")
    if not 2 <= services < SERVICE_CIDR.num_addresses - 1:
        raise ValueError(
            f"from two Services (a Local and a Cluster one in the mixed mixes) to as many as "
            f"{SERVICE_CIDR} has addresses for, got {services}"
        )
    started = time.monotonic()
    placement = Placement(nodes, services, nodes // 2, seed)
    result: dict[str, Any] = {"nodes": nodes, "services": services, "seed": seed, "mixes": {}}
    with Lab() as lab:
        say(quiet, f"economy: {nodes} nodes in 2 racks, {services} ClusterIP Services")
        fabric = build(lab, "hybrid", nodes=nodes, racks=True, bfd=True)
        for name in ROUTERS:
            fabric.routers[name].vtysh("configure terminal", "zebra nexthop kernel enable")
        api = Api(lab, placement.objects(MIXES[0]), [ns.name for ns in fabric.nodes])
        members = prepare_nodes(fabric, {}, api.kubeconfig, services_config(MIXES[0]))
        running = fabric.routers["leaf1"].vtysh("show running-config")
        result["spine_weighted"] = spine_weighted = "bandwidth cumulative" in running
        result["build_s"] = round(time.monotonic() - started, 1)
        for node in members:
            node.agent.start()
        previous = MIXES[0]
        for mix in MIXES:
            changed = time.monotonic()
            switch(api, fabric, placement, members, previous, mix)
            found = settle(fabric, placement, members, mix, spine_weighted)
            found["settle_s"] = round(time.monotonic() - changed, 1)
            result["mixes"][mix] = found
            say(quiet, line(mix, found))
            previous = mix
    result["paper"] = [paper(*size, spine_weighted, seed) for size in PAPER]
    result["run_s"] = round(time.monotonic() - started, 1)
    if not quiet:
        print(table(result))
    return result


def switch(
    api: Api, fabric: Fabric, placement: Placement, members: list[Node], old: str, new: str
) -> None:
    """From mix ``old`` to ``new``: patch the Services whose policy differs; for the
    aggregate (in or out), restart every agent with its new config: all at once, unlike a
    rolling update, to keep the run short (the leaves keep the routes under graceful restart,
    and the settling that follows waits for the new ones)."""
    for index in range(placement.services):
        if placement.local(old, index) != placement.local(new, index):
            policy = "Local" if placement.local(new, index) else "Cluster"
            api.patch_service(*placement.names(index), {"spec": {"internalTrafficPolicy": policy}})
    if (old == "aggregate") == (new == "aggregate"):
        return
    for node in members:
        assert node.agent.process is not None
        node.agent.process.terminate()
    for node in members:
        assert node.agent.process is not None
        node.agent.process.wait(30)
        config = {**node.agent.config, "services": services_config(new)}
        config.pop("runtimeDir")
        directory = fabric.lab.workdir / f"node{node.index}-{new}"
        node.agent = Cosmolet(node.ns, directory, config, node.agent.kubeconfig).start()


def settle(
    fabric: Fabric,
    placement: Placement,
    members: list[Node],
    mix: str,
    spine_weighted: bool,
    timeout: float = 600,
) -> dict[str, Any]:
    """Wait for the mix's routes: every node's count at its leaf, then every switch's FIB
    holding exactly the Services' prefixes and unchanged over two readings a second apart;
    then its figures, beside the model's (``spine_weighted``: the leaves re-advertise the sum
    of their paths' link bandwidth, so the spine weights them)."""
    advertised = placement.advertised(mix)
    prefixes = len(placement.prefixes(mix))
    deadline = time.monotonic() + timeout
    last: dict[str, FibCount] = {}
    while time.monotonic() < deadline:
        time.sleep(1)
        if not leaves_progress(fabric, advertised, members)[1]:
            continue
        now = {name: read(fabric, name) for name in ROUTERS}
        if now == last and all(found.routes == prefixes for found in now.values()):
            break
        last = now
    else:
        raise TimeoutError(f"mix {mix}: the fabric did not settle in {timeout:.0f} s")
    predicted = placement.groups(mix, spine_weighted)
    found: dict[str, Any] = {
        "routes_per_node": round(sum(map(len, advertised.values())) / len(advertised), 1),
    }
    for name, figures in now.items():
        found[name] = {**vars(figures), "groups_predicted": predicted[name]}
    return found


def read(fabric: Fabric, router: str) -> FibCount:
    ns = fabric.routers[router].ns
    routes = [*ns.ip_json("-4", "route", "show"), *ns.ip_json("-6", "route", "show")]
    return count(routes, ns.ip_json("nexthop", "show"), [SERVICE_CIDR])


def line(mix: str, found: dict[str, Any]) -> str:
    shown = ", ".join(
        f"{name} {found[name]['routes']} routes / {found[name]['nexthop_sets']} groups"
        for name in ROUTERS
    )
    return f"{mix}: {found['routes_per_node']} prefixes a node; {shown} ({found['settle_s']} s)"


def table(result: dict[str, Any]) -> str:
    """The mixes side by side: FIB routes and next-hop groups (sets / kernel objects /
    model) at each switch."""
    head = f"{'mix':<10} {'per node':>8}"
    for name in ROUTERS:
        head += f" | {name + ' FIB':>10} {'groups set/obj/model':>20}"
    rows = [head, "-" * len(head)]
    for mix, found in result["mixes"].items():
        row = f"{mix:<10} {found['routes_per_node']:>8}"
        for name in ROUTERS:
            at = found[name]
            groups = f"{at['nexthop_sets']}/{at['nexthop_objects']}/{at['groups_predicted']}"
            row += f" | {at['routes']:>10} {groups:>20}"
        rows.append(row)
    for size in result["paper"]:
        rows.append(
            f"on paper, {size['nodes']} nodes in racks of {size['rack_size']}, "
            f"{size['services']} Services: groups at the busiest leaf / the spine: "
            + ", ".join(
                f"{mix} {size[mix]['leaf_groups_max']}/{size[mix]['spine_groups']}" for mix in MIXES
            )
        )
    return "\n".join(rows)
