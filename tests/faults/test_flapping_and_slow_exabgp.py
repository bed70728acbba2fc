"""Health flapping (one endpoint toggling ready every 100 ms) and a stalled ExaBGP (SIGSTOP while
a thousand changes arrive): bounded UPDATEs, bounded memory, the watch never blocked, and the
exact set at the end."""

from __future__ import annotations

import itertools
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from lab.node import http_get, rss_mb
from tests.faults.conftest import SERVICES, Faulty, ip
from tests.integration.conftest import sample

FLAP_SECONDS = 6.0
RISE_SECONDS = 1.0  # services.healthHold.riseSeconds, the default
#: The agent stamps a withdraw's log line after writing it; the hold runs from just before.
LOG_SLACK = 0.25


def test_health_flapping_sends_bounded_updates(faulty: Faulty) -> None:
    """Whatever state the flapping Service ends in, the agent's own log shows the hold: every
    re-announcement came at least riseSeconds after the withdrawal before it (so at most one
    per riseSeconds), withdrawals and announcements alternate, and the last matches the end."""
    api = faulty.discovery
    flapping = f"{ip(10)}/32"
    sample(lambda: None, 1.0, 0.1)
    before = faulty.fabric.updates_received(faulty.fabric.NODE_V4)
    log_start = len(faulty.node.logs())
    toggles, ready = 0, True
    deadline = time.monotonic() + FLAP_SECONDS
    while time.monotonic() < deadline:
        ready = not ready
        faulty.set_ready(10, ready, api)
        toggles += 1
        time.sleep(0.1)
    updates = faulty.fabric.updates_received(faulty.fabric.NODE_V4) - before
    # At most one announcement (and so two UPDATEs) per riseSeconds for the flapping prefix.
    assert toggles >= 40
    assert updates <= 2 * FLAP_SECONDS / RISE_SECONDS + 2, (updates, toggles)
    sample(lambda: None, RISE_SECONDS + 0.5, 0.1)
    faulty.converged()

    changes = _route_changes(faulty.node.logs()[log_start:], flapping)
    kinds = [kind for _at, kind in changes]
    # The first flip to not ready withdrew at once; then withdraw and announce alternate.
    assert kinds and kinds[0] == "withdraw", changes
    assert all(a != b for a, b in itertools.pairwise(kinds)), kinds
    assert kinds[-1] == ("announce" if ready else "withdraw"), (ready, kinds)
    # The hold: each of the ~30 flips to ready came ~0.1 s after a flip away, so without it
    # each would be announced that soon after the withdrawal. With it, none comes sooner than
    # riseSeconds after (often none at all: every flip back was held, then dropped).
    gaps = [
        round(announced - withdrawn, 3)
        for (withdrawn, _), (announced, kind) in itertools.pairwise(changes)
        if kind == "announce"
    ]
    assert all(gap >= RISE_SECONDS - LOG_SLACK for gap in gaps), gaps


def _route_changes(logs: list[dict[str, Any]], prefix: str) -> list[tuple[float, str]]:
    """(when, ``announce`` | ``withdraw``) for each change of ``prefix`` the agent logged."""
    return [
        (datetime.fromisoformat(line["timestamp"]).timestamp(), line["event"])
        for line in logs
        if line.get("prefix") == prefix and line.get("event") in {"announce", "withdraw"}
    ]


def test_a_stalled_exabgp_blocks_neither_the_watch_nor_memory(faulty: Faulty) -> None:
    """Each change is a command line of ~80 bytes: a thousand of them fill the 64 KiB pipe, so
    the agent's write blocks while the watch goes on filling the cluster state."""
    agent, exabgp = faulty.node.agent_pid(), faulty.node.exabgp_pid()
    rss_before = rss_mb(agent)
    os.kill(exabgp, signal.SIGSTOP)
    try:
        changes = _flip_concurrently(faulty, 1000, seconds=6)
        blocked = _threads_writing_a_pipe(agent)
        code, body = http_get(faulty.fabric.node, "/healthz")
        assert code == 200, body  # the HTTP thread answers; the reconciler is within its limit
        rss_during = rss_mb(agent)
    finally:
        os.kill(exabgp, signal.SIGCONT)
    assert changes >= 500
    assert blocked, "the stall never reached the agent: nothing was blocked on the pipe"
    assert rss_during - rss_before < 15, (rss_before, rss_during)
    sample(lambda: None, RISE_SECONDS + 0.5, 0.1)
    faulty.converged(30)
    assert faulty.fabric.established(faulty.fabric.NODE_V4)  # under the 9 s hold time
    assert (faulty.node.agent_pid(), faulty.node.exabgp_pid()) == (agent, exabgp)


def _flip_concurrently(faulty: Faulty, count: int, seconds: float, threads: int = 8) -> int:
    """Flip readiness ``count`` times (each thread its own Services and API client); stop early
    after ``seconds``. Returns the number of changes made."""
    deadline = time.monotonic() + seconds

    def work(offset: int) -> int:
        api, made = faulty.discovery, 0
        mine = list(range(offset, SERVICES, threads))
        while made < count // threads and time.monotonic() < deadline:
            index = mine[made % len(mine)]
            faulty.set_ready(index, not faulty.ready[ip(index)], api)
            made += 1
        return made

    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(work, range(threads)))


def _threads_writing_a_pipe(pid: int) -> list[str]:
    """Threads of ``pid`` asleep in the kernel's pipe write path (the pipe to ExaBGP is full)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            wchan = (task / "wchan").read_text()
        except OSError:
            continue
        if "pipe" in wchan:
            found.append(f"{task.name}:{wchan}")
    return found
