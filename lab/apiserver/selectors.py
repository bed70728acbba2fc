"""Label and field selectors, as the lab API server filters lists and watches by them.

The label selector here is the lab's own, written from ``k8s.io/apimachinery/pkg/labels`` and
independent of cosmolet's parser (``cosmolet.engine.selector``): the lab exists to test cosmolet,
so a shared parser would let a bug pass on both sides unseen. ``tests/unit/test_lab_selectors.py``
checks the two agree.

Like apimachinery, a selector is lexed into tokens (identifiers and ``= == != ! ( ) ,``) and then
parsed requirement by requirement; requirements are ANDed:

- ``key=value``, ``key==value``: the label exists and equals the value;
- ``key!=value``: the label is absent or differs;
- ``key in (a,b)``: the label exists and is one of the values (``()`` is the empty value);
- ``key notin (a,b)``: the label is absent or none of the values;
- ``key``: the label exists; ``!key``: it does not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lab.apiserver.resources import JSON, ApiError

_WHITESPACE = " \t\r\n"
_SYMBOLS = "=!(),"
_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_IDENTIFIER = "identifier"
_END = "end of string"

# Operators of a requirement, and whether a missing label satisfies it.
_OPERATORS = {"=": False, "==": False, "!=": True, "in": False, "notin": True}


@dataclass(frozen=True)
class Requirement:
    """``key``, an operator (one of ``_OPERATORS``, or ``exists``/``!``) and its values."""

    key: str
    operator: str
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "exists":
            return self.key in labels
        if self.operator == "!":
            return self.key not in labels
        if self.key not in labels:
            return _OPERATORS[self.operator]
        inside = labels[self.key] in self.values
        return not inside if self.operator in ("!=", "notin") else inside


@dataclass(frozen=True)
class LabelSelector:
    """Requirements that must all hold; no requirements selects everything."""

    requirements: tuple[Requirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(requirement.matches(labels) for requirement in self.requirements)


def _lex(text: str) -> list[tuple[str, str]]:
    """(kind, literal) tokens: a symbol's kind is itself, anything else is an identifier."""
    tokens: list[tuple[str, str]] = []
    at = 0
    while at < len(text):
        char = text[at]
        if char in _WHITESPACE:
            at += 1
        elif text[at : at + 2] in ("==", "!="):
            tokens.append((text[at : at + 2], text[at : at + 2]))
            at += 2
        elif char in _SYMBOLS:
            tokens.append((char, char))
            at += 1
        else:
            end = at
            while end < len(text) and text[end] not in _WHITESPACE + _SYMBOLS:
                end += 1
            tokens.append((_IDENTIFIER, text[at:end]))
            at = end
    tokens.append((_END, ""))
    return tokens


def _check_key(key: str) -> str:
    """A qualified name: ``[dns-subdomain/]name``, the name at most 63 characters."""
    prefix, slash, name = key.rpartition("/")
    prefix_ok = not slash or (len(prefix) <= 253 and _DNS_SUBDOMAIN.match(prefix) is not None)
    if "/" in prefix or not prefix_ok or len(name) > 63 or not _NAME.match(name):
        raise ValueError(f"invalid label key {key!r}")
    return key


def _check_value(value: str) -> str:
    if len(value) > 63 or not _VALUE.match(value):
        raise ValueError(f"invalid label value {value!r}")
    return value


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _lex(text)
        self.at = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.at]

    def take(self, *expected: str) -> str:
        """The next token's literal, which must be of one of the ``expected`` kinds."""
        kind, literal = self.tokens[self.at]
        if kind not in expected:
            raise ValueError(f"found {literal or kind!r}, expected: {' or '.join(expected)}")
        self.at += 1
        return literal

    def selector(self) -> LabelSelector:
        requirements: list[Requirement] = []
        if self.peek()[0] == _END:
            return LabelSelector(())
        while True:
            requirements.append(self.requirement())
            if self.take(",", _END) == "":
                return LabelSelector(tuple(requirements))

    def requirement(self) -> Requirement:
        if self.peek()[0] == "!":
            self.take("!")
            return Requirement(_check_key(self.take(_IDENTIFIER)), "!")
        key = _check_key(self.take(_IDENTIFIER))
        kind, literal = self.peek()
        if kind in (",", _END):
            return Requirement(key, "exists")
        if kind == _IDENTIFIER and literal in ("in", "notin"):
            self.take(_IDENTIFIER)
            return Requirement(key, literal, self.value_set())
        operator = self.take("=", "==", "!=")
        value = "" if self.peek()[0] in (",", _END) else self.take(_IDENTIFIER)
        return Requirement(key, operator, frozenset({_check_value(value)}))

    def value_set(self) -> frozenset[str]:
        """``( v1, v2, ... )``; an empty entry is the empty value (``()`` too), as apimachinery."""
        self.take("(")
        values: set[str] = set()
        while True:
            empty = self.peek()[0] != _IDENTIFIER
            values.add("" if empty else _check_value(self.take(_IDENTIFIER)))
            if self.take(",", ")") == ")":
                return frozenset(values)


def parse_label_selector(text: str) -> LabelSelector:
    """Parse a ``labelSelector`` query parameter.

    Raises:
        ValueError: the text is not a valid selector (the server answers 400).
    """
    return _Parser(text).selector()


def parse_field_selector(text: str) -> list[tuple[str, str, str]]:
    """``fieldSelector``: ``path=value``, ``path==value``, ``path!=value``, comma-separated."""
    requirements = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        for op in ("!=", "==", "="):
            if op in part:
                key, value = part.split(op, 1)
                requirements.append((key.strip(), "!=" if op == "!=" else "=", value.strip()))
                break
        else:
            raise ApiError(400, "BadRequest", f"invalid field selector {part!r}")
    return requirements


def _field(obj: JSON, path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def matches(
    obj: JSON, label_selector: LabelSelector | None, fields: list[tuple[str, str, str]]
) -> bool:
    """Whether ``obj`` is selected by both its labels and its fields."""
    if label_selector is not None and not label_selector.matches(
        obj.get("metadata", {}).get("labels") or {}
    ):
        return False
    for key, op, value in fields:
        actual = _field(obj, key)
        if (actual == value) != (op == "="):
            return False
    return True
