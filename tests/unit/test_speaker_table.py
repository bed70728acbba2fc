"""The speaker's production entry points, table-driven, against a recording ExaBGP.

Each case is a list of steps (``update_routes``, ``peer_event``, ``withdraw_all``, a failed write
and ``invalidate``...), each with the exact command lines it must return. The lines are then
applied to a fake ExaBGP that parses ``announce``/``withdraw`` and keeps, per neighbor, what it
was told (which it re-sends when the session returns). After every settled step each peer that
is not down must hold exactly the desired set, with the right attributes, so a missing or extra
command fails the case even where the expected lines were written wrong; and for every peer,
down or not, the speaker's ``advertised`` must name exactly what ExaBGP holds for it.
"""

from __future__ import annotations

import ipaddress
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest

from cosmolet.agent.speaker import Changes, SessionState, Speaker
from cosmolet.engine.model import Attributes, Family, Route
from cosmolet.exabgp.api import PeerEvent, PeerOpen, PeerState, Session, attribute_tokens

V4 = Session(ipaddress.ip_address("10.0.1.0"), 65001, 65101, (Family.IPV4,))
V6 = Session(ipaddress.ip_address("fd00:1::"), 65001, 65101, (Family.IPV6,))
BOTH = Session(
    ipaddress.ip_address("fe80::1"), 65001, None, (Family.IPV4, Family.IPV6), next_hop="fe80::2"
)


def link(interface: str, local: str) -> Session:
    """A hybrid session to a switch at fe80::1 (as every leaf with a static fe80::1 is)."""
    return Session(
        ipaddress.ip_address("fe80::1"),
        65001,
        None,
        (Family.IPV4, Family.IPV6),
        next_hop=local,
        interface=interface,
        local_address=ipaddress.ip_address(local),
    )


L1, L2 = link("eth1", "fe80::a"), link("eth2", "fe80::b")
PLAIN = Attributes()
TAGGED = Attributes(communities=("65001:1",))

A4 = "neighbor 10.0.1.0 announce attributes next-hop self"
W4 = "neighbor 10.0.1.0 withdraw attributes next-hop self"
EOR4 = "neighbor 10.0.1.0 announce eor ipv4 unicast"
A6 = "neighbor fd00:1:: announce attributes next-hop self"
W6 = "neighbor fd00:1:: withdraw attributes next-hop self"
EOR6 = "neighbor fd00:1:: announce eor ipv6 unicast"
AB = "neighbor fe80::1 announce attributes next-hop fe80::2"
WB = "neighbor fe80::1 withdraw attributes next-hop fe80::2"
AL1 = "neighbor fe80::1 local-ip fe80::a announce attributes next-hop fe80::a"
WL1 = "neighbor fe80::1 local-ip fe80::a withdraw attributes next-hop fe80::a"
AL2 = "neighbor fe80::1 local-ip fe80::b announce attributes next-hop fe80::b"
WL2 = "neighbor fe80::1 local-ip fe80::b withdraw attributes next-hop fe80::b"
EOR_L1 = ["neighbor fe80::1 local-ip fe80::a announce eor ipv4 unicast"]
EOR_L1 += ["neighbor fe80::1 local-ip fe80::a announce eor ipv6 unicast"]
EORL2 = ["neighbor fe80::1 local-ip fe80::b announce eor ipv4 unicast"]
EORL2 += ["neighbor fe80::1 local-ip fe80::b announce eor ipv6 unicast"]

_SELECTOR = r"neighbor (\S+(?: local-ip \S+)?)"
_ROUTE_LINE = re.compile(rf"^{_SELECTOR} (announce|withdraw) attributes (.+?) nlri (.+)$")
_EOR_LINE = re.compile(rf"^{_SELECTOR} announce eor (ipv4|ipv6) unicast$")


class FakeExaBGP:
    """What ExaBGP was told for each neighbor (by the speaker's name of the one session its
    selector reaches): prefix -> the attribute tokens it carries."""

    def __init__(self, speaker: Speaker) -> None:
        self.speaker = speaker
        self.ribs: dict[str, dict[str, str]] = defaultdict(dict)
        self.eors: dict[str, list[str]] = defaultdict(list)

    def neighbor(self, selector: str) -> str:
        [name] = [n for n, rib in self.speaker.peers.items() if rib.session.selector == selector]
        return name

    def apply(self, lines: Sequence[str]) -> None:
        for line in lines:
            if eor := _EOR_LINE.match(line):
                self.eors[self.neighbor(eor[1])].append(eor[2])
                continue
            command = _ROUTE_LINE.match(line)
            assert command, f"not a command ExaBGP takes: {line!r}"
            selector, verb, attributes, nlri = command.groups()
            neighbor = self.neighbor(selector)
            prefixes = nlri.split()
            # ExaBGP takes a whole line's family from its last prefix.
            assert len({":" in prefix for prefix in prefixes}) == 1, f"mixed families: {line!r}"
            rib = self.ribs[neighbor]
            for prefix in prefixes:
                if verb == "announce":
                    rib[prefix] = attributes
                else:
                    rib.pop(prefix, None)


@dataclass(frozen=True)
class Outcome:
    lines: list[str]
    settled: bool = True  # False: ExaBGP and the speaker may disagree until the next update


Action = Callable[[Speaker, FakeExaBGP], Outcome]


def sent(changes: Changes, exabgp: FakeExaBGP) -> Outcome:
    exabgp.apply(changes.lines)
    return Outcome(changes.lines)


def route(prefix: str, attributes: Attributes = PLAIN, service: str = "default/x") -> Route:
    family = Family.IPV6 if ":" in prefix else Family.IPV4
    return Route(prefix, family, (service,), attributes)


def delta(*routes: Route, gone: tuple[Route, ...] = ()) -> dict[str, Route | None]:
    """Announce ``routes`` (in this order), withdraw the prefixes of ``gone``."""
    result: dict[str, Route | None] = {r.prefix: r for r in routes}
    result.update(dict.fromkeys(r.prefix for r in gone))
    return result


def update(*routes: Route, gone: tuple[Route, ...] = ()) -> Action:
    change = delta(*routes, gone=gone)
    return lambda speaker, exabgp: sent(speaker.update_routes(change), exabgp)


def event(session: Session | str, state: PeerState, local: str = "") -> Action:
    """ExaBGP's state event about ``session`` (or an address), from our ``local`` address (by
    default the session's own, as ExaBGP reports it)."""
    if isinstance(session, Session):
        local = local or str(session.local_address or "")
        session = str(session.peer)
    report = PeerEvent(session, state, local=local)
    return lambda speaker, exabgp: sent(speaker.peer_event(report), exabgp)


def opened(session: Session, asn: int) -> Action:
    """The OPEN of an ``auto`` peer, which ExaBGP reports before the session is up."""

    def act(speaker: Speaker, exabgp: FakeExaBGP) -> Outcome:
        speaker.peer_open(PeerOpen(str(session.peer), str(session.local_address), asn))
        return Outcome([], settled=False)  # what ExaBGP holds was sent for an unknown kind

    return act


def refused(index: int, *routes: Route, gone: tuple[Route, ...] = ()) -> Action:
    """An update of whose lines ExaBGP refuses the ``index``-th (answers ``error``): until the
    next update retries it, the speaker holds those prefixes as unknown."""
    change = delta(*routes, gone=gone)

    def act(speaker: Speaker, exabgp: FakeExaBGP) -> Outcome:
        changes = speaker.update_routes(change)
        exabgp.apply([c.line for i, c in enumerate(changes.commands) if i != index])
        speaker.rejected(changes.commands[index])
        for rib in speaker.peers.values():
            assert not set(changes.commands[index].prefixes) & set(rib.held())
        return Outcome(changes.lines, settled=False)

    return act


def up(session: Session) -> Action:
    return event(session, PeerState.UP)


def down(session: Session) -> Action:
    return event(session, PeerState.DOWN)


def withdraw_all() -> Action:
    return lambda speaker, exabgp: sent(speaker.withdraw_all(), exabgp)


def restore(*prefixes: str) -> Action:
    """A restarted agent: ExaBGP still holds what the previous one announced to every session
    (UNKNOWN: it may be established), and the journal lists it."""

    def act(speaker: Speaker, exabgp: FakeExaBGP) -> Outcome:
        for rib in speaker.peers.values():
            families = {str(family) for family in rib.session.families}
            for prefix in prefixes:
                if ("ipv6" if ":" in prefix else "ipv4") in families:
                    exabgp.ribs[rib.session.name][prefix] = "next-hop self med 9"
        speaker.restore(prefixes)
        return Outcome([], settled=False)

    return act


def lost_write(*routes: Route, gone: tuple[Route, ...] = (), reached: int = 0) -> Action:
    """An update whose write fails after ``reached`` lines: the agent calls ``invalidate``."""
    change = delta(*routes, gone=gone)

    def act(speaker: Speaker, exabgp: FakeExaBGP) -> Outcome:
        changes = speaker.update_routes(change)
        exabgp.apply(changes.lines[:reached])
        speaker.invalidate(changes.withdrawn)
        return Outcome(changes.lines, settled=False)

    return act


def set_sessions(*sessions: Session) -> Action:
    def act(speaker: Speaker, exabgp: FakeExaBGP) -> Outcome:
        speaker.set_sessions(sessions)
        return Outcome([])

    return act


Step = tuple[Action, list[str]]

R1, R2, R3, R4 = (route(f"10.0.0.{n}/32") for n in range(1, 5))
RICH = route("10.0.0.1/32", Attributes(local_preference=200, as_path_prepend=1))
S1, S2 = route("fd00::1/128"), route("fd00::2/128")

CASES = [
    pytest.param(
        [V4],
        [
            (update(R2, R1), [f"{A4} nlri 10.0.0.1/32 10.0.0.2/32"]),
            (update(R3, gone=(R1,)), [f"{A4} nlri 10.0.0.3/32", f"{W4} nlri 10.0.0.1/32"]),
            (update(R3), []),
        ],
        id="first plan to an UNKNOWN session, then only differences",
    ),
    pytest.param(
        [V4, V6],
        [
            (restore("10.0.0.1/32", "10.0.0.9/32", "fd00::9/128"), []),
            (
                update(R1, R2),
                [
                    f"{A4} nlri 10.0.0.1/32 10.0.0.2/32",
                    f"{W4} nlri 10.0.0.9/32",
                    f"{W6} nlri fd00::9/128",
                ],
            ),
        ],
        id="a restarted agent withdraws what the previous one left and no longer wants",
    ),
    pytest.param(
        [V4],
        [
            (update(R1, R2), [f"{A4} nlri 10.0.0.1/32 10.0.0.2/32"]),
            (up(V4), [f"{A4} nlri 10.0.0.1/32 10.0.0.2/32", EOR4]),
            (update(R3), [f"{A4} nlri 10.0.0.3/32"]),
        ],
        id="session UP re-asserts everything then End-of-RIB, later updates send no EOR",
    ),
    pytest.param(
        [V4],
        [
            (up(V4), []),
            (update(R1), [f"{A4} nlri 10.0.0.1/32", EOR4]),
            (update(gone=(R1,)), [f"{W4} nlri 10.0.0.1/32"]),
        ],
        id="End-of-RIB waits for the first plan",
    ),
    pytest.param(
        [V4],
        [(up(V4), []), (update(), [EOR4])],
        id="an empty first plan still ends with End-of-RIB",
    ),
    pytest.param(
        [V4, V6],
        [
            (update(R1, R2, S1), [f"{A4} nlri 10.0.0.1/32 10.0.0.2/32", f"{A6} nlri fd00::1/128"]),
            (down(V4), []),
            (update(R3, S2, gone=(R1,)), [f"{A6} nlri fd00::2/128"]),
            (up(V4), [f"{A4} nlri 10.0.0.2/32 10.0.0.3/32", f"{W4} nlri 10.0.0.1/32", EOR4]),
            (down(V4), []),
            (up(V4), [f"{A4} nlri 10.0.0.2/32 10.0.0.3/32", EOR4]),
        ],
        id="DOWN then UP withdraws what became unwanted meanwhile, once",
    ),
    pytest.param(
        [V4],
        [
            (update(R1), [f"{A4} nlri 10.0.0.1/32"]),
            (update(route("10.0.0.1/32", TAGGED)), [f"{A4} community [65001:1] nlri 10.0.0.1/32"]),
            (update(route("10.0.0.1/32", TAGGED)), []),
            (update(route("10.0.0.1/32", TAGGED, service="default/y")), []),
            (update(R1), [f"{A4} nlri 10.0.0.1/32"]),
        ],
        id="an attribute change re-announces, a change of Services alone sends nothing",
    ),
    pytest.param(
        [BOTH],
        [
            (update(S1, R1), [f"{AB} nlri 10.0.0.1/32", f"{AB} nlri fd00::1/128"]),
            (
                update(route("10.0.0.2/32", TAGGED), route("fd00::2/128", TAGGED)),
                [
                    f"{AB} community [65001:1] nlri 10.0.0.2/32",
                    f"{AB} community [65001:1] nlri fd00::2/128",
                ],
            ),
            (
                update(gone=(S1, R1, S2, R2)),
                [f"{WB} nlri 10.0.0.1/32 10.0.0.2/32", f"{WB} nlri fd00::1/128 fd00::2/128"],
            ),
        ],
        id="two families on one session go on separate lines",
    ),
    pytest.param(
        [V4, V6],
        [(update(S1, R1), [f"{A4} nlri 10.0.0.1/32", f"{A6} nlri fd00::1/128"])],
        id="each session gets only its own family",
    ),
    pytest.param(
        [V4],
        [
            (lost_write(R1, R2), [f"{A4} nlri 10.0.0.1/32 10.0.0.2/32"]),
            (update(), [f"{A4} nlri 10.0.0.1/32 10.0.0.2/32"]),
        ],
        id="a failed first write is re-sent whole by the next update",
    ),
    pytest.param(
        [V4],
        [
            (update(R1, R2), [f"{A4} nlri 10.0.0.1/32 10.0.0.2/32"]),
            (
                lost_write(R3, gone=(R1,), reached=0),
                [f"{A4} nlri 10.0.0.3/32", f"{W4} nlri 10.0.0.1/32"],
            ),
            (update(), [f"{A4} nlri 10.0.0.2/32 10.0.0.3/32", f"{W4} nlri 10.0.0.1/32"]),
            (update(), []),
        ],
        id="after a failed write the next update re-sends everything and the lost withdraw",
    ),
    pytest.param(
        [V4],
        [
            (update(R1, R2), [f"{A4} nlri 10.0.0.1/32 10.0.0.2/32"]),
            (
                lost_write(R3, gone=(R1,), reached=1),
                [f"{A4} nlri 10.0.0.3/32", f"{W4} nlri 10.0.0.1/32"],
            ),
            (
                update(R4),
                [f"{A4} nlri 10.0.0.2/32 10.0.0.3/32 10.0.0.4/32", f"{W4} nlri 10.0.0.1/32"],
            ),
        ],
        id="a write that failed half-way: the next delta carries everything",
    ),
    pytest.param(
        [V4, V6],
        [
            (update(R1, S1), [f"{A4} nlri 10.0.0.1/32", f"{A6} nlri fd00::1/128"]),
            (down(V6), []),
            (withdraw_all(), [f"{W4} nlri 10.0.0.1/32"]),
            (up(V6), [f"{W6} nlri fd00::1/128", EOR6]),
        ],
        id="withdraw_all empties the reachable peers, a returning one on UP",
    ),
    pytest.param(
        [V4],
        [
            (update(R1), [f"{A4} nlri 10.0.0.1/32"]),
            (event("192.0.2.99", PeerState.UP), []),
            (event(V4, PeerState.CONNECTED), []),
            (update(R2), [f"{A4} nlri 10.0.0.2/32"]),
        ],
        id="an unknown peer and a CONNECTED state change nothing",
    ),
    pytest.param(
        [V4],
        [
            (update(R1), [f"{A4} nlri 10.0.0.1/32"]),
            (set_sessions(V4, V6), []),
            (update(S1), []),
            (up(V6), [f"{A6} nlri fd00::1/128", EOR6]),
            (set_sessions(V6), []),
            (update(S2, gone=(R1,)), [f"{A6} nlri fd00::2/128"]),
        ],
        id="hybrid: a new session waits DOWN for its UP, a vanished one is forgotten",
    ),
    pytest.param(
        [L1, L2],
        [
            (update(R1), [f"{AL1} nlri 10.0.0.1/32", f"{AL2} nlri 10.0.0.1/32"]),
            (down(L2), []),
            (update(R2), [f"{AL1} nlri 10.0.0.2/32"]),
            (event("fe80::1", PeerState.UP), []),  # no local address: which one is unknown
            (up(L2), [f"{AL2} nlri 10.0.0.1/32 10.0.0.2/32", *EORL2]),
            (update(gone=(R1,)), [f"{WL1} nlri 10.0.0.1/32", f"{WL2} nlri 10.0.0.1/32"]),
        ],
        id="two switches at one link-local: each line and each event is about one session",
    ),
    pytest.param(
        [L1],
        [
            (update(RICH), [f"{AL1} local-preference 200 nlri 10.0.0.1/32"]),
            (opened(L1, 65001), []),
            (up(L1), [f"{AL1} local-preference 200 nlri 10.0.0.1/32", *EOR_L1]),
            (down(L1), []),
            (opened(L1, 65100), []),
            (up(L1), [f"{AL1} as-path [65001 65001] nlri 10.0.0.1/32", *EOR_L1]),
        ],
        id="an auto peer is iBGP or eBGP as its OPEN says: local preference, or prepends",
    ),
    pytest.param(
        [V4],
        [
            (update(R1), [f"{A4} nlri 10.0.0.1/32"]),
            (
                refused(0, R2, R3, gone=(R1,)),
                [f"{A4} nlri 10.0.0.2/32 10.0.0.3/32", f"{W4} nlri 10.0.0.1/32"],
            ),
            (update(), [f"{A4} nlri 10.0.0.2/32 10.0.0.3/32"]),
            (update(), []),
        ],
        id="a refused announce is not claimed, and the next update sends it again",
    ),
    pytest.param(
        [V4],
        [
            (update(R1, R2), [f"{A4} nlri 10.0.0.1/32 10.0.0.2/32"]),
            (refused(1, R3, gone=(R1,)), [f"{A4} nlri 10.0.0.3/32", f"{W4} nlri 10.0.0.1/32"]),
            (update(R4), [f"{A4} nlri 10.0.0.4/32", f"{W4} nlri 10.0.0.1/32"]),
        ],
        id="a refused withdraw is withdrawn again by the next update",
    ),
]


@pytest.mark.parametrize(("sessions", "steps"), CASES)
def test_steps_produce_exact_lines_and_leave_each_peer_the_desired_set(
    sessions: list[Session], steps: list[Step]
) -> None:
    run(Speaker(sessions), steps)


DISABLED: list[Step] = [
    (update(R1), []),
    (up(V4), []),
    (update(R2, gone=(R1,)), []),
    (down(V4), []),
    (up(V4), []),
    (withdraw_all(), []),
]


def test_a_disabled_speaker_sends_nothing_but_tracks_what_it_would_have_sent() -> None:
    exabgp = run(Speaker([V4], enabled=False), DISABLED)
    assert exabgp.ribs == {} and exabgp.eors == {}


def run(speaker: Speaker, steps: list[Step]) -> FakeExaBGP:
    """Take the steps; after each, the lines must be the expected ones, none for a peer that is
    down, and (when settled) ExaBGP and the speaker must agree with the desired set."""
    exabgp = FakeExaBGP(speaker)
    for index, (action, expected) in enumerate(steps):
        outcome = action(speaker, exabgp)
        assert outcome.lines == expected, f"step {index}"
        silent = [rib.session for rib in speaker.peers.values() if rib.state is SessionState.DOWN]
        to_silent = [
            line
            for line in outcome.lines
            for session in silent
            if line.startswith(f"neighbor {session.selector} ")
            and not line.startswith(f"neighbor {session.selector} local-ip")
        ]
        assert not to_silent, f"step {index}"
        if outcome.settled:
            check(speaker, exabgp, f"after step {index}")
    return exabgp


def check(speaker: Speaker, exabgp: FakeExaBGP, when: str) -> None:
    """Every peer that is not down holds exactly the desired set (in its families); for every
    peer the speaker's ``advertised`` names what ExaBGP holds for it."""
    for name, rib in speaker.peers.items():
        held = exabgp.ribs.get(name, {})
        if speaker.enabled:
            assert set(rib.advertised) == set(held), f"{name} {when}"
        else:
            assert held == {}, f"{name} {when}"
        if rib.state is SessionState.DOWN:
            continue
        wanted = {p: r for p, r in speaker.desired.items() if r.family in rib.session.families}
        assert rib.advertised == {p: r.attributes for p, r in wanted.items()}, f"{name} {when}"
        if speaker.enabled:
            tokens = {p: attribute_tokens(rib.effective, r.attributes) for p, r in wanted.items()}
            assert held == tokens, f"{name} {when}"
