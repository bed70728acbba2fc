"""ExaBGP's text API, both ways: the command lines cosmolet writes and the JSON events it reads.

Commands are built only from typed values (``ipaddress`` objects, canonical prefixes and the
canonical communities of ``bgp_values``); as defence in depth every line is checked against a
strict character set before it leaves, so no string from a Kubernetes object can ever add a token,
a keyword or a newline to what ExaBGP parses.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from cosmolet.engine.model import Attributes, Family

#: ExaBGP reads its pipe 16 KiB at a time and refuses lines over 1 MiB; 500 /32s is ~8 KiB.
BATCH_SIZE = 500

_SAFE_LINE = re.compile(r"^[0-9A-Za-z:./\[\] -]+$")
_AFI_SAFI = {Family.IPV4: "ipv4 unicast", Family.IPV6: "ipv6 unicast"}

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeCommand(ValueError):
    """A command line contained something other than the API's own tokens."""


def checked(line: str) -> str:
    """Return ``line`` if it consists only of characters an API command may hold.

    Raises:
        UnsafeCommand: naming the line, so the caller logs and drops it.
    """
    if not _SAFE_LINE.match(line) or len(line) > 64 * 1024:
        raise UnsafeCommand(f"refusing to send a malformed command: {line[:120]!r}")
    return line


@dataclass(frozen=True, slots=True)
class Session:
    """How to address one BGP neighbor of ExaBGP, and what it may carry."""

    peer: Address
    local_as: int
    peer_as: int | None  # None: "auto", learned from the OPEN; treated as eBGP
    families: tuple[Family, ...]
    next_hop: str = "self"  # "self", or an address (hybrid: the node's link-local on the link)
    origin: str = ""  # where it comes from in the config, for messages: "bgp.peers[0]"
    interface: str = ""  # hybrid mode: the fabric link this neighbor is on

    @property
    def ebgp(self) -> bool:
        return self.peer_as != self.local_as

    @property
    def name(self) -> str:
        return str(self.peer)


def attribute_tokens(session: Session, attributes: Attributes) -> str:
    """The path attributes of an ``announce attributes`` command for this session."""
    parts = [f"next-hop {session.next_hop}"]
    if attributes.local_preference is not None and not session.ebgp:
        parts.append(f"local-preference {attributes.local_preference:d}")
    if attributes.med is not None:
        parts.append(f"med {attributes.med:d}")
    if attributes.communities:
        parts.append(f"community [{' '.join(attributes.communities)}]")
    if attributes.large_communities:
        parts.append(f"large-community [{' '.join(attributes.large_communities)}]")
    if attributes.as_path_prepend and session.ebgp:
        # ExaBGP sends an explicit AS_PATH as given: our AS once, plus the prepends.
        path = " ".join([str(session.local_as)] * (attributes.as_path_prepend + 1))
        parts.append(f"as-path [{path}]")
    return " ".join(parts)


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def announce(
    session: Session, attributes: Attributes, prefixes: Sequence[str], size: int = BATCH_SIZE
) -> list[str]:
    """Batched announce lines for prefixes that share ``attributes``."""
    head = f"neighbor {session.name} announce attributes {attribute_tokens(session, attributes)}"
    return [checked(f"{head} nlri {' '.join(chunk)}") for chunk in _chunks(prefixes, size)]


def withdraw(session: Session, prefixes: Sequence[str], size: int = BATCH_SIZE) -> list[str]:
    """Batched withdraw lines (ExaBGP wants a next-hop token even for a withdraw)."""
    head = f"neighbor {session.name} withdraw attributes next-hop {session.next_hop}"
    return [checked(f"{head} nlri {' '.join(chunk)}") for chunk in _chunks(prefixes, size)]


def end_of_rib(session: Session, family: Family) -> str:
    return checked(f"neighbor {session.name} announce eor {_AFI_SAFI[family]}")


class PeerState(StrEnum):
    UP = "up"
    DOWN = "down"
    CONNECTED = "connected"


@dataclass(frozen=True, slots=True)
class PeerEvent:
    """A neighbor state change reported by ExaBGP."""

    peer: str
    state: PeerState
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Shutdown:
    """ExaBGP said it is shutting down."""


_PEER_RE = re.compile(r'"peer"\s*:\s*"([0-9A-Fa-f:.]+)"')
_STATE_RE = re.compile(r'"state"\s*:\s*"(up|down|connected)"')


def parse_event(line: str) -> PeerEvent | Shutdown | None:
    """Parse one line ExaBGP wrote to our stdin; ``None`` for lines we do not act on.

    ExaBGP builds its JSON with string formatting, so a ``reason`` holding a quote can make the
    line invalid JSON: then the peer and state are still recovered with a narrow pattern.
    """
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        message = json.loads(line)
    except ValueError:
        if '"type": "state"' not in line:
            return None
        peer, state = _PEER_RE.search(line), _STATE_RE.search(line)
        if not peer or not state:
            return None
        return PeerEvent(_canonical_peer(peer[1]), PeerState(state[1]))
    if not isinstance(message, dict):
        return None
    kind = message.get("type")
    if kind == "notification" and message.get("notification") == "shutdown":
        return Shutdown()
    if kind != "state":
        return None
    neighbor = message.get("neighbor")
    if not isinstance(neighbor, dict):
        return None
    address = neighbor.get("address")
    peer = address.get("peer") if isinstance(address, dict) else None
    state = neighbor.get("state")
    if not isinstance(peer, str) or state not in {"up", "down", "connected"}:
        return None
    reason = neighbor.get("reason")
    return PeerEvent(
        _canonical_peer(peer), PeerState(state), reason if isinstance(reason, str) else ""
    )


def _canonical_peer(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text
