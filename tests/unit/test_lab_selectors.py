"""The lab API server's label selectors against cosmolet's: two independent implementations.

The lab server filters by its own parser (``lab.apiserver.selectors``) so that it can test
cosmolet's (``cosmolet.engine.selector``) rather than echo it. Here both read the same table of
selectors: they must accept and reject the same ones and select the same label sets.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from cosmolet.engine.selector import parse_selector
from lab.apiserver.selectors import parse_label_selector

LABEL_SETS: list[dict[str, str]] = [
    {},
    {"app": "web"},
    {"app": "db"},
    {"app": "web", "tier": "front"},
    {"app": "web", "tier": "back", "example.com/pool": "blue"},
    {"tier": "front", "example.com/pool": "green"},
    {"app": "", "tier": "front"},
    {"in": "notin"},
    {"a.b-c_d": "x.y-z_0"},
]

VALID = [
    "",
    "   ",
    "app",
    "!app",
    "! app",
    "app=web",
    "app==web",
    "app = web",
    "app!=web",
    "app=",
    "app!=",
    "app in (web,db)",
    "app in(web)",
    "app notin (web)",
    "app notin (web,db)",
    "app in (web,)",
    "tier in ( front , back )",
    "app=web,tier=front",
    "app=web, !tier",
    "app, tier!=back, example.com/pool notin (green)",
    "example.com/pool in (blue,green),app",
    "example.com/pool",
    "!example.com/pool",
    "in=notin",
    "in in (notin)",
    "app=web,app!=db",
    "a.b-c_d=x.y-z_0",
]

INVALID = [
    ",",
    "app,",
    ",app",
    "app,,tier",
    "app web",
    "app=web=db",
    "app=web tier",
    "app in web",
    "app in (web",
    "app in (web db)",
    "app notin web)",
    "app in ((web))",
    "app (web)",
    "!app=web",
    "!",
    "=web",
    "app===web",
    "app=-web",
    "app=web-",
    "-app",
    "app-",
    "/app",
    "app/",
    "app=" + "v" * 64,
    "app in (" + "v" * 64 + ")",
]


@pytest.mark.parametrize("text", VALID)
def test_both_parsers_select_the_same_label_sets(text: str) -> None:
    lab, cosmolet = parse_label_selector(text), parse_selector(text)
    for labels in LABEL_SETS:
        assert lab.matches(labels) == cosmolet.matches(labels), (text, labels)


@pytest.mark.parametrize("text", INVALID)
def test_both_parsers_reject_the_same_selectors(text: str) -> None:
    with pytest.raises(ValueError):
        parse_label_selector(text)
    with pytest.raises(ValueError):
        parse_selector(text)


def test_the_table_is_not_trivial() -> None:
    """Each selector must tell some label sets apart, or agreement would prove nothing."""
    for text in VALID:
        if not text.strip():
            continue
        results = {parse_label_selector(text).matches(labels) for labels in LABEL_SETS}
        assert results == {True, False}, text


def test_the_lab_follows_apimachinery_where_it_is_lenient() -> None:
    """``()`` and an empty entry are the empty value in apimachinery's parser (not an error)."""
    empty = parse_label_selector("app in ()")
    assert empty.matches({"app": ""}) and not empty.matches({}) and not empty.matches({"app": "x"})
    trailing = parse_label_selector("app in (web,)")
    assert trailing.matches({"app": ""}) and trailing.matches({"app": "web"})


def test_the_lab_server_does_not_import_cosmolet() -> None:
    code = (
        "import sys, lab.apiserver\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'cosmolet'))"
    )
    imported = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert imported.strip() == "[]"
