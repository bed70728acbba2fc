"""ExaBGP API lines and events."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cosmolet.engine.model import Attributes, Family
from cosmolet.exabgp.api import (
    PeerEvent,
    PeerState,
    Session,
    Shutdown,
    UnsafeCommand,
    announce,
    checked,
    parse_event,
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
    assert parse_event(STATE % ("up", "")) == PeerEvent("10.0.1.0", PeerState.UP)
    assert parse_event(STATE % ("down", ', "reason": "peer reset"')) == PeerEvent(
        "10.0.1.0", PeerState.DOWN, "peer reset"
    )
    # ExaBGP does not escape the reason: a quote in it breaks the JSON, the state survives.
    broken = STATE % ("down", ', "reason": "notification "bad" received"')
    assert parse_event(broken) == PeerEvent("10.0.1.0", PeerState.DOWN)


def test_peer_addresses_are_canonical() -> None:
    line = (STATE % ("up", "")).replace('"10.0.1.0"', '"FD00:1:0::"')
    assert parse_event(line) == PeerEvent("fd00:1::", PeerState.UP)


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
