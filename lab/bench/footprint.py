"""``footprint``: the agent's and ExaBGP's memory at steady state and their CPU while idle."""

from __future__ import annotations

import os
import time
from typing import Any

from lab.bench.common import cpu_ticks, kube_fabric, say
from lab.netns import Lab
from lab.node import rss_mb


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
            _fabric, node, _, _, _ = kube_fabric(lab, count, env)
            time.sleep(3)
            agent = node.agent_pid()
            exabgp = node.exabgp_pid()
            if suffix != "_stock_reactor":
                result[f"agent_rss_mb{suffix}"] = round(rss_mb(agent), 1)
                result[f"exabgp_rss_mb{suffix}"] = round(rss_mb(exabgp), 1)
            if count:
                ticks = os.sysconf("SC_CLK_TCK")
                before = cpu_ticks(agent) + cpu_ticks(exabgp)
                time.sleep(idle_seconds)
                used = (cpu_ticks(agent) + cpu_ticks(exabgp) - before) / ticks
                key = "idle_millicores" + ("_stock_reactor" if suffix else "")
                result[key] = round(used / idle_seconds * 1000, 1)
    say(
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
