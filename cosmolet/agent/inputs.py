"""What reaches the reconciler's queue, from which thread:

- ``RoutesChanged``: a source changed the cluster state (the source threads);
- ``PeerEvent`` / ``PeerOpen`` / ``Shutdown``: ExaBGP's JSON events, parsed (the stdin reader);
- ``Refused``: a command ExaBGP answered ``error`` (the stdin reader, ``cosmolet.agent.answers``);
- ``NeighborsChanged``: hybrid mode's fabric links changed (the netlink watcher);
- ``AddressesChanged``: numbered mode: the node's addresses or gateways changed (netlink);
- ``NeighborsShown``: ExaBGP's neighbors, as asked after a ``reload`` (the stdin reader);
- ``GateChanged``: the data-plane gate opened or closed (the gate's poller);
- ``Drain`` / ``Stop``: signals (SIGUSR1 from ``cosmolet start``; SIGTERM, SIGINT, stdin EOF).
"""

from __future__ import annotations

from dataclasses import dataclass

from cosmolet.engine.model import Link
from cosmolet.engine.peers import NodeAddresses
from cosmolet.exabgp.api import Command, PeerEvent, PeerOpen, Shutdown
from cosmolet.exabgp.shown import NeighborsShown


@dataclass(frozen=True)
class RoutesChanged:
    cause: float  # monotonic time of the change that produced it


@dataclass(frozen=True)
class NeighborsChanged:
    """Hybrid mode: the set of fabric links with a switch on them changed."""

    links: frozenset[Link]


@dataclass(frozen=True)
class AddressesChanged:
    """Numbered mode: the node's interface addresses or default gateways changed."""

    addresses: NodeAddresses


@dataclass(frozen=True)
class Refused:
    """ExaBGP answered ``error`` to this command: what it carried did not reach the peer."""

    command: Command


@dataclass(frozen=True)
class GateChanged:
    """The data-plane gate (``node.dataplaneGate``) now allows routes, or no longer does."""

    allows: bool


@dataclass(frozen=True)
class Drain:
    """Withdraw everything and stay up (``shutdown.mode: withdraw``; sent by ``cosmolet start``)."""


@dataclass(frozen=True)
class Stop:
    reason: str


Event = (
    RoutesChanged
    | PeerEvent
    | PeerOpen
    | Refused
    | NeighborsChanged
    | AddressesChanged
    | NeighborsShown
    | GateChanged
    | Drain
    | Stop
    | Shutdown
)
