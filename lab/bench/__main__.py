"""Benchmarks with real ExaBGP and FRR in network namespaces: ``python -m lab.bench SCENARIO``.

Each scenario prints a human line per step and, last, one JSON object with its result.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from lab.bench import scenarios


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
    for command in (cold, withdraw, kube, foot):
        command.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args(argv)
    started = time.monotonic()
    result: dict[str, Any]
    if args.scenario == "coldstart":
        result = scenarios.coldstart(args.routes, quiet=args.json)
    elif args.scenario == "withdraw":
        result = scenarios.kube_withdraw(args.services, args.samples, quiet=args.json)
    elif args.scenario == "footprint":
        result = scenarios.footprint(args.services, quiet=args.json)
    else:
        result = scenarios.withdraw_file(args.services, args.samples, quiet=args.json)
    result["wall_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
