"""ExaBGP's text API, both ways: the command lines cosmolet writes and what ExaBGP writes back
(JSON events, and the ``done`` / ``error`` answer to each command).

Commands are built only from typed values (``ipaddress`` objects, canonical prefixes and the
canonical communities of ``bgp_values``); as defence in depth every line is checked against a
strict character set before it leaves, so no string from a Kubernetes object can ever add a token,
a keyword or a newline to what ExaBGP parses.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from cosmolet.engine.model import Attributes, Family

#: ExaBGP reads its pipe 16 KiB at a time and refuses lines over 1 MiB; 500 /32s is ~8 KiB.
BATCH_SIZE = 500

#: The link-bandwidth community's AS field is 2 octets: a larger AS is written AS_TRANS.
MAX_AS2 = 65535
AS_TRANS = 23456

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
    peer_as: int | None  # None: "auto", learned from the OPEN (``PeerOpen``)
    families: tuple[Family, ...]
    next_hop: str = "self"  # "self", or an address (hybrid: the node's link-local on the link)
    origin: str = ""  # where it comes from in the config, for messages: "bgp.peers[0]"
    interface: str = ""  # hybrid mode: the fabric link this neighbor is on
    local_address: Address | None = None  # our end of the session, when configured or known

    @property
    def ebgp(self) -> bool:
        """Known to be eBGP (an ``auto`` peer whose OPEN has not been seen is not)."""
        return self.peer_as is not None and self.peer_as != self.local_as

    @property
    def ibgp(self) -> bool:
        return self.peer_as == self.local_as

    @property
    def name(self) -> str:
        """How cosmolet names the session (``/status``, metrics, logs): the peer's address, and
        in hybrid mode ``%interface``, since switches on two links may share a link-local."""
        return f"{self.peer}%{self.interface}" if self.interface else str(self.peer)

    @property
    def selector(self) -> str:
        """What follows ``neighbor`` in a command: the ExaBGP neighbors it reaches. The peer's
        address alone names every ExaBGP neighbor with that address, and two fabric switches
        often share one (a static ``fe80::1``), so a hybrid session adds ``local-ip`` (ExaBGP
        5's selector): the node's link-local, one per link. Numbered peers have distinct
        addresses (the config refuses two alike), so the address names exactly one."""
        if self.interface and self.local_address is not None:
            return f"{self.peer} local-ip {self.local_address}"
        return str(self.peer)

    def reports(self, peer: str, local: str) -> bool:
        """Whether an ExaBGP event about ``peer`` from ``local`` (``""``: not given) is about
        this session."""
        if peer != str(self.peer):
            return False
        return not local or self.local_address is None or local == str(self.local_address)


def attribute_tokens(session: Session, attributes: Attributes) -> str:
    """The path attributes of an ``announce attributes`` command for this session.

    A peer whose AS is not known yet (``auto`` before its OPEN) gets the local preference (ExaBGP
    drops it itself on an eBGP session) and no AS-path prepends: sent to an iBGP peer, a path
    holding its own AS would be discarded as a loop.

    The link bandwidth (weighted ECMP) is the non-transitive extended community 0x40 0x04,
    ``bandwidth:ASN:VALUE``: VALUE in whole bytes per second (ExaBGP's parser reads a ``.`` as an
    IPv4 address), and ASN a 2-octet field, so a 4-octet AS is written AS_TRANS, 23456, as RFC
    6793 does in every 2-octet AS field; switches read the value alone.
    """
    parts = [f"next-hop {session.next_hop}"]
    if attributes.local_preference is not None and not session.ebgp:
        parts.append(f"local-preference {attributes.local_preference:d}")
    if attributes.med is not None:
        parts.append(f"med {attributes.med:d}")
    if attributes.communities:
        parts.append(f"community [{' '.join(attributes.communities)}]")
    if attributes.large_communities:
        parts.append(f"large-community [{' '.join(attributes.large_communities)}]")
    if attributes.link_bandwidth is not None:
        asn = session.local_as if session.local_as <= MAX_AS2 else AS_TRANS
        parts.append(f"extended-community [bandwidth:{asn}:{attributes.link_bandwidth:d}]")
    if attributes.as_path_prepend and session.ebgp:
        # ExaBGP sends an explicit AS_PATH as given: our AS once, plus the prepends.
        path = " ".join([str(session.local_as)] * (attributes.as_path_prepend + 1))
        parts.append(f"as-path [{path}]")
    return " ".join(parts)


class CommandKind(StrEnum):
    ANNOUNCE = "announce"
    WITHDRAW = "withdraw"
    EOR = "eor"
    RELOAD = "reload"
    SHOW = "show"


@dataclass(frozen=True, slots=True)
class Command:
    """One line for ExaBGP and what it asks, so that ExaBGP's answer can be traced back to it."""

    line: str
    kind: CommandKind
    session: Session | None = None
    prefixes: tuple[str, ...] = ()


RELOAD = Command("reload", CommandKind.RELOAD)


def _chunks(items: Sequence[str], size: int) -> Iterable[tuple[str, ...]]:
    for start in range(0, len(items), size):
        yield tuple(items[start : start + size])


def announce(
    session: Session, attributes: Attributes, prefixes: Sequence[str], size: int = BATCH_SIZE
) -> list[Command]:
    """Batched announce lines for prefixes that share ``attributes``."""
    tokens = attribute_tokens(session, attributes)
    head = f"neighbor {session.selector} announce attributes {tokens}"
    return [
        Command(checked(f"{head} nlri {' '.join(chunk)}"), CommandKind.ANNOUNCE, session, chunk)
        for chunk in _chunks(prefixes, size)
    ]


def withdraw(session: Session, prefixes: Sequence[str], size: int = BATCH_SIZE) -> list[Command]:
    """Batched withdraw lines (ExaBGP wants a next-hop token even for a withdraw)."""
    head = f"neighbor {session.selector} withdraw attributes next-hop {session.next_hop}"
    return [
        Command(checked(f"{head} nlri {' '.join(chunk)}"), CommandKind.WITHDRAW, session, chunk)
        for chunk in _chunks(prefixes, size)
    ]


def end_of_rib(session: Session, family: Family) -> Command:
    line = checked(f"neighbor {session.selector} announce eor {_AFI_SAFI[family]}")
    return Command(line, CommandKind.EOR, session)


def acks_enabled(environ: Mapping[str, str]) -> bool:
    """Whether ExaBGP answers each command (``exabgp.api.ack``, as ExaBGP reads it: either
    spelling, its boolean words, true when unset)."""
    value = environ.get("exabgp.api.ack", environ.get("exabgp_api_ack", "true"))
    return value.strip().lower() in {"1", "yes", "on", "enable", "true"}


class PeerState(StrEnum):
    UP = "up"
    DOWN = "down"
    CONNECTED = "connected"


@dataclass(frozen=True, slots=True)
class PeerEvent:
    """A neighbor state change reported by ExaBGP (``local``: our address on the session)."""

    peer: str
    state: PeerState
    reason: str = ""
    local: str = ""


@dataclass(frozen=True, slots=True)
class PeerOpen:
    """The OPEN a peer sent: its AS (the 4-octet one when both sides speak it)."""

    peer: str
    local: str
    asn: int


@dataclass(frozen=True, slots=True)
class Shutdown:
    """ExaBGP said it is shutting down."""


class Answer(StrEnum):
    """What ExaBGP writes after each command when acks are on, and before a reload's answer."""

    DONE = "done"
    ERROR = "error"
    RELOADING = "reload in progress"


def parse_answer(line: str) -> Answer | None:
    try:
        return Answer(line.strip())
    except ValueError:
        return None


_PEER_RE = re.compile(r'"peer"\s*:\s*"([0-9A-Fa-f:.]+)"')
_LOCAL_RE = re.compile(r'"local"\s*:\s*"([0-9A-Fa-f:.]+)"')
_STATE_RE = re.compile(r'"state"\s*:\s*"(up|down|connected)"')
#: ExaBGP formats a missing value as Python's ``None`` (an ``auto`` peer AS): not JSON.
_BARE_NONE = re.compile(r"(?<=: )None(?=\s*[,}])")


def parse_event(line: str) -> PeerEvent | PeerOpen | Shutdown | None:
    """Parse one line ExaBGP wrote to our stdin; ``None`` for lines we do not act on.

    ExaBGP builds its JSON with string formatting, so a ``reason`` holding a quote can make the
    line invalid JSON: then the peer and state are still recovered with a narrow pattern.
    """
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        message = json.loads(_BARE_NONE.sub("null", line))
    except ValueError:
        if '"type": "state"' not in line:
            return None
        peer, state, own = _PEER_RE.search(line), _STATE_RE.search(line), _LOCAL_RE.search(line)
        if not peer or not state:
            return None
        return PeerEvent(
            _canonical(peer[1]), PeerState(state[1]), local=_canonical(own[1]) if own else ""
        )
    if not isinstance(message, dict):
        return None
    kind = message.get("type")
    if kind == "notification" and message.get("notification") == "shutdown":
        return Shutdown()
    if kind not in {"state", "open"}:
        return None
    neighbor = message.get("neighbor")
    if not isinstance(neighbor, dict):
        return None
    address = neighbor.get("address")
    peer = address.get("peer") if isinstance(address, dict) else None
    ours = address.get("local") if isinstance(address, dict) else None
    if not isinstance(peer, str):
        return None
    local = _canonical(ours) if isinstance(ours, str) else ""
    if kind == "open":
        return _open(_canonical(peer), local, neighbor)
    state = neighbor.get("state")
    if state not in {"up", "down", "connected"}:
        return None
    reason = neighbor.get("reason")
    return PeerEvent(
        _canonical(peer), PeerState(state), reason if isinstance(reason, str) else "", local
    )


def _open(peer: str, local: str, neighbor: dict[str, object]) -> PeerOpen | None:
    """A received OPEN: the AS field, or the 4-octet AS capability (65) when it carries one
    (an AS above 65535 puts AS_TRANS, 23456, in the field)."""
    message = neighbor.get("open")
    if neighbor.get("direction") != "receive" or not isinstance(message, dict):
        return None
    asn = message.get("asn")
    capabilities = message.get("capabilities")
    if isinstance(capabilities, dict):
        four_octet = capabilities.get("65")
        if isinstance(four_octet, dict) and isinstance(four_octet.get("asn4"), int):
            asn = four_octet["asn4"]
    if not isinstance(asn, int) or isinstance(asn, bool) or not 0 < asn < 2**32:
        return None
    return PeerOpen(peer, local, asn)


def _canonical(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text
