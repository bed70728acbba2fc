"""Looking for another node with this node's router id, when ours is derived (IPv6-only nodes,
``cosmolet.engine.router_ids``).

The agent watches only its own Node, and watching every Node would cost each agent a stream of
every node's status updates (heartbeats, images, conditions) for a rare event. So the Nodes are
listed instead: once when our derived id is first known, then every ``INTERVAL_SECONDS``, from
the API server's watch cache (``resourceVersion=0``: no etcd read), and only their names,
``cosmolet.io/router-id`` annotations and InternalIPs are decoded. The chart's ClusterRole
already grants ``list`` on nodes. Nothing is listed when our id comes from the config, an
annotation or an IPv4 address: those are the operator's own numbering.
"""

from __future__ import annotations

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

INTERVAL_SECONDS = 600.0
#: Between looks for our router id while it is not known yet, or after a failed list.
RETRY_SECONDS = 10.0
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
                tuple(a.address for a in addresses if a.type == "InternalIP"),
            )
        )
    return found


def list_identities(api: k8s.ApiClient, in_flight: InFlight) -> list[NodeIdentity]:
    """Every Node's identity, page by page (raises ``ApiException`` or a transport error)."""
    kind = Kind(Node, "/api/v1/nodes", {"resourceVersion": "0"}, api)
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
    """The thread's loop: every ``RETRY_SECONDS`` it reads our router id; when it is derived it
    lists the Nodes if the id is new, the last list failed or ``interval`` has passed."""

    def __init__(
        self,
        nodes: Callable[[], list[NodeIdentity]],
        node_name: str,
        current: Current,
        report: Report,
        interval: float = INTERVAL_SECONDS,
    ) -> None:
        """``nodes``: every Node's identity (``list_identities`` in the agent)."""
        self.nodes = nodes
        self.node_name = node_name
        self.current = current
        self.report = report
        self.interval = interval
        self._looked: tuple[str, float] | None = None  # the id compared, and when

    def step(self, now: float) -> None:
        """Look if it is time (see the class docstring)."""
        ours = self.current()
        if ours is None:
            return
        router_id, origin = ours
        if not origin.startswith("derived"):
            # the operator's own numbering; a collision found for a derived id went with it
            self._looked = None
            return
        last = self._looked
        if last is not None and last[0] == router_id and now - last[1] < self.interval:
            return
        try:
            nodes = self.nodes()
        except (ApiException, HTTPError, OSError, msgspec.DecodeError) as error:
            log.warning("cannot list the Nodes to compare router ids", error=str(error))
            return
        self._looked = (router_id, now)
        self.report(router_id, collisions(self.node_name, router_id, nodes))

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.step(time.monotonic())
            stop.wait(RETRY_SECONDS)
