"""``coldstart``: from process start to N routes in the FRR peer's RIB, cosmolet and the floor
measured the same way, side by side; and the naive way (one ``vtysh`` per route).

Both sides start into the same peer state (a leaf whose bgpd has run for a second, its connect
timer going) and are timed from their process start to the last route in the leaf's RIB, split
into the session coming up (the leaf's TCP connection on port 179, polled from its /proc view)
and the transfer after it, so a fixed start-up cost cannot hide a throughput gap or the reverse.
cosmolet reads the Kubernetes API (``lab.bench.listserver``: pages ready to send, as a real API
server's watch cache serves them), which also times its first page against the agent's first
command (``COSMOLET_COMMAND_LOG``).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from lab.bench.common import (
    FirstTime,
    bgp_connected,
    cpu_ticks,
    frr_sender_config,
    healthy_cluster,
    one_peer_node,
    received,
    say,
    settle,
    spread,
)
from lab.bench.listserver import ListServer
from lab.netns import Lab, wait_for
from lab.node import rss_mb
from lab.numbered import build_numbered

STOCK = {"COSMOLET_EXABGP_TUNING": "off"}


@dataclass
class Run:
    """One cold start, in seconds from the process start."""

    total_s: float
    session_up_s: float | None
    first_page_s: float | None = None
    first_command_s: float | None = None
    last_page_s: float | None = None
    last_command_s: float | None = None
    agent_rss_mb: float | None = None
    exabgp_rss_mb: float | None = None
    idle_millicores: float | None = None
    #: CPU time each process had used when the last route arrived: cosmolet's two, or the
    #: floor's bgpd and zebra (``agent_cpu_s``/``exabgp_cpu_s`` stay empty), and the leaf's
    agent_cpu_s: float | None = None
    exabgp_cpu_s: float | None = None
    sender_cpu_s: float | None = None
    leaf_cpu_s: float | None = None

    @property
    def transfer_s(self) -> float | None:
        """Established to the last route (0 when the last route came with the session: the two
        are polled separately, a few milliseconds apart)."""
        return None if self.session_up_s is None else max(0.0, self.total_s - self.session_up_s)


def cosmolet_run(
    routes: int,
    env: dict[str, str] | None = None,
    idle_seconds: float = 0,
    objects: list[dict[str, Any]] | None = None,
) -> Run:
    """``cosmolet start`` (ExaBGP + agent) on the Kubernetes source, N healthy Services listed;
    RSS of both 3 s after the last route, and with ``idle_seconds`` their CPU while idle."""
    objects = healthy_cluster(routes) if objects is None else objects
    lists = ListServer(objects, "node1")
    with Lab() as lab:
        fabric = build_numbered(lab)
        kubeconfig = lab.workdir / "kubeconfig"
        with lists.serving(fabric.node.name, kubeconfig):
            commands = lab.workdir / "commands.log"
            node = one_peer_node(
                fabric, kubeconfig, {"COSMOLET_COMMAND_LOG": str(commands), **(env or {})}
            )
            settle()
            started, wall = time.monotonic(), time.time()
            node.start()
            up = FirstTime(bgp_connected(fabric), started)
            first = FirstTime(lambda: commands.exists() and commands.stat().st_size > 0, started)
            wait_for(lambda: received(fabric, fabric.NODE_V4) >= routes, 900, 0.05)
            total = time.monotonic() - started
            first_command = first.stop()
            run = Run(total, up.stop(), first_command_s=first_command)
            if "Service" in lists.first_page:
                run.first_page_s = lists.first_page["Service"] - started
                run.last_page_s = max(lists.last_page.values()) - started
            if commands.exists():
                run.last_command_s = commands.stat().st_mtime - wall
            if routes == 0:
                wait_for(lambda: (node.directory / "run" / "agent.pid").exists(), 60)
            agent, exabgp = node.agent_pid(), node.exabgp_pid()
            ticks = os.sysconf("SC_CLK_TCK")
            run.agent_cpu_s = round(cpu_ticks(agent) / ticks, 2)
            run.exabgp_cpu_s = round(cpu_ticks(exabgp) / ticks, 2)
            run.sender_cpu_s = round(run.agent_cpu_s + run.exabgp_cpu_s, 2)
            run.leaf_cpu_s = _cpu_s(fabric.frr.pids.values())
            time.sleep(3)
            run.agent_rss_mb = round(rss_mb(agent), 1)
            run.exabgp_rss_mb = round(rss_mb(exabgp), 1)
            if idle_seconds:
                before = cpu_ticks(agent) + cpu_ticks(exabgp)
                time.sleep(idle_seconds)
                used = (cpu_ticks(agent) + cpu_ticks(exabgp) - before) / os.sysconf("SC_CLK_TCK")
                run.idle_millicores = round(used / idle_seconds * 1000, 1)
            return run


def _cpu_s(pids: Iterable[int]) -> float:
    return round(sum(cpu_ticks(pid) for pid in pids) / os.sysconf("SC_CLK_TCK"), 2)


def prefixes_of(routes: int) -> list[str]:
    """The /32s ``healthy_cluster`` advertises."""
    return [f"10.{96 + i // 65536}.{i // 256 % 256}.{i % 256}/32" for i in range(routes)]


def floor_run(routes: int, naive_sample: int = 0) -> tuple[Run, float]:
    """An FRR bgpd originating the same N /32s from its startup configuration, timed like
    cosmolet; then, with ``naive_sample``, seconds per route added by one ``vtysh`` each."""
    config = frr_sender_config("10.0.1.0", "10.0.1.1", prefixes_of(routes))
    with Lab() as lab:
        fabric = build_numbered(lab)
        settle()
        started = time.monotonic()
        up = FirstTime(bgp_connected(fabric), started)
        origin = lab.frr(fabric.node, config)
        wait_for(lambda: received(fabric, fabric.NODE_V4) >= routes, 600, 0.05)
        run = Run(time.monotonic() - started, up.stop())
        run.sender_cpu_s = _cpu_s(origin.pids.values())
        run.leaf_cpu_s = _cpu_s(fabric.frr.pids.values())
        if not naive_sample:
            return run, 0.0
        # What a tool configuring FRR per Service does, less the ``write memory`` such tools
        # add per change (that would write the host's /etc/frr): a lower bound of their cost.
        started = time.monotonic()
        for index in range(naive_sample):
            origin.vtysh(
                "configure terminal",
                "router bgp 65001",
                "address-family ipv4 unicast",
                f"network 10.200.{index // 256}.{index % 256}/32",
            )
        wait_for(lambda: received(fabric, fabric.NODE_V4) >= routes + naive_sample, 120, 0.05)
        return run, (time.monotonic() - started) / naive_sample


def side_by_side(
    routes: int, repeat: int, quiet: bool, naive_sample: int = 0, idle_seconds: float = 0
) -> dict[str, Any]:
    """cosmolet with stock ExaBGP once, then ``repeat`` pairs of (cosmolet, floor) alternated,
    so both see the same machine; medians, spreads and every run."""
    stock = cosmolet_run(routes, STOCK)
    say(quiet, f"  {routes}: stock ExaBGP {stock.total_s:.2f}s")
    runs: list[Run] = []
    floors: list[Run] = []
    naive_per_route = 0.0
    objects = healthy_cluster(routes)
    for attempt in range(repeat):
        last = attempt == repeat - 1
        runs.append(cosmolet_run(routes, idle_seconds=idle_seconds if last else 0, objects=objects))
        floor, naive = floor_run(routes, naive_sample if attempt == 0 else 0)
        floors.append(floor)
        naive_per_route = naive or naive_per_route
        run = runs[-1]
        say(
            quiet,
            f"  {routes}: cosmolet {run.total_s:.2f}s (up {run.session_up_s}, first page "
            f"{run.first_page_s}, first command {run.first_command_s}), floor "
            f"{floor.total_s:.2f}s (up {floor.session_up_s})",
        )
    return _summary(routes, stock, runs, floors, naive_per_route)


def _median(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return round(statistics.median(known), 2) if known else None


def _summary(
    routes: int, stock: Run, runs: list[Run], floors: list[Run], naive_per_route: float
) -> dict[str, Any]:
    ratios = [run.total_s / floor.total_s for run, floor in zip(runs, floors, strict=True)]
    after_page = [
        run.first_command_s - run.first_page_s
        for run in runs
        if run.first_command_s is not None and run.first_page_s is not None
    ]
    result: dict[str, Any] = {
        "routes": routes,
        "cosmolet_s": _median([run.total_s for run in runs]),
        "cosmolet_stock_exabgp_s": round(stock.total_s, 2),
        "floor_s": _median([floor.total_s for floor in floors]),
        "ratio_to_floor": round(statistics.median(ratios), 2),
        "session_up_s": _median([run.session_up_s for run in runs]),
        "transfer_s": _median([run.transfer_s for run in runs]),
        "floor_session_up_s": _median([floor.session_up_s for floor in floors]),
        "floor_transfer_s": _median([floor.transfer_s for floor in floors]),
        "first_page_s": _median([run.first_page_s for run in runs]),
        "first_command_s": _median([run.first_command_s for run in runs]),
        "first_command_after_first_page_s": _median(list(after_page)),
        "cpu_s": _median([run.sender_cpu_s for run in runs]),
        "floor_cpu_s": _median([floor.sender_cpu_s for floor in floors]),
        "leaf_cpu_s": _median([run.leaf_cpu_s for run in runs]),
        "floor_leaf_cpu_s": _median([floor.leaf_cpu_s for floor in floors]),
        "agent_rss_mb": _median([run.agent_rss_mb for run in runs]),
        "exabgp_rss_mb": _median([run.exabgp_rss_mb for run in runs]),
        "cosmolet_spread_s": spread([run.total_s for run in runs]),
        "floor_spread_s": spread([floor.total_s for floor in floors]),
        "ratio_spread": spread(ratios),
        "runs": [asdict(run) for run in runs],
        "floor_runs": [asdict(floor) for floor in floors],
    }
    idle = [run.idle_millicores for run in runs if run.idle_millicores is not None]
    if idle:
        result["idle_millicores"] = idle[-1]
    if naive_per_route:
        result["naive_s"] = round(naive_per_route * routes, 1)
        result["speedup_vs_naive"] = round(naive_per_route * routes / result["cosmolet_s"], 1)
    return result


def coldstart(
    routes: int, quiet: bool = False, naive_sample: int = 500, repeat: int = 3
) -> dict[str, Any]:
    """cosmolet (and with stock ExaBGP) against the floor, ``repeat`` times side by side, and
    the naive way timed on ``naive_sample`` routes and extrapolated."""
    result = side_by_side(routes, repeat, quiet, naive_sample)
    say(
        quiet,
        f"coldstart {routes}: cosmolet {result['cosmolet_s']}s (session up "
        f"{result['session_up_s']}s + transfer {result['transfer_s']}s), stock ExaBGP "
        f"{result['cosmolet_stock_exabgp_s']}s, floor {result['floor_s']}s (up "
        f"{result['floor_session_up_s']}s + {result['floor_transfer_s']}s): ratio "
        f"{result['ratio_to_floor']}; naive {result.get('naive_s')}s",
    )
    return result
