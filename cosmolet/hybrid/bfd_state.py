"""Hybrid mode with ``bgp.bfd.enabled``: the state of bfdd's sessions, for the metrics.

bfdd runs in the FRR sidecar; ``vtysh -c "show bfd peers json"`` over the shared socket
directory answers in some 25 ms, so it is asked at scrape time (with a short timeout) rather
than polled: the answer is never staler than the scrape, and nothing runs between scrapes.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cosmolet import logs

log = logs.get("cosmolet.hybrid.bfd")

#: A scrape must not wait long on a stuck vtysh (Prometheus' default timeout is 10 s).
VTYSH_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class BfdSession:
    """One bfdd peer: the switch's address (as the BGP session names it) and its link."""

    peer: str
    interface: str
    up: bool


def parse_peers(text: str) -> list[BfdSession]:
    """Parse ``show bfd peers json`` (a list of peers, each with ``peer``, ``interface`` and
    ``status``: up, down, init or shutdown).

    Raises:
        ValueError: when the text is not that shape.
    """
    data = json.loads(text or "[]")
    if not isinstance(data, list):
        raise ValueError("expected a JSON list of peers")
    sessions = []
    for item in data:
        if not isinstance(item, dict) or not isinstance(item.get("peer"), str):
            raise ValueError(f"expected a peer object with a 'peer' address, got {item!r:.80}")
        sessions.append(
            BfdSession(
                peer=str(ipaddress.ip_address(item["peer"])),
                interface=str(item.get("interface") or ""),
                up=item.get("status") == "up",
            )
        )
    return sorted(sessions, key=lambda session: (session.interface, session.peer))


class BfdReader:
    """Asks bfdd for its sessions; ``None`` when it cannot, logged once per failing streak
    (a scrape every 15 s must not repeat the same warning forever)."""

    def __init__(self, vtysh_socket_dir: Path) -> None:
        self.args = ["vtysh", "--vty_socket", str(vtysh_socket_dir), "-c", "show bfd peers json"]
        self.failing = False

    def _ask(self) -> str:
        result = subprocess.run(
            self.args, capture_output=True, text=True, timeout=VTYSH_TIMEOUT_SECONDS, check=False
        )
        if result.returncode != 0:
            output = (result.stderr or result.stdout).strip()
            raise ValueError(f"vtysh exited {result.returncode}: {output[:300]}")
        return result.stdout

    def __call__(self) -> list[BfdSession] | None:
        try:
            sessions = parse_peers(self._ask())
        except (OSError, subprocess.TimeoutExpired, ValueError) as error:
            if not self.failing:
                log.warning("cannot read bfdd's sessions through vtysh", error=str(error))
            self.failing = True
            return None
        if self.failing:
            log.info("bfdd's sessions readable again")
        self.failing = False
        return sessions
