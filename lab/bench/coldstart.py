"""``coldstart``: from start to N routes in the FRR peer's RIB, against the floor and the naive
way (one ``vtysh`` per route)."""

from __future__ import annotations

import time
from typing import Any

from lab.bench.common import frr_sender_config, healthy_cluster, received, say
from lab.netns import Lab, wait_for
from lab.numbered import build_numbered


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
    say(quiet, f"coldstart cosmolet with stock ExaBGP: {routes} routes in {stock_s:.2f}s")
    cosmolet_s, up = _coldstart_cosmolet(routes)
    say(quiet, f"coldstart cosmolet: session up {up:.2f}s, {routes} routes in {cosmolet_s:.2f}s")
    floor_s, naive_per_route = _coldstart_frr(routes, naive_sample)
    naive_s = naive_per_route * routes
    say(
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
    """(seconds to N routes at the leaf, seconds to the session up), from ``cosmolet start``."""
    with Lab() as lab:
        fabric = build_numbered(lab)
        node = fabric.cosmolet(logging={"level": "warning", "format": "json"})
        node.config["bgp"]["peers"] = node.config["bgp"]["peers"][:1]
        node.__post_init__()
        node.env.update(env or {})
        node.set_objects(healthy_cluster(routes))
        started = time.monotonic()
        node.start()
        wait_for(lambda: fabric.established(fabric.NODE_V4), 60, 0.01)
        up = time.monotonic() - started
        wait_for(lambda: received(fabric, fabric.NODE_V4) >= routes, 600, 0.05)
        return time.monotonic() - started, up


def _coldstart_frr(routes: int, naive_sample: int) -> tuple[float, float]:
    """(seconds for an FRR sender to deliver N originated routes, seconds per naive route)."""
    with Lab() as lab:
        fabric = build_numbered(lab)
        prefixes = [f"10.{96 + i // 65536}.{i // 256 % 256}.{i % 256}/32" for i in range(routes)]
        started = time.monotonic()
        origin = lab.frr(fabric.node, frr_sender_config(fabric.LEAF_V4, "10.0.1.1", prefixes))
        wait_for(lambda: received(fabric, fabric.NODE_V4) >= routes, 600, 0.05)
        floor = time.monotonic() - started

        started = time.monotonic()
        for index in range(naive_sample):
            origin.vtysh(
                "configure terminal",
                "router bgp 65001",
                "address-family ipv4 unicast",
                f"network 10.200.{index // 256}.{index % 256}/32",
            )
        wait_for(lambda: received(fabric, fabric.NODE_V4) >= routes + naive_sample, 120, 0.05)
        return floor, (time.monotonic() - started) / naive_sample
