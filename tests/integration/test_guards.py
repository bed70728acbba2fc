"""The data-plane gate and the mass-withdraw brake end to end: `cosmolet start` -> real ExaBGP ->
a real FRR leaf, read from the leaf's RIB over time. The gate probes a stand-in kube-proxy
health endpoint in the node's namespace (``lab.proxy_health``) that the test turns healthy or
not, or stops."""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

import yaml

from lab.netns import wait_for
from lab.node import http_get
from lab.numbered import NumberedFabric
from lab.proxy_health import ProxyHealth
from tests.integration.conftest import sample
from tests.integration.test_ops import metric
from tests.integration.test_speaker_numbered import healthy

INTERVAL, FAIL_AFTER = 0.5, 3.0
GATE = {
    "url": "http://127.0.0.1:10256/healthz",
    "intervalSeconds": INTERVAL,
    "failAfterSeconds": FAIL_AFTER,
}
IPS = [f"10.96.1.{i}" for i in range(1, 11)]
ALL = {f"{ip}/32" for ip in IPS}


def services(healthy_ips: list[str]) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for ip in IPS:
        objects += healthy("s" + ip.replace(".", "-"), ip, ready=ip in healthy_ips)
    return objects


def until_rib(fabric: NumberedFabric, expected: set[str], timeout: float) -> float:
    """Seconds until the leaf's IPv4 RIB is ``expected`` (sampled every 50 ms)."""
    started = time.monotonic()
    wait_for(lambda: set(fabric.rib()) == expected, timeout, 0.05, what=f"RIB {len(expected)}")
    return time.monotonic() - started


def start_gated(fabric: NumberedFabric) -> Any:
    """node1's cosmolet with the gate on the stand-in proxy, three healthy Services, started."""
    node = fabric.cosmolet()
    node.config["node"] = {"dataplaneGate": GATE}
    node.config_path.write_text(yaml.safe_dump(node.config))
    node.set_objects(services(IPS[:3]))
    node.start()
    return node


def test_the_gate_holds_routes_until_it_passes_and_withdraws_when_it_fails(
    fabric: NumberedFabric,
) -> None:
    proxy = ProxyHealth(fabric.node, fabric.lab.workdir / "proxy").start(healthy=False)
    start_gated(fabric)
    wait_for(lambda: fabric.established(fabric.NODE_V4), 30, what="session up")
    # The session is up, the proxy answers 503: nothing reaches the leaf.
    assert all(not rib for rib in sample(fabric.rib, 4, 0.2))
    code, reason = http_get(fabric.node, "/readyz")
    assert code == 503 and "has not passed yet" in reason and "HTTP 503" in reason

    proxy.set(True)
    opened = until_rib(fabric, {f"{ip}/32" for ip in IPS[:3]}, 15)
    assert http_get(fabric.node, "/readyz")[0] == 200

    # Failing: the routes stay for failAfterSeconds, then all go.
    proxy.set(False)
    started = time.monotonic()
    kept = sample(lambda: len(fabric.rib()), FAIL_AFTER - 0.5, 0.1)
    assert set(kept) == {3}, kept
    until_rib(fabric, set(), 10)
    withdrawn = time.monotonic() - started
    assert withdrawn >= FAIL_AFTER
    status = json.loads(http_get(fabric.node, "/status")[1])
    assert status["dataplaneGate"]["state"] == "closed" and not status["ready"]
    assert metric(fabric.node, "cosmolet_dataplane_gate_open") == 0
    assert metric(fabric.node, "cosmolet_dataplane_gate_failures_total") >= 6

    # Recovery re-announces (through the flap hold: riseSeconds 1 by default, long past).
    proxy.set(True)
    reopened = until_rib(fabric, {f"{ip}/32" for ip in IPS[:3]}, 15)

    # kube-proxy gone (connection refused): the same, with a message that says so.
    proxy.stop()
    refused = until_rib(fabric, set(), 15)
    code, reason = http_get(fabric.node, "/readyz")
    assert code == 503 and "connection refused" in reason
    print(
        f"\ngate: opened->routes {opened:.2f} s; failing->withdrawn {withdrawn:.2f} s "
        f"(failAfterSeconds {FAIL_AFTER:g}, interval {INTERVAL:g}); "
        f"recovered->routes {reopened:.2f} s; stopped->withdrawn {refused:.2f} s"
    )
    assert withdrawn <= FAIL_AFTER + INTERVAL + 2
    assert refused <= FAIL_AFTER + INTERVAL + 3


def test_a_respawned_agent_withdraws_when_the_proxy_fails(fabric: NumberedFabric) -> None:
    """kill -9 of the agent while kube-proxy goes away: ExaBGP respawns it and keeps the old
    agent's routes; the new agent's gate starts as passed (its journal lists them), so
    failing for failAfterSeconds withdraws them (a gate left waiting kept them for ever)."""
    proxy = ProxyHealth(fabric.node, fabric.lab.workdir / "proxy").start(healthy=True)
    node = start_gated(fabric)
    until_rib(fabric, {f"{ip}/32" for ip in IPS[:3]}, 30)
    first = node.agent_pid()

    proxy.stop()
    os.kill(first, signal.SIGKILL)
    started = time.monotonic()
    wait_for(lambda: node.agent_pid() != first, 15, what="the respawned agent")
    until_rib(fabric, set(), FAIL_AFTER + 15)
    print(f"\nrespawned agent, proxy down: withdrawn {time.monotonic() - started:.2f} s after kill")
    status = json.loads(http_get(fabric.node, "/status")[1])
    assert status["dataplaneGate"]["state"] == "closed", status["dataplaneGate"]


def test_the_brake_holds_a_mass_withdrawal_then_lets_it_through(fabric: NumberedFabric) -> None:
    hold = 6.0
    brake = {"maxFraction": 0.5, "holdSeconds": hold, "minRoutes": 5}  # 8 withdrawals brake
    node = fabric.cosmolet(services={"withdrawBrake": brake})
    node.set_objects(services(IPS))
    node.start()
    until_rib(fabric, ALL, 30)

    # Most Services lose their endpoints, then recover within the hold: nothing is withdrawn.
    node.set_objects(services(IPS[:2]))
    wait_for(
        lambda: json.loads(http_get(fabric.node, "/status")[1])["withdrawBrake"]["engaged"],
        10,
        what="brake engaged",
    )
    assert all(len(rib) == 10 for rib in sample(fabric.rib, 2, 0.2))
    node.set_objects(services(IPS))
    assert all(len(rib) == 10 for rib in sample(fabric.rib, hold, 0.25))
    assert metric(fabric.node, "cosmolet_withdraw_brake_recovered_routes_total") == 8

    # Again, and this time the state still says so when the hold ends.
    node.set_objects(services(IPS[:2]))
    started = time.monotonic()
    wait_for(lambda: len(fabric.rib()) < 10, hold + 10, 0.1, what="the braked withdrawal")
    held_for = time.monotonic() - started
    until_rib(fabric, {f"{ip}/32" for ip in IPS[:2]}, 5)
    print(f"\nbrake: 8 of 10 withdrawals held {held_for:.2f} s (holdSeconds {hold:g})")
    assert hold - 0.5 <= held_for <= hold + 3
    assert metric(fabric.node, "cosmolet_withdraw_brake_engagements_total") == 2
    assert metric(fabric.node, "cosmolet_withdraw_brake_released_routes_total") == 8

    # Deleted Services are not braked: they go at once.
    node.set_objects(services(IPS[:2])[:0] + healthy("s10-96-1-1", IPS[0]))
    assert until_rib(fabric, {f"{IPS[0]}/32"}, 5) < 3
