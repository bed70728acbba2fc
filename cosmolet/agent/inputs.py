"""What reaches the reconciler's queue, from which thread:

- ``RoutesChanged``: a source changed the cluster state (the source threads);
- ``PeerEvent`` / ``Shutdown``: ExaBGP's JSON events, parsed (the stdin reader);
- ``NeighborsChanged``: hybrid mode's fabric links changed (the netlink watcher);
- ``Drain`` / ``Stop``: signals (SIGUSR1 from ``cosmolet start``; SIGTERM, SIGINT, stdin EOF).
"""

from __future__ import annotations

from dataclasses import dataclass

from cosmolet.engine.model import Link
from cosmolet.exabgp.api import PeerEvent, Shutdown


@dataclass(frozen=True)
class RoutesChanged:
    cause: float  # monotonic time of the change that produced it


@dataclass(frozen=True)
class NeighborsChanged:
    """Hybrid mode: the set of fabric links with a switch on them changed."""

    links: frozenset[Link]


@dataclass(frozen=True)
class Drain:
    """Withdraw everything and stay up (``shutdown.mode: withdraw``; sent by ``cosmolet start``)."""


@dataclass(frozen=True)
class Stop:
    reason: str


Event = RoutesChanged | PeerEvent | NeighborsChanged | Drain | Stop | Shutdown
