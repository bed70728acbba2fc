"""What the HTTP endpoints and the metrics may see of a running agent: a small read-only
protocol, so that neither imports the reconciler (and the reconciler imports neither).

Called from the HTTP threads while the reconciler runs: implementations return copies (a dict
copy is atomic in CPython), never live structures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from cosmolet.agent.brake import BrakeView
from cosmolet.agent.gate import GateView
from cosmolet.engine.model import Route, Skip
from cosmolet.sources import ApiHealth


@dataclass(frozen=True)
class PeerView:
    name: str
    interface: str | None
    state: str  # "unknown" | "up" | "down"
    up: bool
    since: float | None  # monotonic, when the state last changed
    families: tuple[str, ...]
    #: prefixes the peer was sent (and their attributes)
    advertised: Mapping[str, object]
    #: the config entry it comes from, and what it was derived from: "bgp.peers[0] (interface
    #: eth1)"
    origin: str = ""


@dataclass(frozen=True)
class PeeringView:
    """How this node's peers were resolved: its AS and router id (and where each comes from),
    the entries it cannot use (problems) and those meant for other nodes (unused)."""

    asn: int | None = None
    asn_from: str = ""
    router_id: str | None = None
    router_id_from: str = ""
    problems: Sequence[tuple[str, str]] = ()  # (entry, message)
    unused: Sequence[tuple[str, str]] = ()


class AgentView(Protocol):
    @property
    def node_name(self) -> str: ...

    @property
    def bgp_enabled(self) -> bool: ...

    def now(self) -> float:
        """The agent's monotonic clock."""
        ...

    def ready(self) -> tuple[bool, str]: ...

    def healthy(self) -> tuple[bool, str]: ...

    def peers(self) -> list[PeerView]: ...

    def peering(self) -> PeeringView:
        """How the peers were resolved (empty until the first resolution)."""
        ...

    def desired(self) -> list[Route]:
        """The routes the plan wants advertised (after the flap hold)."""
        ...

    def held(self) -> int:
        """Routes wanted but held back by the flap hold."""
        ...

    def skipped(self) -> Sequence[Skip] | None:
        """Everything the plan does not advertise, or ``None`` before the first sync."""
        ...

    def api_health(self) -> ApiHealth | None: ...

    def errors(self) -> int:
        """Events whose handling failed (logged; the loop went on)."""
        ...

    def gate(self) -> GateView | None:
        """The data-plane gate's state, or ``None`` without one (``url: none``)."""
        ...

    def brake(self) -> BrakeView | None:
        """The withdraw brake's state, or ``None`` when it is off."""
        ...
