"""Parsers for the BGP attribute values a user may write: communities, large communities, numbers.

They are shared by the config (site-wide defaults) and the route engine (per-Service annotations),
so that one grammar decides what may ever reach ExaBGP. Everything returned is in a canonical form
that contains only digits, colons and a few fixed keywords: the command writer never interpolates a
string a user typed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: Well-known communities (RFC 1997) that ExaBGP accepts by name.
WELL_KNOWN_COMMUNITIES = frozenset({"no-export", "no-advertise", "no-export-subconfed"})

_COMMUNITY = re.compile(r"^(\d{1,5}):(\d{1,5})$")
_LARGE_COMMUNITY = re.compile(r"^(\d{1,10}):(\d{1,10}):(\d{1,10})$")
_SEPARATORS = re.compile(r"[,\s]+")

MAX_U16 = 0xFFFF
MAX_U32 = 0xFFFFFFFF
MAX_AS_PATH_PREPEND = 10


def parse_community(text: str) -> str:
    """Return the canonical form of one standard community, ``ASN:VALUE`` or a well-known name.

    Raises:
        ValueError: naming what was expected, when ``text`` is not a community.
    """
    lowered = text.strip().lower()
    if lowered in WELL_KNOWN_COMMUNITIES:
        return lowered
    match = _COMMUNITY.match(lowered)
    if not match or int(match[1]) > MAX_U16 or int(match[2]) > MAX_U16:
        raise ValueError(
            f"{text!r} is not a community: expected ASN:VALUE with both parts 0-65535, "
            f"or one of {', '.join(sorted(WELL_KNOWN_COMMUNITIES))}"
        )
    return f"{int(match[1])}:{int(match[2])}"


def parse_large_community(text: str) -> str:
    """Return the canonical form of one large community (RFC 8092), ``ASN:DATA1:DATA2``.

    Raises:
        ValueError: naming what was expected, when ``text`` is not a large community.
    """
    match = _LARGE_COMMUNITY.match(text.strip())
    if not match or any(int(part) > MAX_U32 for part in match.groups()):
        raise ValueError(
            f"{text!r} is not a large community: expected ASN:DATA1:DATA2 with each part "
            "0-4294967295"
        )
    return ":".join(str(int(part)) for part in match.groups())


def split_list(text: str) -> list[str]:
    """Split an annotation value on commas and whitespace, dropping empty items."""
    return [item for item in _SEPARATORS.split(text) if item]


def parse_u32(text: str, what: str) -> int:
    """Parse a non-negative 32-bit integer such as a LOCAL_PREF or MED.

    Raises:
        ValueError: naming ``what`` and the expected range.
    """
    stripped = text.strip()
    if not stripped.isascii() or not stripped.isdigit() or int(stripped) > MAX_U32:
        raise ValueError(f"{what} {text!r} is not an integer 0-4294967295")
    return int(stripped)


def parse_prepend(text: str) -> int:
    """Parse an AS-path prepend count, 0 to MAX_AS_PATH_PREPEND.

    Raises:
        ValueError: naming the expected range.
    """
    stripped = text.strip()
    if not stripped.isascii() or not stripped.isdigit() or int(stripped) > MAX_AS_PATH_PREPEND:
        raise ValueError(f"as-path prepend {text!r} is not an integer 0-{MAX_AS_PATH_PREPEND}")
    return int(stripped)


def canonical_communities(communities: Iterable[str]) -> tuple[str, ...]:
    """Communities deduplicated, in numeric order: equal sets compare equal."""
    return tuple(sorted(set(communities), key=community_key))


def community_key(community: str) -> tuple[int, ...]:
    """Numeric order for ``A:B`` and ``A:B:C``; well-known names after numbers."""
    if community[0].isdigit():
        return (0, *(int(part) for part in community.split(":")))
    return (1, *(ord(char) for char in community))
