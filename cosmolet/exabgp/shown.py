"""ExaBGP's neighbors as it runs them, to check that a ``reload`` took (``cosmolet.agent.
peering``): the agent asks ``show neighbor configuration`` and reads the blocks back.

Not ``show neighbor json``: ExaBGP 5.0.15 builds it with ``int(neighbor['peer-as'])`` and fails
on every neighbor whose AS is ``auto``. The configuration dump is the neighbors of the
configuration in force (replaced only by a reload that was applied), one block per neighbor::

    neighbor 10.1.1.0 {
      description "bgp.peers[0] (interface eth1)";
      router-id 10.1.1.1;
      local-address 10.1.1.1;
      local-as 65001;
      peer-as None;
      hold-time 9;
      ...
    }

then ExaBGP's ``done`` (acks are on: ``cosmolet.exabgp.config.environment``), which ends it.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from cosmolet.exabgp.api import Command, CommandKind

SHOW_NEIGHBORS = Command("show neighbor configuration", CommandKind.SHOW)

_BLOCK = re.compile(r"^neighbor (\S+) \{$")
_FIELD = re.compile(r"^\s+(router-id|local-address|local-as|peer-as|hold-time) (\S+);$")


@dataclass(frozen=True, slots=True)
class ShownNeighbor:
    """One neighbor of the configuration in force: what tells one rendering from another."""

    peer: str
    local: str | None
    local_as: int | None
    peer_as: int | None  # None: ``auto``
    router_id: str | None
    hold_time: int | None


@dataclass(frozen=True, slots=True)
class NeighborsShown:
    """ExaBGP's answer to ``SHOW_NEIGHBORS``; ``complete`` false when it refused it."""

    neighbors: tuple[ShownNeighbor, ...]
    complete: bool = True


class NeighborBlocks:
    """Collects the blocks from the lines of ExaBGP's output (the stdin thread's)."""

    def __init__(self) -> None:
        self._found: list[ShownNeighbor] = []
        self._block: dict[str, str] | None = None

    def feed(self, line: str) -> bool:
        """Take ``line`` if it belongs to a block (then it is nothing else)."""
        line = line.rstrip("\n")
        if self._block is None:
            match = _BLOCK.match(line)
            if match is None:
                return False
            self._block = {"peer": match[1]}
            return True
        if line == "}":
            self._found.append(_neighbor(self._block))
            self._block = None
        elif match := _FIELD.match(line):
            self._block[match[1]] = match[2]
        return True

    def finish(self, complete: bool = True) -> NeighborsShown:
        """The blocks read since the last call (ExaBGP answered the command)."""
        shown = NeighborsShown(tuple(self._found), complete and self._block is None)
        self._found, self._block = [], None
        return shown


def _neighbor(block: dict[str, str]) -> ShownNeighbor:
    return ShownNeighbor(
        peer=_address(block["peer"]) or block["peer"],
        local=_address(block.get("local-address", "")),
        local_as=_number(block.get("local-as", "")),
        peer_as=_number(block.get("peer-as", "")),
        router_id=_address(block.get("router-id", "")),
        hold_time=_number(block.get("hold-time", "")),
    )


def _address(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _number(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() else None
