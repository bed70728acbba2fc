"""``scale``: cold start against the floor, and memory, at growing sizes, side by side.

Per size: cosmolet once with stock ExaBGP, then ``repeat`` pairs of (cosmolet, the floor)
alternated (``lab.bench.coldstart``), each timed from its process start and split into session
up and transfer; RSS of the agent and of ExaBGP 3 s after the last route, against both started
with no Service (``bytes_per_route``: their growth per route); idle CPU after the last run.
"""

from __future__ import annotations

from typing import Any

from lab.bench.coldstart import cosmolet_run, side_by_side
from lab.bench.common import say

#: The targets of the scale issue, checked in the result.
RATIO_TARGET = 1.5
FIRST_COMMAND_TARGET_S = 0.5
BYTES_PER_ROUTE_TARGET = 2048
TOTAL_MB_AT_50K_TARGET = 256


def scale(sizes: list[int], quiet: bool = False, repeat: int = 3) -> dict[str, Any]:
    """The rows (one per size), the empty processes, and which targets were met."""
    empty = cosmolet_run(0)
    base_mb = (empty.agent_rss_mb or 0) + (empty.exabgp_rss_mb or 0)
    say(quiet, f"empty: agent {empty.agent_rss_mb} MB, ExaBGP {empty.exabgp_rss_mb} MB")
    rows = []
    for size in sizes:
        row = side_by_side(size, repeat, quiet, idle_seconds=10)
        total_mb = (row["agent_rss_mb"] or 0) + (row["exabgp_rss_mb"] or 0)
        row["bytes_per_route"] = round((total_mb - base_mb) * 2**20 / size)
        rows.append(row)
    if not quiet:
        _table(rows)
    return {
        "sizes": sizes,
        "repeat": repeat,
        "agent_rss_mb_empty": empty.agent_rss_mb,
        "exabgp_rss_mb_empty": empty.exabgp_rss_mb,
        "rows": rows,
        "targets": _targets(rows),
    }


def _targets(rows: list[dict[str, Any]]) -> dict[str, bool]:
    """Each target of the issue, for the sizes measured."""
    by_size = {row["routes"]: row for row in rows}
    met: dict[str, bool] = {}
    for size in (50_000, 100_000):
        if size in by_size:
            met[f"ratio_at_{size}_within_{RATIO_TARGET}"] = (
                by_size[size]["ratio_to_floor"] <= RATIO_TARGET
            )
    met["first_command_within_0.5s_of_first_page"] = all(
        row["first_command_after_first_page_s"] is not None
        and row["first_command_after_first_page_s"] <= FIRST_COMMAND_TARGET_S
        for row in rows
    )
    if 100_000 in by_size:
        met["bytes_per_route_at_100000_under_2k"] = (
            by_size[100_000]["bytes_per_route"] < BYTES_PER_ROUTE_TARGET
        )
    if 50_000 in by_size:
        row = by_size[50_000]
        met["total_mb_at_50000_under_256"] = (
            row["agent_rss_mb"] + row["exabgp_rss_mb"] < TOTAL_MB_AT_50K_TARGET
        )
    return met


def _table(rows: list[dict[str, Any]]) -> None:
    print(
        f"\n{'routes':>7} {'cosmolet':>8} {'stock':>6} {'floor':>6} {'ratio':>5} "
        f"{'up':>5} {'xfer':>5} {'fl.up':>5} {'fl.xf':>5} {'1st cmd':>7} "
        f"{'agent':>6} {'ExaBGP':>6} {'B/route':>7}"
    )
    for r in rows:
        print(
            f"{r['routes']:>7} {r['cosmolet_s']:>8} {r['cosmolet_stock_exabgp_s']:>6} "
            f"{r['floor_s']:>6} {r['ratio_to_floor']:>5} {r['session_up_s']:>5} "
            f"{r['transfer_s']:>5} {r['floor_session_up_s']:>5} {r['floor_transfer_s']:>5} "
            f"{r['first_command_after_first_page_s']!s:>7} {r['agent_rss_mb']:>6} "
            f"{r['exabgp_rss_mb']:>6} {r['bytes_per_route']:>7}"
        )
