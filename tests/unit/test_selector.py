"""Label selectors in Kubernetes string syntax."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cosmolet.engine.selector import parse_selector

LABELS = {"app": "web", "tier": "frontend", "env": "prod"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("", True),
        ("app=web", True),
        ("app==web", True),
        ("app=api", False),
        ("app!=api", True),
        ("missing!=x", True),
        ("app in (web, api)", True),
        ("app in (api)", False),
        ("app notin (api,db)", True),
        ("missing notin (x)", True),
        ("app notin (web)", False),
        ("tier", True),
        ("missing", False),
        ("!missing", True),
        ("!tier", False),
        ("app=web,tier=frontend,!legacy", True),
        ("app=web, tier=backend", False),
        ("example.com/team in (a,b)", False),
    ],
)
def test_matches(selector: str, matches: bool) -> None:
    assert parse_selector(selector).matches(LABELS) is matches


@pytest.mark.parametrize(
    "selector",
    ["app in (web", "app in ()", "a=b,,c=d", "a b", "-bad=x", "a=b=c", "a in web"],
)
def test_rejects_bad_syntax(selector: str) -> None:
    with pytest.raises(ValueError, match="label selector"):
        parse_selector(selector)


def test_none_labels_match_only_negative_requirements() -> None:
    assert parse_selector("!a,b notin (c)").matches(None)
    assert not parse_selector("a").matches(None)


@given(st.text(max_size=40))
def test_never_raises_anything_but_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        parse_selector(text)
