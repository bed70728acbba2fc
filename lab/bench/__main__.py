"""Benchmarks with real ExaBGP and FRR in network namespaces: ``python -m lab.bench SCENARIO``.

Each scenario prints a human line per step and, last, one JSON object with its result.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from lab.bench import plot
from lab.bench.churn import churn, soak
from lab.bench.coldstart import coldstart
from lab.bench.economy import economy
from lab.bench.fleet import fleet
from lab.bench.footprint import footprint
from lab.bench.scale import scale
from lab.bench.withdraw import kube_withdraw
from lab.bench.withdraw_file import withdraw_file


def run_all(path: Path) -> int:
    """``make bench``: every scenario at its defaults, a table, and ``bench-results.json``."""
    results = {
        "coldstart": coldstart(10_000),
        "withdraw": kube_withdraw(10_000, 50),
        "churn": churn(1000, 60),
        "footprint": footprint(10_000),
    }
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{'scenario':<12} result")
    for name, result in results.items():
        if result is not None:
            shown = {k: v for k, v in result.items() if not isinstance(v, list)}
            print(f"{name:<12} " + ", ".join(f"{k}={v}" for k, v in shown.items()))
    print(f"\nwritten to {path}")
    if plot.available():
        print(f"latency distributions: {plot.write_png(results, path.with_suffix('.png'))}")
    else:
        print("no PNG: install the bench extra (pip install -e '.[bench]') for matplotlib")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.bench", description=__doc__)
    sub = parser.add_subparsers(dest="scenario", required=True)
    cold = sub.add_parser("coldstart", help="agent start -> N routes in the FRR peer's RIB")
    cold.add_argument("--routes", type=int, default=10_000)
    withdraw = sub.add_parser("withdraw-file", help="objects file change -> route gone at FRR")
    withdraw.add_argument("--services", type=int, default=10_000)
    withdraw.add_argument("--samples", type=int, default=20)
    kube = sub.add_parser("withdraw", help="EndpointSlice update -> route gone at FRR")
    kube.add_argument("--services", type=int, default=10_000)
    kube.add_argument("--samples", type=int, default=50)
    foot = sub.add_parser("footprint", help="agent and ExaBGP RSS and idle CPU")
    foot.add_argument("--services", type=int, default=10_000)
    churning = sub.add_parser("churn", help="readiness flips at a rate: latency, final set")
    churning.add_argument("--rate", type=float, default=1000)
    churning.add_argument("--seconds", type=float, default=60)
    churning.add_argument("--services", type=int, default=10_000)
    soaking = sub.add_parser("soak", help="churn for minutes: RSS and fd slopes")
    soaking.add_argument("--minutes", type=float, default=30)
    soaking.add_argument("--rate", type=float, default=100)
    soaking.add_argument("--services", type=int, default=10_000)
    soaking.add_argument("--every", type=float, default=10, help="seconds between samples")
    scaling = sub.add_parser("scale", help="coldstart and footprint at growing sizes")
    scaling.add_argument("--max", type=int, default=50_000)
    fleeting = sub.add_parser(
        "fleet",
        help="N nodes, two racks, a spine: convergence, API fan-out, rolling restart, failover",
    )
    fleeting.add_argument("--nodes", type=int, default=16, help="an even number, at least 2")
    fleeting.add_argument("--services", type=int, default=1000)
    fleeting.add_argument("--mode", choices=("hybrid", "numbered"), default="hybrid")
    fleeting.add_argument("--idle-seconds", type=float, default=10, help="idle CPU window")
    fleeting.add_argument("--changes", type=int, default=10, help="EndpointSlice changes counted")
    saving = sub.add_parser(
        "economy",
        help="the fleet's switches per policy mix: FIB routes and next-hop groups",
    )
    saving.add_argument("--nodes", type=int, default=16, help="an even number, at least 2")
    saving.add_argument("--services", type=int, default=1000)
    saving.add_argument("--seed", type=int, default=23, help="where the pods land")
    sub.add_parser("all", help="every scenario, a table, and bench-results.json")
    for command in (cold, withdraw, kube, foot, churning, soaking, scaling, fleeting, saving):
        command.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args(argv)
    started = time.monotonic()
    result: dict[str, Any]
    if args.scenario == "all":
        return run_all(Path("bench-results.json"))
    if args.scenario == "coldstart":
        result = coldstart(args.routes, quiet=args.json)
    elif args.scenario == "withdraw":
        result = kube_withdraw(args.services, args.samples, quiet=args.json)
    elif args.scenario == "churn":
        result = churn(args.rate, args.seconds, args.services, quiet=args.json)
    elif args.scenario == "soak":
        result = soak(
            args.minutes,
            args.rate,
            args.services,
            args.every,
            quiet=args.json,
            on_sample=None if args.json else lambda point: print(json.dumps(point), flush=True),
        )
    elif args.scenario == "scale":
        sizes = [n for n in (1_000, 10_000, 50_000, 100_000) if n <= args.max]
        result = scale(sizes, quiet=args.json)
    elif args.scenario == "fleet":
        result = fleet(
            args.nodes, args.services, args.mode, args.json, args.idle_seconds, args.changes
        )
    elif args.scenario == "economy":
        result = economy(args.nodes, args.services, args.seed, quiet=args.json)
    elif args.scenario == "footprint":
        result = footprint(args.services, quiet=args.json)
    else:
        result = withdraw_file(args.services, args.samples, quiet=args.json)
    result["wall_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
