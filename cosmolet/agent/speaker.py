"""The speaker: changes to the desired route set in, the ExaBGP commands that realise them out.

The reconciler feeds it *deltas* (``update_routes``: prefix -> route, ``None`` to withdraw); the
speaker keeps the whole desired set itself and, per peer, what that peer was sent. Each delta is
diffed against what each peer was sent: new prefixes are announced, changed attributes
re-announced, removed prefixes withdrawn, and nothing else is sent. Only the delta's prefixes are
looked at unless a peer needs the whole set (the first plan, a new session, a pending End-of-RIB,
a failed write, a line ExaBGP refused): then the whole desired set is diffed against what that
peer was sent. It does no I/O; the agent writes the lines it returns.

Peer sessions move through three states:

- ``UNKNOWN``: the agent has just started and ExaBGP may already be established with the peer
  (the agent alone was restarted). Changes are sent; prefixes a previous agent may have left in
  ExaBGP (``restore``) are withdrawn unless still desired.
- ``UP``: ExaBGP reported the session up. On that edge the whole desired set is re-asserted to
  the peer (what ExaBGP re-sent of its own cannot be asked: adj-RIB-out is off), followed by an
  End-of-RIB per family, which under graceful restart is what tells the peer to drop any stale
  route we did not re-assert. Until the first plan exists the EOR waits: the peer keeps its
  stale routes meanwhile.
- ``DOWN``: nothing is sent; the peer has dropped (or holds as stale) everything. ExaBGP,
  though, keeps what we announced to the peer and re-sends it when the session returns, so what
  the peer was sent is kept as *unknown*: on UP each such prefix is re-announced if still
  desired and withdrawn if not (else a Service that went unhealthy during the outage would come
  back from ExaBGP's copy; the fault suite caught that).

An ``auto`` peer's AS is learned from its OPEN (``peer_open``): iBGP when it is ours, so local
preference is sent and AS-path prepends are not. ``peer_asns`` keeps what was learned by ExaBGP
neighbor (its selector), for the agent to keep across its own restarts: ExaBGP's sessions stay up
then, and no OPEN comes again.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from cosmolet.engine.model import Attributes, Family, Route, prefix_sort_key
from cosmolet.exabgp import api as exabgp_api
from cosmolet.exabgp.api import Command, PeerEvent, PeerOpen, PeerState, Session

#: Attributes of a prefix the peer may hold but we cannot vouch for (a previous agent announced
#: it, the session went down, a write failed, ExaBGP refused the line): never equal, so re-sent.
_UNKNOWN = Attributes(communities=("?",))


class SessionState(StrEnum):
    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"


@dataclass
class PeerRib:
    """What one peer has been sent, and the state of its session."""

    session: Session
    state: SessionState = SessionState.UNKNOWN
    advertised: dict[str, Attributes] = field(default_factory=dict)
    eor_pending: bool = False
    since: float = 0.0
    needs_full: bool = True  # the next publish diffs the whole set (new session, refused line)
    peer_as: int | None = None  # from the peer's OPEN, for a session configured ``auto``

    @property
    def effective(self) -> Session:
        """The session as the OPEN showed it (its ``auto`` AS resolved)."""
        if self.session.peer_as is None and self.peer_as is not None:
            return replace(self.session, peer_as=self.peer_as)
        return self.session

    def held(self) -> dict[str, Attributes]:
        """What the peer was sent and ExaBGP did not refuse, unknowns left out (from a copy,
        which is atomic: the HTTP threads call this while the reconciler runs)."""
        return {p: a for p, a in self.advertised.copy().items() if a is not _UNKNOWN}


@dataclass
class Changes:
    """Command lines to write, and which prefixes they announce and withdraw (for the journal)."""

    commands: list[Command] = field(default_factory=list)
    announced: set[str] = field(default_factory=set)
    withdrawn: set[str] = field(default_factory=set)
    #: (``announce`` | ``withdraw``, family) -> prefixes, counted once per peer
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def lines(self) -> list[str]:
        return [command.line for command in self.commands]

    @property
    def announce_count(self) -> int:
        return sum(n for (kind, _), n in self.counts.items() if kind == "announce")

    @property
    def withdraw_count(self) -> int:
        return sum(n for (kind, _), n in self.counts.items() if kind == "withdraw")

    def extend(self, other: Changes) -> None:
        self.commands += other.commands
        self.announced |= other.announced
        self.withdrawn |= other.withdrawn
        self.counts.update(other.counts)


class Speaker:
    """Keeps the desired set and, per peer, what was sent; turns each change into the ExaBGP
    commands that bring every reachable peer to the desired set (see the module docstring)."""

    def __init__(self, sessions: Iterable[Session], enabled: bool = True) -> None:
        self.peers: dict[str, PeerRib] = {s.name: PeerRib(s) for s in sessions}
        #: the AS each ``auto`` neighbor's OPEN showed, by selector
        self.peer_asns: dict[str, int] = {}
        self.enabled = enabled
        self.desired: dict[str, Route] = {}
        self.plan_ready = False
        self._resync = False

    # --- inputs -------------------------------------------------------------------------------

    def set_sessions(
        self, sessions: Iterable[Session], state: SessionState = SessionState.DOWN
    ) -> None:
        """ExaBGP's neighbors changed. A new or changed session starts in ``state`` (DOWN: it
        gets everything when ExaBGP reports it up); a vanished one is forgotten."""
        wanted = {session.name: session for session in sessions}
        for name in list(self.peers):
            if wanted.get(name) != self.peers[name].session:
                del self.peers[name]
        for name, session in wanted.items():
            if name not in self.peers:
                known = self.peer_asns.get(session.selector)
                self.peers[name] = PeerRib(session, state=state, peer_as=known)

    def remember_asns(self, asns: Mapping[str, int]) -> None:
        """What earlier OPENs showed, by selector (a previous agent's record): the ``auto``
        sessions' AS until their next OPEN."""
        self.peer_asns.update(asns)
        for rib in self.peers.values():
            if rib.session.peer_as is None and rib.peer_as is None:
                rib.peer_as = self.peer_asns.get(rib.session.selector)

    def withdraw_from(self, names: Iterable[str]) -> Changes:
        """Withdraw everything from these established sessions, about to be removed: removed
        by a reload under graceful restart, ExaBGP closes a session without a NOTIFICATION,
        and the switch would keep our routes as stale for the restart time."""
        changes = Changes()
        desired, self.desired = self.desired, {}
        try:
            for name in names:
                rib = self.peers.get(name)
                if rib is not None and rib.state is SessionState.UP:
                    changes.extend(self._sync(rib))
        finally:
            self.desired = desired
        return changes

    def restore(self, prefixes: Iterable[str]) -> None:
        """Prefixes a previous agent may have left in ExaBGP: withdrawn unless still wanted."""
        stale = list(prefixes)
        for rib in self.peers.values():
            if rib.state is SessionState.UNKNOWN:
                for prefix in stale:
                    if _family_of(prefix) in rib.session.families:
                        rib.advertised.setdefault(prefix, _UNKNOWN)

    def update_routes(self, delta: Mapping[str, Route | None]) -> Changes:
        """Apply a difference to the desired set (``None`` removes a prefix)."""
        for prefix, route in delta.items():
            if route is None:
                self.desired.pop(prefix, None)
            else:
                self.desired[prefix] = route
        return self._publish(list(delta))

    def _publish(self, touched: list[str]) -> Changes:
        first = not self.plan_ready
        # Peers that are not down carry exactly the previous set: only ``touched`` needs a look.
        full = first or self._resync
        self._resync = False
        self.plan_ready = True
        changes = Changes()
        for rib in self.peers.values():
            if rib.state is SessionState.DOWN:
                continue
            whole = full or rib.eor_pending or rib.needs_full
            rib.needs_full = False
            changes.extend(self._sync(rib, None if whole else touched))
            if first and rib.eor_pending:
                changes.extend(self._end_of_rib(rib))
        return changes

    def peer_event(self, event: PeerEvent, now: float = 0.0) -> Changes:
        """React to ExaBGP's report of a session state change."""
        rib = self._rib_of(event.peer, event.local)
        if rib is None or event.state is PeerState.CONNECTED:
            return Changes()
        if event.state is PeerState.DOWN:
            if rib.state is not SessionState.DOWN:
                rib.since = now
            rib.state = SessionState.DOWN
            _forget_attributes(rib)
            rib.eor_pending = False
            return Changes()
        # Up: the peer holds stale graceful-restart copies at most, and ExaBGP may re-send what
        # it was told before. Re-assert the desired set, withdraw the rest, then End-of-RIB.
        rib.state = SessionState.UP
        rib.since = now
        _forget_attributes(rib)
        rib.eor_pending = True
        if not self.plan_ready:
            return Changes()
        rib.needs_full = False
        changes = self._sync(rib)
        changes.extend(self._end_of_rib(rib))
        return changes

    def peer_open(self, event: PeerOpen) -> None:
        """The peer's OPEN: its AS, for a session configured ``auto`` (it precedes the UP, whose
        re-assertion then carries the attributes for that kind of session)."""
        rib = self._rib_of(event.peer, event.local)
        if rib is not None and rib.session.peer_as is None:
            rib.peer_as = self.peer_asns[rib.session.selector] = event.asn

    def rejected(self, command: Command) -> list[str]:
        """ExaBGP refused ``command``: what it carried is unknown for that peer (never claimed,
        re-sent by the next publish). Returns those prefixes: ExaBGP may hold them still."""
        session = command.session
        rib = None if session is None else self.peers.get(session.name)
        if session is None or rib is None or rib.session.selector != session.selector:
            return []  # a session since replaced or gone: ExaBGP's neighbor went with it
        for prefix in command.prefixes:
            rib.advertised[prefix] = _UNKNOWN
        rib.needs_full = True
        return list(command.prefixes)

    def invalidate(self, withdrawn: Iterable[str] = ()) -> None:
        """A write failed: forget what peers hold, so that the next plan re-sends everything.

        ``withdrawn`` are prefixes whose withdraw may not have reached ExaBGP: they are put back
        so the next plan withdraws them again unless it wants them.
        """
        withdrawn = list(withdrawn)
        for rib in self.peers.values():
            for prefix in rib.advertised:
                rib.advertised[prefix] = _UNKNOWN
            if rib.state is not SessionState.DOWN:
                for prefix in withdrawn:
                    if _family_of(prefix) in rib.session.families:
                        rib.advertised[prefix] = _UNKNOWN
        self._resync = True

    @property
    def needs_resync(self) -> bool:
        """A write failed: the next publish must re-send everything."""
        return self._resync

    @property
    def retry_pending(self) -> bool:
        """A reachable peer needs the whole set looked at again (ExaBGP refused a line)."""
        return any(
            rib.needs_full and rib.state is not SessionState.DOWN for rib in self.peers.values()
        )

    def withdraw_all(self) -> Changes:
        """Withdraw everything from every peer (the ``withdraw`` shutdown mode)."""
        self.desired = {}
        changes = Changes()
        for rib in self.peers.values():
            if rib.state is not SessionState.DOWN:
                changes.extend(self._sync(rib))
        return changes

    # --- views --------------------------------------------------------------------------------

    def peers_of(self, prefix: str) -> list[str]:
        """The peers that may hold ``prefix`` (unknowns included: for the journal)."""
        return [name for name, rib in self.peers.items() if prefix in rib.advertised]

    # --- internals ----------------------------------------------------------------------------

    def _rib_of(self, peer: str, local: str) -> PeerRib | None:
        """The session an event is about; ``None`` if none is, or if it cannot tell which."""
        found = [rib for rib in self.peers.values() if rib.session.reports(peer, local)]
        return found[0] if len(found) == 1 else None

    def announce_more(self, routes: dict[str, Route]) -> Changes:
        """Add ``routes`` to the desired set and announce them to every peer not known to be
        down, withdrawing nothing (the first list while it pages in: ``first_list``)."""
        self.desired.update(routes)
        changes = Changes()
        for rib in self.peers.values():
            if rib.state is not SessionState.DOWN:
                changes.extend(self._sync(rib, list(routes)))  # each desired: announcements only
        return changes

    def _sync(self, rib: PeerRib, touched: Iterable[str] | None = None) -> Changes:
        """Diff the desired set against ``rib``; ``touched`` limits the prefixes looked at."""
        session = rib.effective
        families = session.families
        desired = self.desired
        advertised = rib.advertised
        # One batch line per (attributes, family): ExaBGP takes the family of a whole
        # ``announce attributes ... nlri`` line from its last prefix.
        to_announce: dict[tuple[Attributes, Family], list[str]] = defaultdict(list)
        to_withdraw: list[str] = []
        if touched is None:
            candidates: Iterable[str] = list(desired) + [p for p in advertised if p not in desired]
        else:
            candidates = touched
        for prefix in candidates:
            route = desired.get(prefix)
            if route is not None and route.family in families:
                if advertised.get(prefix) != route.attributes:
                    to_announce[route.attributes, route.family].append(prefix)
            elif prefix in advertised:
                to_withdraw.append(prefix)
        to_withdraw.sort(key=prefix_sort_key)  # IPv4 first, then IPv6

        changes = Changes()
        for (attributes, _family), prefixes in sorted(
            to_announce.items(), key=lambda item: str(item[0][1])
        ):
            prefixes.sort(key=lambda prefix: desired[prefix].sort_key)
            if self.enabled:
                changes.commands += exabgp_api.announce(session, attributes, prefixes)
            changes.announced.update(prefixes)
            for prefix in prefixes:
                changes.counts["announce", _family_of(prefix)] += 1
                rib.advertised[prefix] = attributes
        if to_withdraw:
            if self.enabled:
                for family in ("ipv4", "ipv6"):
                    group = [p for p in to_withdraw if _family_of(p) == family]
                    if group:
                        changes.commands += exabgp_api.withdraw(session, group)
            changes.withdrawn.update(to_withdraw)
            for prefix in to_withdraw:
                changes.counts["withdraw", _family_of(prefix)] += 1
                del rib.advertised[prefix]
        return changes

    def _end_of_rib(self, rib: PeerRib) -> Changes:
        rib.eor_pending = False
        changes = Changes()
        if self.enabled:
            families = rib.session.families
            changes.commands += [exabgp_api.end_of_rib(rib.session, f) for f in families]
        return changes


def _forget_attributes(rib: PeerRib) -> None:
    """What the peer holds from us is no longer known, only what it may hold."""
    for prefix in rib.advertised:
        rib.advertised[prefix] = _UNKNOWN


def _family_of(prefix: str) -> str:
    return "ipv6" if ":" in prefix else "ipv4"
