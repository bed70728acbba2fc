"""Start ExaBGP with cosmolet's measured adjustments: ``python -m cosmolet.exabgp.launch`` takes
ExaBGP's own arguments (``cosmolet start`` runs it in place of ``python -m exabgp``).

``batch``: ExaBGP 5.0.15's reactor resumes at most ``ASYNC.LIMIT = 50`` scheduled items per loop
turn (``exabgp/reactor/asynchronous.py``), so a batch of announcements leaves in UPDATEs of 50
/32s although one 4 KiB UPDATE holds ~800, and a cold start of 10,000 routes pays for 200 UPDATEs
and 200 loop turns instead of 13. No setting reaches it. Raised to ``LIMIT`` here, the same batch
goes out in full UPDATEs. Upstream would need the limit as an environment setting
(``exabgp.reactor.batch``, say). With it goes a supported setting, ``exabgp.reactor.speed`` 5.0
instead of 1.0: the reactor's idle poll lasts a hundredth of it, so an idle ExaBGP wakes 20
times a second instead of 100. Any I/O still wakes it at once, and timers (keepalives every
3 s) run at most 50 ms late. Alone, with 50 items a turn, a longer poll would slow a cold start.

``copy``: every announced route goes through ``Neighbor.remove_self`` (``bgp/neighbor.py``),
which ``deepcopy``-s the whole ``Change``: its NLRI and its path attributes, though every
prefix of an ``announce attributes ... nlri`` line shares one attribute set. That copy was the
largest single cost of a cold start (a third of ExaBGP's busy time, see ``exabgp/README.md``)
and gave each of 100,000 routes its own attribute objects to keep. ``share_attributes``
replaces it with what the copy is for: the route gets its own ``Change`` and NLRI (whose
next hop and action are set per neighbor), and each distinct attribute set is kept once per
neighbor (copied only to put its address in place of ``next-hop self``) and shared by every
route that carries it, whichever line brought it. A route carrying ExaBGP's internal
attributes (watchdog, split, name) takes the stock path, since ExaBGP pops those per route.
Upstream would need ``remove_self`` to copy only what it changes.

``debug``: ExaBGP calls ``log.debug(lambda: ...)`` several times per route (queueing it, caching
it, scheduling the line), and each call checks the level in Python before dropping the message.
When ``exabgp.log.level`` is not ``DEBUG`` (cosmolet sets the level from ``logging.level``), the
launcher makes ``log.debug`` drop it at once, as ExaBGP's own ``log.silence`` does for every
level. Upstream would need the level checked once, not per call.

Each is applied only to the version it was measured on; any other version runs stock and says
so on stderr. ``COSMOLET_EXABGP_TUNING=off`` runs stock, and a comma-separated list
(``batch``, ``copy``, ``debug``) applies only those (for measuring each side by side); an
``exabgp.reactor.speed`` already in the environment is kept.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, MutableMapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

#: ExaBGP versions whose internals below were read and measured.
TUNED_VERSIONS = frozenset({"5.0.15"})
STOCK_LIMIT = 50
LIMIT = 1000
REACTOR_SPEED = "5.0"
TUNING_ENV = "COSMOLET_EXABGP_TUNING"
ADJUSTMENTS = ("batch", "copy", "debug")
#: distinct attribute sets kept per neighbor by ``share_attributes`` (a site has a handful)
SHARED_ATTRIBUTES = 1024


def wanted(env: MutableMapping[str, str]) -> tuple[str, ...]:
    """The adjustments ``COSMOLET_EXABGP_TUNING`` asks for (default: all of them)."""
    value = env.get(TUNING_ENV, "on").strip().lower()
    if value in {"", "on", "1", "true", "yes"}:
        return ADJUSTMENTS
    if value in {"off", "0", "false", "no"}:
        return ()
    return tuple(name for name in ADJUSTMENTS if name in value.replace(" ", "").split(","))


def tune(environ: MutableMapping[str, str] | None = None) -> str:
    """Apply the adjustments if they fit (the reactor speed into ``environ``, by default this
    process's environment, which ExaBGP reads next); returns what was done, for the log."""
    env: MutableMapping[str, str] = os.environ if environ is None else environ
    names = wanted(env)
    if not names:
        return f"stock ExaBGP ({TUNING_ENV}={env.get(TUNING_ENV)})"
    try:
        installed = version("exabgp")
    except PackageNotFoundError:
        return "stock ExaBGP (version unknown)"
    from exabgp.bgp.neighbor import Neighbor
    from exabgp.reactor.asynchronous import ASYNC

    if installed not in TUNED_VERSIONS or ASYNC.LIMIT != STOCK_LIMIT or _shared(Neighbor):
        return (
            f"stock ExaBGP {installed} (the adjustment is for {', '.join(sorted(TUNED_VERSIONS))})"
        )
    done = []
    if "batch" in names:
        ASYNC.LIMIT = LIMIT
        speed = env.setdefault("exabgp.reactor.speed", REACTOR_SPEED)
        done.append(f"ASYNC.LIMIT {STOCK_LIMIT} -> {LIMIT}, reactor speed {speed}")
    if "copy" in names:
        share_attributes()
        done.append("remove_self without deepcopy")
    if "debug" in names and quiet_debug(env):
        done.append("debug log calls dropped")
    return f"ExaBGP {installed} with " + "; ".join(done)


def _shared(neighbor: Any) -> bool:
    return getattr(neighbor.remove_self, "cosmolet", False) is True


def share_attributes() -> None:
    """Replace ``Neighbor.remove_self`` (see the module docstring); the stock one is kept as
    ``remove_self.stock``."""
    from exabgp.bgp.message.update.attribute import Attribute, Attributes, NextHop
    from exabgp.bgp.neighbor import Neighbor

    stock: Callable[[Any, Any], Any] = Neighbor.remove_self
    internal = frozenset(Attributes.INTERNAL)
    next_hop = Attribute.CODE.NEXT_HOP

    def remove_self(self: Any, change: Any) -> Any:
        attributes = change.attributes
        if not internal.isdisjoint(attributes):
            return stock(self, change)
        own = _clone(change)
        nlri = own.nlri = _clone(change.nlri)
        address = None
        if nlri.nexthop.SELF:
            address = nlri.nexthop = self.ip_self(nlri.afi)
        # One attribute set per neighbor and distinct attributes, whichever line a route came
        # in: shared per line only, routes re-announced one by one under churn would end up
        # with a set each, as many as the stock copy made.
        shared: dict[tuple[str, int], tuple[Any, Any]] = self.__dict__.setdefault(
            "_cosmolet_attributes", {}
        )
        key = (attributes.index(), id(address))
        known = shared.get(key)
        if known is None:
            kept = attributes
            if address is not None and next_hop in attributes:
                kept = _clone(attributes)
                dict.update(kept, attributes)
                kept[next_hop] = NextHop(str(address), address.pack())
                kept._str = kept._idx = kept._json = ""
                kept._dict = {}
            if len(shared) >= SHARED_ATTRIBUTES:
                shared.clear()
            known = shared[key] = (address, kept)  # the address kept alive: its id is the key
        own.attributes = known[1]
        return own

    remove_self.cosmolet = True  # type: ignore[attr-defined]
    remove_self.stock = stock  # type: ignore[attr-defined]
    Neighbor.remove_self = remove_self


def quiet_debug(env: MutableMapping[str, str]) -> bool:
    """Make ``log.debug`` a no-op unless ExaBGP's level is ``DEBUG`` (either spelling of the
    setting); returns whether it did."""
    level = env.get("exabgp.log.level", env.get("exabgp_log_level", "INFO"))
    if level.strip().upper() == "DEBUG":
        return False
    from exabgp.logger import log

    def dropped(cls: Any, message: Any, source: str = "", level: str = "DEBUG") -> None:
        """The debug line is below the level: not even looked at."""

    log.debug = classmethod(dropped)
    return True


def _clone(obj: Any) -> Any:
    """A shallow copy of an ExaBGP object's attributes (not of a dict's items), made without
    calling its ``__init__``: ``copy.copy`` without its generic protocol. Set one by one, in
    their order, they keep the key-sharing layout of objects built by ``__init__``: 137 bytes
    for an NLRI where a copied ``__dict__`` takes 201 (100,000 routes: 13 MB)."""
    cls: Any = type(obj)
    new = cls.__new__(cls)
    for name, value in obj.__dict__.items():
        setattr(new, name, value)
    return new


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
