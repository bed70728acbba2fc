"""``bgp.bfd.enabled``: keep FRR bfdd's peers equal to this node's BGP sessions.

ExaBGP has no BFD. bfdd runs beside zebra in the FRR sidecar (both modes), and the agent, which
alone knows the sessions (hybrid mode: the switches' link-local addresses; numbered mode: the
peers resolved for this node), adds and removes one ``peer`` per session through ``vtysh``
(from a thread of its own: a slow vtysh must not hold the reconciler). The switch's ``neighbor
... bfd`` then drops the BGP session within ``minRxMs`` x ``multiplier`` of the node falling
silent, instead of the hold time. A peer is named by its address, and its interface and our
address where known (a numbered peer configured by address alone may have neither).

bfdd keeps its peers only in memory: restarted (sidecar restart, crash), it comes back with the
profile of ``frr.conf`` and no peer, and nothing would tell the agent. So while bfdd should have
peers, the worker asks it for them (``show bfd peers json``, at most once every 5 s, some 25 ms)
and re-adds the whole set when some are missing (re-adding a present peer is a silent no-op in
FRR 8.4: checked).
"""

from __future__ import annotations

import ipaddress
import subprocess
import threading
import time
from collections.abc import Callable, Iterable

from cosmolet import logs
from cosmolet.config.schema import Config
from cosmolet.engine.model import Link
from cosmolet.hybrid.bfd_state import BfdReader, BfdSession
from cosmolet.hybrid.frr_config import BFD_PROFILE, peer_line

log = logs.get("cosmolet.hybrid.bfd")

#: How often, at most, the worker asks bfdd whether it still has its peers (and retries).
CHECK_SECONDS = 5.0


def profile_commands(config: Config) -> list[str]:
    bfd = config.bgp.bfd
    return [
        "configure terminal",
        "bfd",
        f"profile {BFD_PROFILE}",
        f"receive-interval {bfd.min_rx_ms}",
        f"transmit-interval {bfd.min_tx_ms}",
        f"detect-multiplier {bfd.multiplier}",
    ]


def peer_commands(config: Config, added: Iterable[Link], removed: Iterable[Link]) -> list[str]:
    """vtysh commands that turn bfdd's peers from ``removed`` to ``added`` (profile first)."""
    commands = [*profile_commands(config), "exit"]
    for link in sorted(removed):
        commands.append(f"no {peer_line(link)}")
    for link in sorted(added):
        commands += [peer_line(link), f"profile {BFD_PROFILE}", "exit"]
    return commands


def apply(config: Config, added: set[Link], removed: set[Link]) -> bool:
    """Run the commands through vtysh; log (never raise) when it fails."""
    if not added and not removed:
        return True
    args = ["vtysh", "--vty_socket", str(config.bgp.bfd.vtysh_socket_dir)]
    for command in peer_commands(config, added, removed):
        args += ["-c", command]
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        log.error("cannot configure bfdd through vtysh", error=str(error))
        return False
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0 or "% " in output:
        log.error("vtysh refused the BFD peers", output=output[:500], code=result.returncode)
        return False
    log.info("BFD peers updated", added=[x.peer for x in added], removed=[x.peer for x in removed])
    return True


def lost(applied: Iterable[Link], sessions: Iterable[BfdSession]) -> set[Link]:
    """The peers the agent added that bfdd no longer has (a restarted bfdd has none), matched
    by interface and address (bfdd prints an address in its own spelling)."""
    present = {(session.interface, session.peer) for session in sessions}
    return {
        link
        for link in applied
        if (link.interface, str(ipaddress.ip_address(link.peer))) not in present
    }


class BfdSync:
    """Makes bfdd's peers follow the latest set of links, from one worker thread, in order;
    a failed attempt is retried every 5 s, and bfdd is checked every 5 s for peers it lost."""

    def __init__(
        self,
        config: Config,
        read: Callable[[], list[BfdSession] | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.read = read or BfdReader(config.bgp.bfd.vtysh_socket_dir)
        self.clock = clock
        self.checked = clock()
        self.losing = False  # bfdd found short of peers and not yet seen whole: log once
        self.applied: set[Link] = set()
        self.wanted: set[Link] = set()
        self.lock = threading.Lock()
        self.wakeup = threading.Event()

    def update(self, links: Iterable[Link]) -> None:
        with self.lock:
            self.wanted = set(links)
        self.wakeup.set()

    def step(self) -> None:
        """Apply the changes of the wanted set; else, once every 5 s, re-add every peer if bfdd
        lost some (``None`` from the reader: bfdd not answering, so nothing to re-add yet)."""
        with self.lock:
            wanted = set(self.wanted)
        if wanted != self.applied:
            if apply(self.config, wanted - self.applied, self.applied - wanted):
                self.applied = wanted
            return
        now = self.clock()
        if now - self.checked < CHECK_SECONDS:
            return
        self.checked = now
        if not self.applied:
            return
        sessions = self.read()
        if sessions is None:
            return
        missing = lost(self.applied, sessions)
        if missing and not self.losing:
            log.warning(
                f"bfdd lost its peers (restarted?): re-adding {len(self.applied)}",
                missing=sorted(link.peer for link in missing),
            )
        self.losing = bool(missing) and not apply(self.config, self.applied, set())

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            due = self.checked + CHECK_SECONDS - self.clock()
            self.wakeup.wait(min(CHECK_SECONDS, max(0.05, due)))
            self.wakeup.clear()
            self.step()
