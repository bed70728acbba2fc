"""The speaker's per-peer diff, session edges and restore, checked on the lines it returns for
the deltas of ``update_routes`` (prefix -> route, ``None`` to withdraw)."""

from __future__ import annotations

import ipaddress

from cosmolet.agent.speaker import SessionState, Speaker
from cosmolet.engine.model import Attributes, Family, Route
from cosmolet.exabgp.api import PeerEvent, PeerOpen, PeerState, Session

V4 = Session(ipaddress.ip_address("10.0.1.0"), 65001, 65101, (Family.IPV4,))
V6 = Session(ipaddress.ip_address("fd00:1::"), 65001, 65101, (Family.IPV6,))
PLAIN = Attributes()
TAGGED = Attributes(communities=("65001:1",))


def route(prefix: str, attributes: Attributes = PLAIN) -> Route:
    family = Family.IPV6 if ":" in prefix else Family.IPV4
    return Route(prefix, family, ("default/x",), attributes)


def delta(*routes: Route, gone: tuple[str, ...] = ()) -> dict[str, Route | None]:
    """A delta announcing ``routes`` (in order) and withdrawing ``gone``."""
    result: dict[str, Route | None] = {r.prefix: r for r in routes}
    result.update(dict.fromkeys(gone))
    return result


def up(speaker: Speaker, session: Session) -> list[str]:
    return speaker.peer_event(PeerEvent(session.name, PeerState.UP)).lines


def down(speaker: Speaker, session: Session) -> None:
    speaker.peer_event(PeerEvent(session.name, PeerState.DOWN))


def test_first_plan_announces_per_family_batched() -> None:
    speaker = Speaker([V4, V6])
    changes = speaker.update_routes(
        delta(route("10.0.0.2/32"), route("10.0.0.1/32"), route("fd00::1/128"))
    )
    assert changes.lines == [
        "neighbor 10.0.1.0 announce attributes next-hop self nlri 10.0.0.1/32 10.0.0.2/32",
        "neighbor fd00:1:: announce attributes next-hop self nlri fd00::1/128",
    ]


def test_only_differences_are_sent() -> None:
    speaker = Speaker([V4])
    speaker.update_routes(delta(route("10.0.0.1/32"), route("10.0.0.2/32")))
    # The same routes again (a Service re-listed): nothing to send.
    assert speaker.update_routes(delta(route("10.0.0.1/32"), route("10.0.0.2/32"))).lines == []
    changes = speaker.update_routes(
        delta(route("10.0.0.1/32", TAGGED), route("10.0.0.3/32"), gone=("10.0.0.2/32",))
    )
    assert changes.lines == [
        "neighbor 10.0.1.0 announce attributes next-hop self community [65001:1] nlri 10.0.0.1/32",
        "neighbor 10.0.1.0 announce attributes next-hop self nlri 10.0.0.3/32",
        "neighbor 10.0.1.0 withdraw attributes next-hop self nlri 10.0.0.2/32",
    ]
    assert changes.announced == {"10.0.0.1/32", "10.0.0.3/32"}
    assert changes.withdrawn == {"10.0.0.2/32"}


def test_a_change_of_services_alone_sends_nothing() -> None:
    speaker = Speaker([V4])
    speaker.update_routes(delta(route("10.0.0.1/32")))
    moved = Route("10.0.0.1/32", Family.IPV4, ("default/a", "default/b"), PLAIN)
    assert speaker.update_routes(delta(moved)).lines == []
    assert speaker.desired["10.0.0.1/32"] is moved


def test_batches_hold_at_most_500_prefixes() -> None:
    speaker = Speaker([V4])
    routes = [route(f"10.0.{i // 256}.{i % 256}/32") for i in range(1201)]
    lines = speaker.update_routes(delta(*routes)).lines
    assert [line.count("/32") for line in lines] == [500, 500, 201]


def test_peer_up_reasserts_everything_then_eor_and_down_sends_nothing() -> None:
    speaker = Speaker([V4, V6])
    speaker.update_routes(delta(route("10.0.0.1/32"), route("fd00::1/128")))
    down(speaker, V4)
    assert speaker.peers[V4.name].state is SessionState.DOWN
    changes = speaker.update_routes(delta(route("10.0.0.2/32"), gone=("10.0.0.1/32",)))
    assert all(not line.startswith("neighbor 10.0.1.0") for line in changes.lines)
    # 10.0.0.1/32 went away during the outage: ExaBGP still has it for the peer and would send
    # it again on reconnect, so it is withdrawn explicitly.
    assert up(speaker, V4) == [
        "neighbor 10.0.1.0 announce attributes next-hop self nlri 10.0.0.2/32",
        "neighbor 10.0.1.0 withdraw attributes next-hop self nlri 10.0.0.1/32",
        "neighbor 10.0.1.0 announce eor ipv4 unicast",
    ]
    # Once withdrawn, it is forgotten: the next outage and return re-assert only what is wanted.
    down(speaker, V4)
    assert up(speaker, V4) == [
        "neighbor 10.0.1.0 announce attributes next-hop self nlri 10.0.0.2/32",
        "neighbor 10.0.1.0 announce eor ipv4 unicast",
    ]


def test_eor_waits_for_the_first_plan() -> None:
    speaker = Speaker([V4])
    assert up(speaker, V4) == []
    assert speaker.update_routes(delta(route("10.0.0.1/32"))).lines == [
        "neighbor 10.0.1.0 announce attributes next-hop self nlri 10.0.0.1/32",
        "neighbor 10.0.1.0 announce eor ipv4 unicast",
    ]
    # Later plans send no EOR.
    assert speaker.update_routes(delta(gone=("10.0.0.1/32",))).lines == [
        "neighbor 10.0.1.0 withdraw attributes next-hop self nlri 10.0.0.1/32"
    ]


def test_an_empty_first_plan_still_ends_with_eor() -> None:
    speaker = Speaker([V4])
    up(speaker, V4)
    assert speaker.update_routes({}).lines == ["neighbor 10.0.1.0 announce eor ipv4 unicast"]


def test_restore_withdraws_stale_prefixes_and_reannounces_the_wanted_ones() -> None:
    speaker = Speaker([V4, V6])
    speaker.restore({"10.0.0.1/32", "10.0.0.9/32", "fd00::9/128"})
    changes = speaker.update_routes(delta(route("10.0.0.1/32"), route("10.0.0.2/32")))
    assert changes.lines == [
        "neighbor 10.0.1.0 announce attributes next-hop self nlri 10.0.0.1/32 10.0.0.2/32",
        "neighbor 10.0.1.0 withdraw attributes next-hop self nlri 10.0.0.9/32",
        "neighbor fd00:1:: withdraw attributes next-hop self nlri fd00::9/128",
    ]


def test_withdraw_all_and_unknown_peers() -> None:
    speaker = Speaker([V4])
    speaker.update_routes(delta(route("10.0.0.1/32")))
    assert speaker.peer_event(PeerEvent("192.0.2.99", PeerState.UP)).lines == []
    assert speaker.withdraw_all().lines == [
        "neighbor 10.0.1.0 withdraw attributes next-hop self nlri 10.0.0.1/32"
    ]


def test_disabled_speaker_tracks_but_sends_nothing() -> None:
    speaker = Speaker([V4], enabled=False)
    changes = speaker.update_routes(delta(route("10.0.0.1/32")))
    assert changes.lines == []
    assert changes.announced == {"10.0.0.1/32"}


def test_ibgp_attributes_and_prepend_rules() -> None:
    ibgp = Session(ipaddress.ip_address("10.0.2.0"), 65001, 65001, (Family.IPV4,))
    rich = Attributes(("65001:1", "no-export"), ("65001:0:1",), 200, 5, 2)
    speaker = Speaker([V4, ibgp])
    lines = speaker.update_routes(delta(route("10.0.0.1/32", rich))).lines
    assert lines == [
        "neighbor 10.0.1.0 announce attributes next-hop self med 5 community [65001:1 no-export] "
        "large-community [65001:0:1] as-path [65001 65001 65001] nlri 10.0.0.1/32",
        "neighbor 10.0.2.0 announce attributes next-hop self local-preference 200 med 5 "
        "community [65001:1 no-export] large-community [65001:0:1] nlri 10.0.0.1/32",
    ]


def test_a_batch_line_never_mixes_families() -> None:
    both = Session(
        ipaddress.ip_address("fe80::1"), 65001, None, (Family.IPV4, Family.IPV6), next_hop="fe80::2"
    )
    speaker = Speaker([both])
    assert speaker.update_routes(delta(route("fd00::1/128"), route("10.0.0.1/32"))).lines == [
        "neighbor fe80::1 announce attributes next-hop fe80::2 nlri 10.0.0.1/32",
        "neighbor fe80::1 announce attributes next-hop fe80::2 nlri fd00::1/128",
    ]
    assert speaker.update_routes(delta(gone=("fd00::1/128", "10.0.0.1/32"))).lines == [
        "neighbor fe80::1 withdraw attributes next-hop fe80::2 nlri 10.0.0.1/32",
        "neighbor fe80::1 withdraw attributes next-hop fe80::2 nlri fd00::1/128",
    ]


def test_a_refused_line_is_never_claimed_and_is_retried_once() -> None:
    speaker = Speaker([V4])
    [line] = speaker.update_routes(delta(route("10.0.0.1/32"))).commands
    assert speaker.peers[V4.name].held() == {"10.0.0.1/32": PLAIN}
    assert not speaker.retry_pending
    assert speaker.rejected(line) == ["10.0.0.1/32"]
    assert speaker.peers[V4.name].held() == {}
    assert speaker.peers_of("10.0.0.1/32") == [V4.name]  # ExaBGP may hold it: kept for the journal
    assert speaker.retry_pending
    assert speaker.update_routes({}).lines == [
        "neighbor 10.0.1.0 announce attributes next-hop self nlri 10.0.0.1/32"
    ]
    assert not speaker.retry_pending
    assert speaker.update_routes({}).lines == []


def test_a_refusal_for_a_session_since_replaced_changes_nothing() -> None:
    old = Session(
        ipaddress.ip_address("fe80::1"),
        65001,
        None,
        (Family.IPV4,),
        next_hop="fe80::a",
        interface="eth1",
        local_address=ipaddress.ip_address("fe80::a"),
    )
    new = Session(
        old.peer,
        65001,
        None,
        (Family.IPV4,),
        next_hop="fe80::b",
        interface="eth1",
        local_address=ipaddress.ip_address("fe80::b"),
    )
    speaker = Speaker([old])
    [line] = speaker.update_routes(delta(route("10.0.0.1/32"))).commands
    speaker.set_sessions([new])  # the node's link-local on eth1 changed
    assert speaker.rejected(line) == []
    assert speaker.peers[new.name].advertised == {}


def test_the_open_of_a_peer_with_a_configured_as_changes_nothing() -> None:
    speaker = Speaker([V4])
    speaker.peer_open(PeerOpen("10.0.1.0", "", 65001))
    assert speaker.peers[V4.name].effective == V4
