"""Start ExaBGP with cosmolet's two adjustments: ``python -m cosmolet.exabgp_launch`` takes
ExaBGP's own arguments (``cosmolet start`` runs it in place of ``python -m exabgp``).

ExaBGP 5.0.15's reactor resumes at most ``ASYNC.LIMIT = 50`` scheduled items per loop turn
(``exabgp/reactor/asynchronous.py``), so a batch of announcements leaves in UPDATEs of 50 /32s
although one 4 KiB UPDATE holds ~800, and a cold start of 10,000 routes pays for 200 UPDATEs and
200 loop turns instead of 13. No setting reaches it. Raised to ``LIMIT`` here, the same batch
goes out in full UPDATEs (measured in ``python -m lab.bench coldstart``, stock and tuned side by
side). Upstream would need the limit as an environment setting (``exabgp.reactor.batch``, say).

The second is a supported setting, ``exabgp.reactor.speed`` 5.0 instead of 1.0: the reactor's
idle poll lasts a hundredth of it, so an idle ExaBGP wakes 20 times a second instead of 100
(idle CPU measured side by side in ``python -m lab.bench footprint``). Any I/O, a command from
the agent or a BGP message, still wakes it at once, and timers (keepalives every 3 s) run at
most 50 ms late. It goes with the first: with the stock limit of 50 items a turn, a longer
idle poll would slow a cold start (a turn per 50 routes, each waiting out the poll).

Both are applied only to the version they were measured on; any other version runs stock and
says so on stderr. ``COSMOLET_EXABGP_TUNING=off`` runs stock too, and an ``exabgp.reactor.speed``
already in the environment is kept.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping
from importlib.metadata import PackageNotFoundError, version

#: ExaBGP versions whose ``ASYNC.LIMIT`` was read and measured.
TUNED_VERSIONS = frozenset({"5.0.15"})
STOCK_LIMIT = 50
LIMIT = 1000
REACTOR_SPEED = "5.0"
TUNING_ENV = "COSMOLET_EXABGP_TUNING"


def tune(environ: MutableMapping[str, str] | None = None) -> str:
    """Apply the adjustments if they fit (the reactor speed into ``environ``, by default this
    process's environment, which ExaBGP reads next); returns what was done, for the log."""
    env: MutableMapping[str, str] = os.environ if environ is None else environ
    if env.get(TUNING_ENV, "on").lower() in {"off", "0", "false", "no"}:
        return f"stock ExaBGP ({TUNING_ENV}=off)"
    try:
        installed = version("exabgp")
    except PackageNotFoundError:
        return "stock ExaBGP (version unknown)"
    from exabgp.reactor.asynchronous import ASYNC

    if installed not in TUNED_VERSIONS or ASYNC.LIMIT != STOCK_LIMIT:
        return (
            f"stock ExaBGP {installed} (the adjustment is for {', '.join(sorted(TUNED_VERSIONS))})"
        )
    ASYNC.LIMIT = LIMIT
    speed = env.setdefault("exabgp.reactor.speed", REACTOR_SPEED)
    return f"ExaBGP {installed} with ASYNC.LIMIT {STOCK_LIMIT} -> {LIMIT}, reactor speed {speed}"


def keep_identity() -> bool:
    """Not root: there is no privilege to drop, so ExaBGP must not try.

    ExaBGP drops privileges to ``exabgp.daemon.user`` whenever its uid or gid is 0, and refuses
    to start when it cannot. A pod under an arbitrary uid in group 0 (OpenShift's default) has
    no passwd entry to switch to and no right to switch: ExaBGP would exit. Returns whether the
    check was replaced (only when not root; as root ExaBGP's own check stands)."""
    if os.getuid() == 0:
        return False
    from exabgp.reactor.daemon import Daemon

    Daemon.drop_privileges = lambda self: True
    return True


def main() -> None:
    done = tune()
    if keep_identity():
        done += f"; running as uid {os.getuid()} without a privilege drop"
    print(f"cosmolet: {done}", file=sys.stderr, flush=True)
    from exabgp.application.main import main as exabgp_main

    sys.argv[0] = "exabgp"
    exabgp_main()


if __name__ == "__main__":
    main()
