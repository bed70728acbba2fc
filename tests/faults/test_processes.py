"""Process and peer faults, with the leaf's FIB sampled every few ms throughout: kill -9 of the
agent, kill -9 of ExaBGP (the pod's restart, under graceful restart), the FRR peer restarted,
and the node's link flapped 20 times in 10 s."""

from __future__ import annotations

import os
import signal

from lab.netns import wait_for
from tests.faults.conftest import Faulty
from tests.integration.conftest import sample


def _missing(samples: list[set[str]], expected: set[str]) -> list[set[str]]:
    return [expected - fib for fib in samples if not expected <= fib]


def test_kill_9_of_the_agent_loses_no_route(faulty: Faulty) -> None:
    expected = faulty.expected()
    agent = faulty.node.agent_pid()
    exabgp = faulty.node.exabgp_pid()
    before = faulty.fabric.updates_received(faulty.fabric.NODE_V4)
    os.kill(agent, signal.SIGKILL)
    samples = sample(faulty.leaf_fib, 5, 0.005)
    assert not _missing(samples, expected)
    # ExaBGP respawned its API process; the new agent re-asserted from its journal.
    wait_for(lambda: faulty.node.agent_pid() != agent, 10)
    assert faulty.node.exabgp_pid() == exabgp
    faulty.converged()
    assert set(faulty.fabric.rib()) == expected
    # A change after the respawn still flows.
    faulty.set_ready(0, False)
    faulty.converged()
    assert faulty.fabric.updates_received(faulty.fabric.NODE_V4) > before


def test_kill_9_of_exabgp_then_the_pod_restarts_loses_no_route(faulty: Faulty) -> None:
    """The container dies with ExaBGP (``cosmolet start`` exits), the agent follows (its stdin
    closed), and a new ``cosmolet start`` comes up; graceful restart keeps the routes at the
    leaf meanwhile."""
    expected = faulty.expected()
    agent, exabgp = faulty.node.agent_pid(), faulty.node.exabgp_pid()
    os.kill(exabgp, signal.SIGKILL)
    assert faulty.node.process is not None
    assert faulty.node.process.wait(10) != 0  # the container's main process exits
    faulty.node.process = None
    wait_for(lambda: not os.path.exists(f"/proc/{agent}"), 10, what="the orphaned agent to exit")
    samples = sample(faulty.leaf_fib, 2, 0.005)  # the kubelet's restart delay
    faulty.node.start()
    samples += sample(faulty.leaf_fib, 8, 0.005)
    assert not _missing(samples, expected)
    wait_for(lambda: faulty.fabric.established(faulty.fabric.NODE_V4), 30)
    faulty.converged()


def test_frr_peer_restart_ends_on_the_exact_set(faulty: Faulty) -> None:
    agent = faulty.node.agent_pid()
    faulty.set_ready(1, False)
    faulty.converged()
    faulty.fabric.frr.restart("bgpd")
    faulty.set_ready(2, False)  # a change while the peer is away
    wait_for(lambda: faulty.fabric.established(faulty.fabric.NODE_V4), 40)
    faulty.converged(40)
    assert faulty.node.agent_pid() == agent  # no crash, no respawn


def test_link_flapping_20_times_in_10_s(faulty: Faulty) -> None:
    agent, exabgp = faulty.node.agent_pid(), faulty.node.exabgp_pid()
    leaf, link = faulty.fabric.leaf, "eth1"  # the leaf's end of node1's link
    for flap in range(20):
        leaf.ip("link", "set", "dev", link, "down")
        sample(lambda: None, 0.25, 0.05)
        leaf.ip("link", "set", "dev", link, "up")
        if flap == 10:
            faulty.set_ready(3, False)  # a change in the middle of it
        sample(lambda: None, 0.25, 0.05)
    wait_for(lambda: faulty.fabric.established(faulty.fabric.NODE_V4), 60)
    faulty.converged(40)
    assert (faulty.node.agent_pid(), faulty.node.exabgp_pid()) == (agent, exabgp)
    errors = [line for line in faulty.node.logs() if line.get("level") in ("error", "critical")]
    assert not errors, errors[:3]
