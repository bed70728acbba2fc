"""ExaBGP alone, each of the launcher's adjustments side by side: a process writes N routes (the
agent's batched lines, 500 prefixes each) to ExaBGP at once, timed to the last route in the FRR
leaf's RIB, with ExaBGP's CPU time and RSS.

    python -m lab.bench.exabgp_ingest --routes 100000 --repeat 3

Settings (``COSMOLET_EXABGP_TUNING``): ``off`` (stock), ``batch``, ``batch,copy``, ``on`` (all);
the runs are interleaved so that each setting sees the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any

from cosmolet.config.schema import validate
from cosmolet.exabgp import config as exabgp_config
from lab.bench.coldstart import prefixes_of
from lab.bench.common import cpu_ticks, received, settle
from lab.netns import Lab, wait_for
from lab.node import rss_mb
from lab.numbered import build_numbered

SETTINGS = ("off", "batch", "batch,copy", "on")
FEEDER = """import sys
sys.stdout.write(open(sys.argv[1]).read())
sys.stdout.flush()
for _ in sys.stdin:
    pass
"""


def ingest(routes: int, tuning: str) -> dict[str, Any]:
    """One run: ExaBGP with ``tuning``, fed every route at once."""
    config = validate(
        {
            "nodeName": "node1",
            "bgp": {
                "asn": 65001,
                "routerId": "10.0.1.1",
                "peers": [{"address": "10.0.1.0", "asn": 65101, "localAddress": "10.0.1.1"}],
            },
        }
    )
    prefixes = prefixes_of(routes)
    with Lab() as lab:
        fabric = build_numbered(lab)
        directory = lab.workdir / "exabgp"
        directory.mkdir()
        head = "neighbor 10.0.1.0 announce attributes next-hop self nlri "
        lines = [head + " ".join(prefixes[i : i + 500]) for i in range(0, routes, 500)]
        (directory / "commands").write_text("\n".join(lines) + "\n")
        (directory / "feeder.py").write_text(FEEDER)
        command = [sys.executable, str(directory / "feeder.py"), str(directory / "commands")]
        (directory / "exabgp.conf").write_text(exabgp_config.render(config, command))
        env = {**os.environ, **exabgp_config.environment("WARNING")}
        env["COSMOLET_EXABGP_TUNING"] = tuning
        settle()
        started = time.monotonic()
        process = fabric.node.popen(
            sys.executable,
            "-m",
            "cosmolet.exabgp.launch",
            "server",
            str(directory / "exabgp.conf"),
            env=env,
            log=directory / "log",
        )
        wait_for(lambda: received(fabric, fabric.NODE_V4) >= routes, 900, 0.05)
        total = time.monotonic() - started
        cpu = cpu_ticks(process.pid) / os.sysconf("SC_CLK_TCK")
        return {"seconds": total, "cpu_s": cpu, "rss_mb": rss_mb(process.pid)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--routes", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {setting: [] for setting in SETTINGS}
    for _ in range(args.repeat):
        for setting in SETTINGS:
            runs[setting].append(ingest(args.routes, setting))
            print(setting, runs[setting][-1], file=sys.stderr, flush=True)
    result: dict[str, Any] = {"routes": args.routes, "repeat": args.repeat}
    for setting, measured in runs.items():
        result[setting] = {
            key: round(statistics.median(run[key] for run in measured), 2)
            for key in ("seconds", "cpu_s", "rss_mb")
        }
        result[setting]["seconds_min_max"] = [
            round(min(run["seconds"] for run in measured), 2),
            round(max(run["seconds"] for run in measured), 2),
        ]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
