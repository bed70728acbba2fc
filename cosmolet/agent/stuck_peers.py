"""The ``peer not established`` warning: once per outage, for a session down a long while."""

from __future__ import annotations

from collections.abc import Mapping

from cosmolet import logs
from cosmolet.agent.speaker import PeerRib, SessionState

log = logs.get("cosmolet.agent")


class StuckPeers:
    """Remembers which peers it warned about, so an outage is one line, not one a second."""

    def __init__(self, hold_time: int, started: float) -> None:
        self.threshold = max(15.0, 2.0 * hold_time)
        self.started = started
        self.warned: set[str] = set()

    def check(self, peers: Mapping[str, PeerRib], now: float) -> None:
        for name, rib in list(peers.items()):
            if rib.state is SessionState.UP:
                self.warned.discard(name)
                continue
            since = rib.since or self.started
            if now - since >= self.threshold and name not in self.warned:
                self.warned.add(name)
                origin = rib.session.origin or name
                entry = origin.partition(" ")[0]  # "bgp.peers[0]" of "bgp.peers[0] (...)"
                log.warning(
                    "peer not established",
                    peer=name,
                    seconds=round(now - since),
                    hint=f"check {origin}: address and asn, that the peer has us configured and "
                    f"is reachable, and the TCP MD5 password ({entry}.passwordFile) on both sides",
                )
