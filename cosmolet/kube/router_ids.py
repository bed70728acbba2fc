"""Looking for another node with this node's router id, when ours is derived (IPv6-only nodes,
``cosmolet.engine.router_ids``).

The agent watches only its own Node, and watching every Node would cost each agent a stream of
every node's status updates (heartbeats, images, conditions) for a rare event. So the Nodes are
listed instead, and seldom, because every agent with a derived id does it: 5,000 nodes listing
5,000 Nodes of 10-20 KB every 10 minutes was ~8 lists of 50-100 MB a second at the API server.

When: at once when our derived id is first known or changes; then, while a collision stands,
every ``RECHECK_SECONDS`` (60 s: only the colliding nodes do it, and a fix, an annotation, clears
from ``/status`` within a minute); otherwise every ``QUIET_SECONDS`` (6 h), jittered by
``JITTER`` (±20 %) so agents a rollout started together do not list together. Six hours is
enough because a collision is symmetric: the node that arrives with, or moves to, an id already
taken lists at that moment and finds it; the quiet look is only a safety net (the first node of
a pair sees the collision at its next one), costing 5,000 nodes ~0.23 lists a second in all,
36 times fewer than before. A failed list is tried again after ``RETRY_SECONDS`` (jittered: an
API server back from an outage is not hit by every agent in the same second).

How: paged (``PAGE`` Nodes a request, with ``continue``) and *without* ``resourceVersion=0``:
an API server serves a ``resourceVersion=0`` list from its watch cache, which (but in recent
releases) ignores ``limit`` and sends every Node at once: 50-100 MB into a 256Mi agent. A list
without it is a consistent read that honours ``limit`` (the lab API server pages it too), at the
price of an etcd read, which the rare looks make cheap. Of each page only the
names, ``cosmolet.io/router-id`` annotations, InternalIPs and ExternalIPs are decoded and kept,
so memory stays at one page plus a few strings a Node. The chart's ClusterRole already grants
``list`` on nodes. Nothing is listed when our id comes from the config, an annotation or an IPv4
address: those are the operator's own numbering.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence

import msgspec
from kubernetes import client as k8s
from kubernetes.client import ApiException
from urllib3.exceptions import HTTPError

from cosmolet import logs
from cosmolet.engine.objects import Node
from cosmolet.engine.router_ids import (
    ROUTER_ID_ANNOTATION,
    Collision,
    NodeIdentity,
    collisions,
)
from cosmolet.kube.client import InFlight, Kind, list_page

log = logs.get("cosmolet.kube.router_ids")

#: While a collision stands (see the module docstring for these numbers).
RECHECK_SECONDS = 60.0
#: While none does, jittered by ``JITTER``.
QUIET_SECONDS = 6 * 3600.0
#: After a failed list, jittered by ``JITTER``.
RETRY_SECONDS = 60.0
JITTER = 0.2
#: How often our router id is read (from memory) to see if it is known or changed.
TICK_SECONDS = 10.0
PAGE = 500


class _Meta(msgspec.Struct, frozen=True, gc=False):
    name: str = ""
    annotations: dict[str, str] | None = None


class _Address(msgspec.Struct, frozen=True, gc=False):
    type: str = ""
    address: str = ""


class _Status(msgspec.Struct, frozen=True, gc=False):
    addresses: list[_Address] | None = None


class _Node(msgspec.Struct, frozen=True, gc=False):
    metadata: _Meta = _Meta()
    status: _Status = _Status()


def _of_type(addresses: Sequence[_Address], kind: str) -> tuple[str, ...]:
    return tuple(a.address for a in addresses if a.type == kind)


def identities(items: Sequence[msgspec.Raw]) -> list[NodeIdentity]:
    """The Nodes of a list page, as far as router ids go (a malformed item is skipped)."""
    found = []
    for raw in items:
        try:
            node = msgspec.json.decode(raw, type=_Node)
        except msgspec.ValidationError:
            continue
        if not node.metadata.name:
            continue
        addresses = node.status.addresses or ()
        found.append(
            NodeIdentity(
                node.metadata.name,
                (node.metadata.annotations or {}).get(ROUTER_ID_ANNOTATION),
                _of_type(addresses, "InternalIP"),
                _of_type(addresses, "ExternalIP"),
            )
        )
    return found


def list_identities(api: k8s.ApiClient, in_flight: InFlight) -> list[NodeIdentity]:
    """Every Node's identity, page by page, with no ``resourceVersion=0`` (see the module
    docstring; raises ``ApiException`` or a transport error)."""
    kind = Kind(Node, "/api/v1/nodes", {}, api)
    found: list[NodeIdentity] = []
    token: str | None = None
    while True:
        page = list_page(kind, PAGE, token, in_flight)
        found += identities(page.items or ())
        token = page.metadata.continue_
        if not token:
            return found


#: Our router id and where it comes from, or ``None`` while not resolved yet.
Current = Callable[[], "tuple[str, str] | None"]
Report = Callable[[str, Sequence[Collision]], None]


class CollisionWatch:
    """The thread's loop: every ``TICK_SECONDS`` it reads our router id; when it is derived it
    lists the Nodes if the id is new or changed, or the next look is due (see the module
    docstring)."""

    def __init__(
        self,
        nodes: Callable[[], list[NodeIdentity]],
        node_name: str,
        current: Current,
        report: Report,
        draw: Callable[[], float] = random.random,
    ) -> None:
        """``nodes``: every Node's identity (``list_identities`` in the agent); ``draw``: a
        number in [0, 1) for the jitter."""
        self.nodes = nodes
        self.node_name = node_name
        self.current = current
        self.report = report
        self.draw = draw
        self._compared: str | None = None  # the id the last look was for
        self._due = 0.0  # when the next look for it is

    def _jittered(self, seconds: float) -> float:
        return seconds * (1 - JITTER + 2 * JITTER * self.draw())

    def step(self, now: float) -> None:
        """Look if it is time (see the class docstring)."""
        ours = self.current()
        if ours is None:
            return
        router_id, origin = ours
        if not origin.startswith("derived"):
            # the operator's own numbering; a collision found for a derived id went with it
            self._compared = None
            return
        if router_id == self._compared and now < self._due:
            return
        # due again after a delay whatever happens below, an error the loop catches included
        self._compared, self._due = router_id, now + self._jittered(RETRY_SECONDS)
        try:
            nodes = self.nodes()
        except (ApiException, HTTPError, OSError, msgspec.DecodeError) as error:
            log.warning("cannot list the Nodes to compare router ids", error=str(error))
            return
        found = collisions(self.node_name, router_id, nodes)
        self._due = now + (RECHECK_SECONDS if found else self._jittered(QUIET_SECONDS))
        self.report(router_id, found)

    def run(self, stop: threading.Event, clock: Callable[[], float] = time.monotonic) -> None:
        """Step every ``TICK_SECONDS`` until ``stop``; an unexpected error (the client's
        configuration unreadable, a bug) is logged and the loop goes on, so the check does not
        end for the agent's lifetime."""
        while not stop.is_set():
            try:
                self.step(clock())
            except Exception:
                log.error("looking for another node with our router id failed", exc_info=True)
            stop.wait(TICK_SECONDS)
