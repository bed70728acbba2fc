"""Benchmark scenarios: each builds its own fabric, measures, and tears it down."""

from __future__ import annotations

import functools
import json
import operator
import os
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from lab.bench.plan_engine import synthetic_cluster
from lab.netns import Lab, wait_for
from lab.node import rss_mb
from lab.numbered import build_numbered


def _say(quiet: bool, *args: Any) -> None:
    if not quiet:
        print(*args, flush=True)


def _received(fabric: Any, peer: str) -> int:
    summary = fabric.frr.json("show bgp ipv4 unicast summary json")
    return int(summary.get("peers", {}).get(peer, {}).get("pfxRcd", 0))


def _gone(fabric: Any, ip: str) -> bool:
    return not fabric.frr.json(f"show bgp ipv4 unicast {ip}/32 json").get("paths")


def _present(fabric: Any, ip: str) -> bool:
    return not _gone(fabric, ip)


def _healthy_cluster(services: int) -> list[dict[str, Any]]:
    objects = synthetic_cluster(services)
    for obj in objects:
        if obj["kind"] == "Service":
            obj["spec"]["type"] = "ClusterIP"
            obj.pop("status", None)
        else:
            obj["endpoints"][0]["conditions"]["ready"] = True
    return objects


def coldstart(routes: int, quiet: bool = False, naive_sample: int = 500) -> dict[str, Any]:
    """From start to N routes in the FRR peer's RIB, three ways, in one run:

    - cosmolet: ``cosmolet start`` (ExaBGP + agent) with N healthy Services already there;
    - the floor: an FRR bgpd originating the same N /32s from its startup configuration;
    - the naive way: one ``vtysh`` process per route adding a ``network`` statement (what a
      tool configuring FRR per Service does), timed on ``naive_sample`` routes and extrapolated.
      It leaves out the ``write memory`` such tools add per change (that would write the
      host's /etc/frr), so it is a lower bound of their cost.
    """
    stock_s, _ = _coldstart_cosmolet(routes, {"COSMOLET_EXABGP_TUNING": "off"})
    _say(quiet, f"coldstart cosmolet with stock ExaBGP: {routes} routes in {stock_s:.2f}s")
    cosmolet_s, up = _coldstart_cosmolet(routes)
    _say(quiet, f"coldstart cosmolet: session up {up:.2f}s, {routes} routes in {cosmolet_s:.2f}s")
    floor_s, naive_per_route = _coldstart_frr(routes, naive_sample)
    naive_s = naive_per_route * routes
    _say(
        quiet,
        f"coldstart floor (FRR originating): {floor_s:.2f}s; naive (vtysh per route): "
        f"{naive_per_route * 1000:.1f} ms/route -> {naive_s:.0f}s for {routes}",
    )
    return {
        "routes": routes,
        "cosmolet_s": round(cosmolet_s, 2),
        "cosmolet_stock_exabgp_s": round(stock_s, 2),
        "floor_s": round(floor_s, 2),
        "naive_s": round(naive_s, 1),
        "ratio_to_floor": round(cosmolet_s / floor_s, 2),
        "speedup_vs_naive": round(naive_s / cosmolet_s, 1),
        "session_up_s": round(up, 2),
    }


def _coldstart_cosmolet(routes: int, env: dict[str, str] | None = None) -> tuple[float, float]:
    with Lab() as lab:
        fabric = build_numbered(lab)
        node = fabric.cosmolet(logging={"level": "warning", "format": "json"})
        node.config["bgp"]["peers"] = node.config["bgp"]["peers"][:1]
        node.__post_init__()
        node.env.update(env or {})
        node.set_objects(_healthy_cluster(routes))
        started = time.monotonic()
        node.start()
        wait_for(lambda: fabric.established(fabric.NODE_V4), 60, 0.01)
        up = time.monotonic() - started
        wait_for(lambda: _received(fabric, fabric.NODE_V4) >= routes, 600, 0.05)
        return time.monotonic() - started, up


def frr_sender_config(leaf: str, router_id: str, prefixes: list[str]) -> str:
    """An FRR bgpd originating ``prefixes`` to the leaf from its startup config: the floor."""
    lines = [
        "frr defaults datacenter",
        "hostname origin",
        "router bgp 65001",
        f" bgp router-id {router_id}",
        " no bgp ebgp-requires-policy",
        " no bgp default ipv4-unicast",
        " no bgp network import-check",
        f" neighbor {leaf} remote-as 65101",
        f" neighbor {leaf} timers 3 9",
        " address-family ipv4 unicast",
        f"  neighbor {leaf} activate",
    ]
    lines += [f"  network {prefix}" for prefix in prefixes]
    lines.append(" exit-address-family")
    return "\n".join(lines) + "\n"


def _coldstart_frr(routes: int, naive_sample: int) -> tuple[float, float]:
    """(seconds for an FRR sender to deliver N originated routes, seconds per naive route)."""
    with Lab() as lab:
        fabric = build_numbered(lab)
        prefixes = [f"10.{96 + i // 65536}.{i // 256 % 256}.{i % 256}/32" for i in range(routes)]
        started = time.monotonic()
        origin = lab.frr(fabric.node, frr_sender_config(fabric.LEAF_V4, "10.0.1.1", prefixes))
        wait_for(lambda: _received(fabric, fabric.NODE_V4) >= routes, 600, 0.05)
        floor = time.monotonic() - started

        started = time.monotonic()
        for index in range(naive_sample):
            origin.vtysh(
                "configure terminal",
                "router bgp 65001",
                "address-family ipv4 unicast",
                f"network 10.200.{index // 256}.{index % 256}/32",
            )
        wait_for(lambda: _received(fabric, fabric.NODE_V4) >= routes + naive_sample, 120, 0.05)
        return floor, (time.monotonic() - started) / naive_sample


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


def _state_file(path: Path, objects: list[dict[str, Any]]) -> None:
    """A lab API server state file holding ``objects`` (as if created one by one)."""
    kinds = {"Service": "v1", "EndpointSlice": "discovery.k8s.io/v1"}
    for index, obj in enumerate(objects):
        obj["apiVersion"] = kinds[obj["kind"]]
        meta = obj["metadata"]
        meta.setdefault("uid", f"00000000-0000-0000-0000-{index:012d}")
        meta.setdefault("creationTimestamp", "2024-06-01T00:00:00Z")
        meta["resourceVersion"] = "1"
    path.write_text(json.dumps({"rv": 1, "objects": objects}))


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
    from kubernetes import client, config

    with Lab() as lab:
        fabric, _node, _core, discovery, objects = _kube_fabric(lab, services, nodes=2)
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
            wait_for(functools.partial(_gone, fabric, ip), 30, 0.001)
            rib_ms.append((time.monotonic() - started) * 1000)
            wait_for(functools.partial(operator.contains, monitor.deleted, ip), 30, 0.001)
            fib_ms.append((monitor.deleted.pop(ip) - started) * 1000)
            discovery.patch_namespaced_endpoint_slice(
                victim["metadata"]["name"],
                victim["metadata"]["namespace"],
                {"endpoints": endpoints},
            )
            wait_for(functools.partial(_present, fabric, ip), 30, 0.005)
        del client, config
        result = {
            "services": services,
            "p50_ms": round(statistics.median(rib_ms), 1),
            "p99_ms": round(_p99(rib_ms), 1),
            "fib_p50_ms": round(statistics.median(fib_ms), 1),
            "fib_p99_ms": round(_p99(fib_ms), 1),
            "floor_p50_ms": round(statistics.median(floor_rib), 1),
            "floor_p99_ms": round(_p99(floor_rib), 1),
            "floor_fib_p50_ms": round(statistics.median(floor_fib), 1),
            "floor_fib_p99_ms": round(_p99(floor_fib), 1),
            "samples_ms": [round(v, 2) for v in rib_ms],
            "fib_samples_ms": [round(v, 2) for v in fib_ms],
            "floor_samples_ms": [round(v, 2) for v in floor_rib],
            "floor_fib_samples_ms": [round(v, 2) for v in floor_fib],
        }
        _say(
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
    wait_for(lambda: _received(fabric, node_v4) >= routes, 600, 0.05)
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
        wait_for(functools.partial(_gone, fabric, ip), 30, 0.001)
        rib_ms.append((time.monotonic() - started) * 1000)
        wait_for(functools.partial(operator.contains, monitor.deleted, ip), 30, 0.001)
        fib_ms.append((monitor.deleted.pop(ip) - started) * 1000)
        origin.vtysh(
            "configure terminal",
            "router bgp 65001",
            "address-family ipv4 unicast",
            f"network {prefix}",
        )
        wait_for(functools.partial(_present, fabric, ip), 30, 0.005)
    return rib_ms, fib_ms


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _kube_fabric(
    lab: Lab, services: int, env: dict[str, str] | None = None, nodes: int = 1
) -> tuple[Any, Any, Any, Any, list[dict[str, Any]]]:
    """A leaf, node1 running cosmolet on the Kubernetes source, and an API server with N
    healthy Services preloaded; returns once every route is in the leaf's RIB."""
    from kubernetes import client, config

    from lab.apiserver import free_port, start_host_apiserver

    fabric = build_numbered(lab, nodes=nodes)
    objects = _healthy_cluster(services)
    state = lab.workdir / "apiserver.json"
    _state_file(state, objects)
    kubeconfig = lab.workdir / "kubeconfig"
    start_host_apiserver(lab, free_port(), kubeconfig, state, fabric.node.name)
    api = config.new_client_from_config(config_file=str(kubeconfig))
    node = fabric.cosmolet(kubeconfig=kubeconfig, logging={"level": "warning", "format": "json"})
    node.config["bgp"]["peers"] = node.config["bgp"]["peers"][:1]
    node.__post_init__()
    node.env.update(env or {})
    node.start()
    wait_for(lambda: _received(fabric, fabric.NODE_V4) >= services, 600, 0.05)
    return fabric, node, client.CoreV1Api(api), client.DiscoveryV1Api(api), objects


def footprint(
    services: int, quiet: bool = False, idle_seconds: float = 60, stock_idle: bool = True
) -> dict[str, Any]:
    """RSS of the agent and of ExaBGP at steady state, and their CPU over an idle minute; with
    ``stock_idle``, the same minute with ExaBGP's stock reactor speed, side by side."""
    result: dict[str, Any] = {"services": services}
    runs: list[tuple[int, str, dict[str, str]]] = [(0, "_empty", {}), (services, "", {})]
    if stock_idle:
        runs.append((services, "_stock_reactor", {"exabgp.reactor.speed": "1.0"}))
    for count, suffix, env in runs:
        with Lab() as lab:
            fabric, node, _, _, _ = _kube_fabric(lab, count, env)
            time.sleep(3)
            agent = node.agent_pid()
            exabgp = node.exabgp_pid()
            if suffix != "_stock_reactor":
                result[f"agent_rss_mb{suffix}"] = round(rss_mb(agent), 1)
                result[f"exabgp_rss_mb{suffix}"] = round(rss_mb(exabgp), 1)
            if count:
                ticks = os.sysconf("SC_CLK_TCK")
                before = _cpu(agent) + _cpu(exabgp)
                time.sleep(idle_seconds)
                used = (_cpu(agent) + _cpu(exabgp) - before) / ticks
                key = "idle_millicores" + ("_stock_reactor" if suffix else "")
                result[key] = round(used / idle_seconds * 1000, 1)
            del fabric
    _say(
        quiet,
        f"footprint at {services} Services: agent {result['agent_rss_mb']} MB "
        f"(empty {result['agent_rss_mb_empty']} MB), ExaBGP {result['exabgp_rss_mb']} MB, "
        f"idle {result['idle_millicores']} millicores"
        + (
            f" (stock reactor speed: {result['idle_millicores_stock_reactor']})"
            if stock_idle
            else ""
        ),
    )
    return result


def scale(sizes: list[int], quiet: bool = False) -> dict[str, Any]:
    """Cold start (with the floor) and footprint at each size, to show how cost grows."""
    rows = []
    for size in sizes:
        cold = coldstart(size, quiet=quiet, naive_sample=100)
        foot = footprint(size, quiet=quiet, idle_seconds=20, stock_idle=False)
        rows.append(
            {
                "routes": size,
                "cosmolet_s": cold["cosmolet_s"],
                "cosmolet_stock_exabgp_s": cold["cosmolet_stock_exabgp_s"],
                "floor_s": cold["floor_s"],
                "ratio_to_floor": cold["ratio_to_floor"],
                "agent_rss_mb": foot["agent_rss_mb"],
                "exabgp_rss_mb": foot["exabgp_rss_mb"],
                "idle_millicores": foot["idle_millicores"],
            }
        )
    if not quiet:
        print(
            f"\n{'routes':>8} {'cosmolet s':>10} {'stock s':>8} {'floor s':>8} {'ratio':>6} "
            f"{'agent MB':>9} {'ExaBGP MB':>10} {'idle mc':>8}"
        )
        for r in rows:
            print(
                f"{r['routes']:>8} {r['cosmolet_s']:>10} {r['cosmolet_stock_exabgp_s']:>8} "
                f"{r['floor_s']:>8} {r['ratio_to_floor']:>6} {r['agent_rss_mb']:>9} "
                f"{r['exabgp_rss_mb']:>10} {r['idle_millicores']:>8}"
            )
    return {"sizes": sizes, "rows": rows}


def _cpu(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime
