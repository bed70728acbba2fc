"""``host_prefix`` reads a canonical dotted quad itself: the same answers (prefix, sort key,
refusal and its message) as the ``ipaddress`` path it replaces, on every IPv4 address and on the
forms ``ipaddress`` refuses or canonicalises."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cosmolet.engine.rules import _parsed_prefix, host_prefix

ODD = [
    "010.0.0.1",
    "10.0.0.01",
    "1.2.3",
    "1.2.3.4.5",
    "256.1.1.1",
    "1.2.3.4 ",
    " 1.2.3.4",
    "+1.2.3.4",
    "1.2.3.-4",
    "1..3.4",
    "\u0661.2.3.4",  # an Arabic-Indic digit: str.isdigit says yes, ipaddress says no
    "1.2.3.1000",
    "0.0.0.0",
    "127.0.0.1",
    "224.0.0.1",
    "239.255.255.255",
    "169.254.1.1",
    "255.255.255.255",
    "0.1.2.3",
    "100.64.0.1",
    "10.96.0.1",
    "",
    "fd00::1",
    "::ffff:10.0.0.1",
]


def _answer(parse: object, text: str) -> object:
    try:
        return parse(text)  # type: ignore[operator]
    except ValueError as error:
        return ("refused", str(error))


@pytest.mark.parametrize("text", ODD)
def test_odd_forms_answer_as_ipaddress_does(text: str) -> None:
    assert _answer(host_prefix, text) == _answer(_parsed_prefix.__wrapped__, text)


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_every_ipv4_address_answers_as_ipaddress_does(value: int) -> None:
    text = str(ipaddress.IPv4Address(value))
    assert _answer(host_prefix, text) == _answer(_parsed_prefix.__wrapped__, text)
