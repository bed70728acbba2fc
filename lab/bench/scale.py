"""``scale``: cold start (with the floor) and footprint at growing sizes, to show how cost grows."""

from __future__ import annotations

from typing import Any

from lab.bench.coldstart import coldstart
from lab.bench.footprint import footprint


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
