"""The sessions of the ExaBGP configuration in force, kept beside it (``RuntimePaths.
exabgp_sessions``): whoever writes the configuration (``cosmolet start``, then the agent on every
change) writes them too, and an agent that starts reads them.

Why a file: numbered sessions now depend on this node's Node object and addresses, which the
agent learns only after its first list; ExaBGP, though, reports a session up as soon as it is.
An agent that did not know the session then would drop that event, and the End-of-RIB that
graceful restart waits for would never be sent.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cosmolet import logs
from cosmolet.engine.model import Family
from cosmolet.exabgp.api import Session
from cosmolet.exabgp.config import write_private

log = logs.get("cosmolet.exabgp")


def to_json(session: Session) -> dict[str, Any]:
    return {
        "peer": str(session.peer),
        "localAs": session.local_as,
        "peerAs": session.peer_as,
        "families": [str(family) for family in session.families],
        "nextHop": session.next_hop,
        "origin": session.origin,
        "interface": session.interface,
        "localAddress": None if session.local_address is None else str(session.local_address),
    }


def from_json(data: dict[str, Any]) -> Session:
    """Raises: ``KeyError``, ``TypeError``, ``ValueError`` on anything else than ``to_json``'s."""
    local = data["localAddress"]
    peer_as = data["peerAs"]
    return Session(
        peer=ipaddress.ip_address(data["peer"]),
        local_as=int(data["localAs"]),
        peer_as=None if peer_as is None else int(peer_as),
        families=tuple(Family(family) for family in data["families"]),
        next_hop=str(data["nextHop"]),
        origin=str(data["origin"]),
        interface=str(data["interface"]),
        local_address=None if local is None else ipaddress.ip_address(local),
    )


@dataclass(frozen=True)
class InForce:
    """What the configuration in force gives ExaBGP: our AS, router id and sessions."""

    asn: int
    router_id: str
    sessions: list[Session]


def save(path: Path, in_force: InForce) -> None:
    data = {
        "asn": in_force.asn,
        "routerId": in_force.router_id,
        "sessions": [to_json(s) for s in in_force.sessions],
    }
    write_private(path, json.dumps(data, indent=1) + "\n")


def load(path: Path) -> InForce | None:
    """What was saved, or ``None`` (logged unless there is no file) when nothing usable was."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        sessions = [from_json(item) for item in data["sessions"]]
        return InForce(int(data["asn"]), str(data["routerId"]), sessions)
    except FileNotFoundError:
        return None
    except (OSError, KeyError, TypeError, ValueError) as error:
        log.warning("ignoring an unreadable sessions file", path=str(path), error=str(error))
        return None
