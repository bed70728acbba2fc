"""Kubernetes label selectors in their string form: ``a=b, c!=d, e in (x,y), f notin (z), g, !h``.

The grammar follows ``k8s.io/apimachinery/pkg/labels``: requirements are ANDed; ``=`` and ``==``
are equality; ``!=`` and ``notin`` also match objects that lack the key; ``key`` and ``!key`` test
presence. An empty selector matches everything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_KEY_RE = re.compile(rf"^{_KEY}$")
_VALUE_RE = re.compile(rf"^{_VALUE}$")
_SET_RE = re.compile(r"^(?P<key>\S+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")
_BINARY_RE = re.compile(r"^(?P<key>[^=!\s]+)\s*(?P<op>==|=|!=)\s*(?P<value>\S*)$")


@dataclass(frozen=True, slots=True)
class Requirement:
    """One requirement of a selector: ``key`` compared with ``values`` by ``operator``."""

    key: str
    operator: str  # "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "exists":
            return self.key in labels
        if self.operator == "!exists":
            return self.key not in labels
        if self.operator == "in":
            return labels.get(self.key) in self.values
        return labels.get(self.key) not in self.values  # notin


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A parsed selector; ``matches(labels)`` is true when every requirement holds."""

    requirements: tuple[Requirement, ...] = ()
    text: str = ""

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(requirement.matches(labels) for requirement in self.requirements)


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced ')' in label selector {text!r}")
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth != 0:
        raise ValueError(f"unbalanced '(' in label selector {text!r}")
    parts.append("".join(current))
    return parts


def valid_key(key: str) -> bool:
    """Whether ``key`` is a label key (an optional DNS prefix and ``/``, then a name)."""
    return bool(_KEY_RE.match(key)) and len(key) <= 317


def valid_value(value: str) -> bool:
    """Whether ``value`` is a label value (empty, or up to 63 characters of the label set)."""
    return bool(_VALUE_RE.match(value)) and len(value) <= 63


def _check_key(key: str, text: str) -> str:
    if not valid_key(key):
        raise ValueError(f"{key!r} in label selector {text!r} is not a valid label key")
    return key


def _check_value(value: str, text: str) -> str:
    if not valid_value(value):
        raise ValueError(f"{value!r} in label selector {text!r} is not a valid label value")
    return value


def _parse_requirement(part: str, text: str) -> Requirement:
    if match := _SET_RE.match(part):
        values = [value.strip() for value in match["values"].split(",")]
        if not any(values):
            raise ValueError(f"{part!r} in label selector {text!r} has an empty value set")
        operator = match["op"]
        return Requirement(
            _check_key(match["key"], text),
            operator,
            frozenset(_check_value(value, text) for value in values),
        )
    if match := _BINARY_RE.match(part):
        operator = "notin" if match["op"] == "!=" else "in"
        return Requirement(
            _check_key(match["key"], text),
            operator,
            frozenset({_check_value(match["value"], text)}),
        )
    if part.startswith("!"):
        return Requirement(_check_key(part[1:].strip(), text), "!exists")
    return Requirement(_check_key(part, text), "exists")


def parse_selector(text: str) -> LabelSelector:
    """Parse a label selector string.

    Raises:
        ValueError: naming the requirement that is not valid selector syntax.
    """
    if not text.strip():
        return LabelSelector((), text)
    requirements = []
    for raw in _split_top_level(text):
        part = raw.strip()
        if not part:
            raise ValueError(f"empty requirement in label selector {text!r}")
        requirements.append(_parse_requirement(part, text))
    return LabelSelector(tuple(requirements), text)
