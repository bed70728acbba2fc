"""ExaBGP API lines and events."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cosmolet.engine.model import Attributes, Family
from cosmolet.exabgp.api import (
    Answer,
    PeerEvent,
    PeerOpen,
    PeerState,
    Session,
    Shutdown,
    UnsafeCommand,
    acks_enabled,
    announce,
    attribute_tokens,
    checked,
    end_of_rib,
    parse_answer,
    parse_event,
    withdraw,
)

SESSION = Session(ipaddress.ip_address("10.0.1.0"), 65001, 65101, (Family.IPV4,))


@pytest.mark.parametrize(
    "line",
    [
        "neighbor 10.0.1.0 announce route 1.1.1.1/32 next-hop self\nwithdraw route 2.2.2.2/32",
        "announce route 1.1.1.1/32 next-hop self; shutdown",
        "announce route 1.1.1.1/32 next-hop self community [65001:1] # comment",
        'announce route 1.1.1.1/32 next-hop self description "x"',
        "",
    ],
)
def test_unsafe_lines_are_refused(line: str) -> None:
    with pytest.raises(UnsafeCommand):
        checked(line)


def test_announce_refuses_a_prefix_that_is_not_one() -> None:
    with pytest.raises(UnsafeCommand):
        announce(SESSION, Attributes(), ["10.0.0.1/32\nannounce route 0.0.0.0/0 next-hop self"])


STATE = (
    '{ "exabgp": "5.0.0", "time": 1.0, "host" : "vm", "pid" : 1, "ppid" : 1, "counter": 2, '
    '"type": "state", "neighbor": { "address": { "local": "10.0.1.1", "peer": "10.0.1.0" }, '
    '"asn": { "local": 65001, "peer": 65101 }, "router-id": "192.0.2.1" , "state": "%s"%s } }'
)


def test_parses_state_events() -> None:
    assert parse_event(STATE % ("up", "")) == PeerEvent("10.0.1.0", PeerState.UP, "", "10.0.1.1")
    assert parse_event(STATE % ("down", ', "reason": "peer reset"')) == PeerEvent(
        "10.0.1.0", PeerState.DOWN, "peer reset", "10.0.1.1"
    )
    # ExaBGP does not escape the reason: a quote in it breaks the JSON, the state survives.
    broken = STATE % ("down", ', "reason": "notification "bad" received"')
    assert parse_event(broken) == PeerEvent("10.0.1.0", PeerState.DOWN, local="10.0.1.1")


def test_peer_addresses_are_canonical() -> None:
    line = (STATE % ("up", "")).replace('"10.0.1.0"', '"FD00:1:0::"')
    line = line.replace('"10.0.1.1"', '"FD00:1:0::1"')
    assert parse_event(line) == PeerEvent("fd00:1::", PeerState.UP, local="fd00:1::1")


# What ExaBGP 5.0.15 wrote for two hybrid sessions to switches sharing fe80::1, the peer AS
# configured ``auto`` (printed as Python's None: not JSON).
AUTO = (
    '{ "exabgp": "5.0.0", "time": 1.0, "host" : "vm", "pid" : 1, "ppid" : 1, "counter": 3, '
    '"type": "state", "neighbor": { "address": { "local": "fe80::23:34ff:feec:8fce", '
    '"peer": "fe80::1" }, "asn": { "local": 65001, "peer": None }, "router-id": "192.0.2.1" , '
    '"state": "up" } }'
)
OPEN = (
    '{ "exabgp": "5.0.0", "time": 1.0, "host" : "vm", "pid" : 1, "ppid" : 1, "counter": 2, '
    '"type": "open", "neighbor": { "address": { "local": "fe80::788f:6fff:feeb:7f7d", '
    '"peer": "fe80::1" }, "asn": { "local": 65001, "peer": None }, "router-id": "192.0.2.1" , '
    '"direction": "receive", "open": { "version": 4, "asn": %d, "hold_time": 9, '
    '"router_id": "10.255.0.1", "capabilities": { "1": { "name": "multiprotocol", "families": '
    '[ "ipv4/unicast", "ipv6/unicast" ] }, "65": { "name": "asn4", "asn4": %d }, "73": '
    '{ "host-name": "leaf1", "domain-name": "" } } } } }'
)


def test_events_name_our_address_so_sessions_sharing_a_peer_address_are_told_apart() -> None:
    assert parse_event(AUTO) == PeerEvent("fe80::1", PeerState.UP, "", "fe80::23:34ff:feec:8fce")


def test_the_open_gives_the_peer_as_four_octet_when_it_has_one() -> None:
    local = "fe80::788f:6fff:feeb:7f7d"
    assert parse_event(OPEN % (65101, 65101)) == PeerOpen("fe80::1", local, 65101)
    assert parse_event(OPEN % (23456, 4200000001)) == PeerOpen("fe80::1", local, 4200000001)
    without_capability = (OPEN % (65001, 0)).replace('"65": { "name": "asn4", "asn4": 0 }, ', "")
    assert parse_event(without_capability) == PeerOpen("fe80::1", local, 65001)
    assert parse_event((OPEN % (65101, 65101)).replace('"receive"', '"send"')) is None


def test_answers_and_the_ack_setting() -> None:
    assert [parse_answer(x) for x in ("done\n", "error", "reload in progress", "{}", "")] == [
        Answer.DONE,
        Answer.ERROR,
        Answer.RELOADING,
        None,
        None,
    ]
    assert acks_enabled({}) and acks_enabled({"exabgp.api.ack": "true"})
    assert not acks_enabled({"exabgp.api.ack": "false"})
    assert not acks_enabled({"exabgp_api_ack": "0"})


def test_a_hybrid_session_is_selected_by_its_local_address_too() -> None:
    link = Session(
        ipaddress.ip_address("fe80::1"),
        65001,
        None,
        (Family.IPV4, Family.IPV6),
        next_hop="fe80::a",
        interface="eth1",
        local_address=ipaddress.ip_address("fe80::a"),
    )
    assert link.name == "fe80::1%eth1"
    [line] = announce(link, Attributes(), ["10.0.0.1/32"])
    assert line.line == (
        "neighbor fe80::1 local-ip fe80::a announce attributes next-hop fe80::a nlri 10.0.0.1/32"
    )
    assert line.prefixes == ("10.0.0.1/32",) and line.session == link
    assert withdraw(link, ["10.0.0.1/32"])[0].line.startswith("neighbor fe80::1 local-ip fe80::a ")
    assert end_of_rib(link, Family.IPV6).line == (
        "neighbor fe80::1 local-ip fe80::a announce eor ipv6 unicast"
    )
    assert link.reports("fe80::1", "fe80::a") and link.reports("fe80::1", "")
    assert not link.reports("fe80::1", "fe80::b") and not link.reports("fe80::2", "fe80::a")
    # A numbered peer's address is unique in the config: it alone selects the neighbor.
    numbered = Session(
        ipaddress.ip_address("10.0.1.0"),
        65001,
        65101,
        (Family.IPV4,),
        local_address=ipaddress.ip_address("10.0.1.1"),
    )
    assert numbered.name == numbered.selector == "10.0.1.0"


def test_an_auto_peer_gets_what_is_right_for_either_kind_until_its_open_is_seen() -> None:
    rich = Attributes(local_preference=200, as_path_prepend=2)
    auto = Session(ipaddress.ip_address("fe80::1"), 65001, None, (Family.IPV4,), "fe80::a")
    # Local preference (ExaBGP drops it on eBGP itself), and no prepend of our AS (an iBGP
    # peer would discard the path as a loop).
    assert attribute_tokens(auto, rich) == "next-hop fe80::a local-preference 200"
    ebgp = Session(ipaddress.ip_address("fe80::1"), 65001, 65100, (Family.IPV4,), "fe80::a")
    assert attribute_tokens(ebgp, rich) == "next-hop fe80::a as-path [65001 65001 65001]"
    ibgp = Session(ipaddress.ip_address("fe80::1"), 65001, 65001, (Family.IPV4,), "fe80::a")
    assert attribute_tokens(ibgp, rich) == "next-hop fe80::a local-preference 200"


def test_shutdown_and_ignored_lines() -> None:
    assert parse_event('{"exabgp": "5", "type": "notification", "notification": "shutdown"}') == (
        Shutdown()
    )
    assert parse_event("done") is None
    assert parse_event('{"type": "update"}') is None
    assert parse_event("[1, 2]") is None


@given(st.text(max_size=300))
def test_never_raises_on_garbage(line: str) -> None:
    parse_event(line)
    parse_event("{" + line)
