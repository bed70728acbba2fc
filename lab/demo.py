"""``make demo``: cosmolet on a real BGP fabric, narrated, with every step checked and timed.

Builds the reference fabric (``lab/fabric.py``: a spine, two leaves, two nodes in hybrid mode,
a client), creates Services through the lab API server with the official client, shows which
prefixes the spine and the leaves hold and via whom, then breaks things and measures how fast
the fabric follows. ``--numbered``: two racks, one numbered config for both nodes
(``lab/demo_racks.py``); ``--ipv6-only``: nodes without any IPv4 address, the chart with
``ci/ipv6-only-values.yaml`` (``lab/demo_ipv6.py``). The hybrid nodes run the Helm chart's pod
(``lab.chart``: ``helm template`` with the lab's values, the lab API server over TLS with the
chart's RBAC);
``--processes`` runs cosmolet and zebra as plain processes instead. Exits 0 only if every
check passed; everything it made is removed on exit, Ctrl-C and failure.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client, config

from lab import chart, ucmp
from lab import fabric as lab_fabric
from lab.fabric import Fabric
from lab.kube_client import put_endpoints
from lab.netns import wait_for
from lab.pod import PodRunner

V4, DUAL4, DUAL6, LB, FORBIDDEN = (
    "10.96.0.10",
    "10.96.0.11",
    "fd00:96::11",
    "198.51.100.10",
    ("192.0.2.66"),
)
PREFIXES = [V4, DUAL4, DUAL6, LB, FORBIDDEN]
SPINE_PORTS = {"eth1": "leaf1", "eth2": "leaf2"}
LEAF_PORTS = {"eth1": "node1", "eth2": "node2"}


class Story:
    """What every demo story needs: narration, checks, timings, and the API server."""

    def __init__(self, kubeconfig: Path) -> None:
        api = config.new_client_from_config(config_file=str(kubeconfig))
        self.core = client.CoreV1Api(api)
        self.discovery = client.DiscoveryV1Api(api)
        self.failures: list[str] = []
        self.started = time.monotonic()

    # --- narration ----------------------------------------------------------------------------

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:5.1f}s] {text}", flush=True)

    def check(self, ok: bool, text: str) -> None:
        print(f"          {'ok  ' if ok else 'FAIL'} {text}", flush=True)
        if not ok:
            self.failures.append(text)

    def timed(self, what: str, predicate: Callable[[], bool], timeout: float = 20) -> float | None:
        started = time.monotonic()
        try:
            wait_for(predicate, timeout, 0.01, what)
        except TimeoutError:
            self.check(False, f"{what} (not within {timeout:.0f} s)")
            return None
        took = time.monotonic() - started
        self.check(True, f"{what}: {took * 1000:.0f} ms")
        return took

    # --- Kubernetes ---------------------------------------------------------------------------

    def service(self, name: str, ips: list[str], **spec: Any) -> None:
        body = {
            "metadata": {"name": name},
            "spec": {"clusterIP": ips[0], "clusterIPs": ips, **spec},
        }
        self.core.create_namespaced_service("default", body)

    def create_services(self) -> None:
        """Both demos' Services: a ClusterIP on both nodes, a dual-stack one, a LoadBalancer
        with externalTrafficPolicy Local on node1, and one whose external IP is outside the
        allowlist."""
        self.say("creating Services with the official kubernetes client")
        self.service("web", [V4])
        self.endpoints("web", "node1", "node2")
        self.service("dual", [DUAL4, DUAL6], ipFamilyPolicy="RequireDualStack")
        self.endpoints("dual", "node1", "node2", ipv6=True)
        self.service("local", ["10.96.0.12"], type="LoadBalancer", externalTrafficPolicy="Local")
        self.core.patch_namespaced_service_status(
            "local", "default", {"status": {"loadBalancer": {"ingress": [{"ip": LB}]}}}
        )
        self.endpoints("local", "node1")
        self.service("forbidden", ["10.96.0.13"], externalIPs=[FORBIDDEN])
        self.endpoints("forbidden", "node1", "node2")

    def endpoints(self, name: str, *ready_on: str, ready: bool = True, ipv6: bool = False) -> None:
        """The Service's endpoints: an IPv4 slice, and an IPv6 one for a dual-stack Service
        (each address family is healthy from its own slices, as kube-proxy decides)."""
        families = [("IPv4", "10.244.{}.5", "-1")] + ([("IPv6", "fd00:244:{}::5", "-v6")] * ipv6)
        for family, address, suffix in families:
            endpoints = [
                {"addresses": [address.format(i)], "nodeName": node, "conditions": {"ready": ready}}
                for i, node in enumerate(ready_on, 1)
            ]
            put_endpoints(self.discovery, name, endpoints, f"{name}{suffix}", address_type=family)

    def watch(self, bad: Callable[[], bool], seconds: float) -> bool:
        """Sample ``bad`` every 20 ms for ``seconds``; True if it was ever true."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if bad():
                return True
            time.sleep(0.02)
        return False

    def verdict(self) -> int:
        total = time.monotonic() - self.started
        if self.failures:
            self.say(f"{len(self.failures)} check(s) FAILED in {total:.0f} s: {self.failures}")
            return 1
        self.say(f"every check passed in {total:.0f} s; tearing the fabric down")
        return 0


class Demo(Story):
    """The hybrid story, on the reference fabric (``lab.fabric``)."""

    def __init__(self, fabric: Fabric, pods: list[PodRunner] | None = None) -> None:
        """``pods``: each node's chart pod (``lab.chart``); without them, the nodes run cosmolet
        as processes (``fabric.agents``)."""
        assert fabric.kubeconfig is not None
        super().__init__(fabric.kubeconfig)
        self.fabric = fabric
        self.pods = pods

    def where(self, prefix: str) -> dict[str, list[str]]:
        """Who holds ``prefix`` and via whom: spine -> leaves, leaves -> nodes."""
        f = self.fabric
        return {
            "spine": [SPINE_PORTS.get(p, p) for p in f.paths("spine", prefix)],
            "leaf1": [LEAF_PORTS.get(p, p) for p in f.paths("leaf1", prefix)],
            "leaf2": [LEAF_PORTS.get(p, p) for p in f.paths("leaf2", prefix)],
        }

    def table(self) -> None:
        print(f"          {'prefix':<16} {'spine via':<14} {'leaf1 via':<14} {'leaf2 via':<14}")
        for prefix in PREFIXES:
            held = self.where(prefix)
            cells = [",".join(held[r]) or "-" for r in ("spine", "leaf1", "leaf2")]
            print(f"          {prefix:<16} {cells[0]:<14} {cells[1]:<14} {cells[2]:<14}")

    # --- the story ----------------------------------------------------------------------------

    def run(self) -> int:
        f = self.fabric
        kind = "hybrid: BGP unnumbered" if f.mode == "hybrid" else "numbered: /31 and /127"
        self.say(f"fabric built: spine, leaf1, leaf2, node1, node2 ({kind}), client")
        if self.pods is not None:
            self.say("each node runs the Helm chart's pod: frr-config, cosmolet, frr (sidecar)")
        took = lab_fabric.wait_established(f)
        self.check(True, f"every leaf has its spine and both nodes established ({took:.1f} s)")
        for index, pod in enumerate(self.pods or [], 1):
            ready = pod.wait_ready(60)  # the readiness probe, polled as the kubelet does
            self.check(True, f"node{index}'s pod Ready {ready:.1f} s after its creation")

        self.create_services()

        everywhere = {
            "spine": ["leaf1", "leaf2"],
            "leaf1": ["node1", "node2"],
            "leaf2": ["node1", "node2"],
        }
        self.timed(
            "web, dual (v4 and v6) on both nodes, both leaves, the spine (ECMP)",
            lambda: all(self.where(p) == everywhere for p in (V4, DUAL4, DUAL6)),
        )
        self.timed(
            "the externalTrafficPolicy Local LB IP only via node1",
            lambda: (
                self.where(LB)
                == {"spine": ["leaf1", "leaf2"], "leaf1": ["node1"], "leaf2": ["node1"]}
            ),
        )
        self.table()
        self.check(
            not any(self.where(FORBIDDEN).values()),
            f"the external IP {FORBIDDEN} (outside the allowlist) is nowhere",
        )
        for address in (V4, DUAL6, LB):
            self.check(f.ping(address), f"client pings {address} through spine, leaf, node")

        self.say("web's endpoints go unready")
        self.endpoints("web", "node1", "node2", ready=False)
        self.timed("10.96.0.10 withdrawn from the spine", lambda: not self.where(V4)["spine"])
        self.say("web's endpoints are ready again (held 1 s first: services.healthHold)")
        self.endpoints("web", "node1", "node2")
        self.timed(
            "10.96.0.10 back on the spine via both leaves",
            lambda: self.where(V4)["spine"] == ["leaf1", "leaf2"],
        )

        self.say("node1's agent is killed (kill -9): ExaBGP respawns it")
        old = self.agent_pid()
        os.kill(old, signal.SIGKILL)
        lost = self.watch(lambda: self.where(DUAL4) != everywhere, 3.0)
        self.check(self.agent_pid() != old, "a new agent runs on node1")
        self.check(not lost, "no route left the fabric while it restarted (sampled for 3 s)")

        if self.pods is not None:
            self.gate()

        self.say("node1's link to leaf1 goes down")
        f.nodes[0].ip("link", "set", "dev", "eth1", "down")
        self.timed(
            "leaf1 reaches the services via node2 only",
            lambda: self.where(V4)["leaf1"] == ["node2"],
        )
        self.check(self.where(V4)["spine"] == ["leaf1", "leaf2"], "the spine still has both leaves")
        self.check(f.ping(V4), f"client still pings {V4}")
        f.nodes[0].ip("link", "set", "dev", "eth1", "up")
        self.timed(
            "the link is back: leaf1 has node1 again (IPv4 and IPv6)",
            lambda: all(self.where(p)["leaf1"] == ["node1", "node2"] for p in (V4, DUAL6)),
            timeout=30,
        )

        self.say("the Local service's endpoint moves from node1 to node2")
        self.endpoints("local", "node2")
        self.timed(
            "the LB IP follows it to node2",
            lambda: self.where(LB)["leaf1"] == ["node2"] and self.where(LB)["leaf2"] == ["node2"],
        )
        self.table()
        self.check(not any(self.where(FORBIDDEN).values()), f"{FORBIDDEN} never appeared")
        for address in (V4, DUAL6, LB):
            self.check(f.ping(address), f"client pings {address}")

        self.say("the Local service scales: 3 endpoints on node1, 1 on node2 (weighted ECMP)")
        self.endpoints("local", "node1", "node1", "node1", "node2")
        self.timed(
            "both leaves weight the LB IP 75/25 (link bandwidth 3:1; node1 back after its hold)",
            lambda: all(self.weights(leaf, LB) == {"node1": 75, "node2": 25} for leaf in (1, 2)),
        )
        for leaf in (1, 2):
            print(f"          leaf{leaf} FIB {LB}: {ucmp.describe(self.weights(leaf, LB))}")
        self.check(
            self.weights(1, V4) == {"node1": 1, "node2": 1},
            f"web ({V4}, Cluster policy) stays plain ECMP: weight 1 each",
        )
        return self.verdict()

    def weights(self, leaf: int, prefix: str) -> dict[str, int]:
        """A leaf's kernel next-hop weights for ``prefix``, by node."""
        found = ucmp.fib_weights(self.fabric.leaves[leaf - 1], prefix)
        return {LEAF_PORTS.get(dev, dev): weight for dev, weight in found.items()}

    def gate(self) -> None:
        """The chart's data-plane gate: node1's kube-proxy (the lab's stand-in for its health
        endpoint) turns unhealthy; node1 keeps its routes for failAfterSeconds (10 s), then
        withdraws them all, and re-announces once the proxy is healthy again."""
        both = ["node1", "node2"]
        proxy = chart.proxy_health(self.fabric.lab, self.fabric.nodes[0], "node1")
        self.say("node1's kube-proxy reports unhealthy (its /healthz answers 503)")
        proxy.set(False)
        lost = self.watch(lambda: self.where(V4)["leaf1"] != both, 7.0)
        self.check(not lost, "node1 keeps its routes while failing under 10 s (sampled for 7 s)")
        self.timed(
            "after 10 s the data-plane gate closes: leaf1 reaches web via node2 only",
            lambda: self.where(V4)["leaf1"] == ["node2"],
        )
        proxy.set(True)
        self.timed(
            "kube-proxy healthy again: node1 re-announces (IPv4 and IPv6)",
            lambda: all(self.where(p)["leaf1"] == both for p in (V4, DUAL6)),
        )

    def agent_pid(self) -> int:
        """node1's agent: in its pod's cosmolet container, or the process the lab started."""
        if self.pods is not None:
            return chart.agent_pid(self.pods[0])
        return self.fabric.agents[0].agent_pid()


def main() -> int:
    if os.geteuid() != 0:
        print("make demo needs root (it builds network namespaces)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        if "--numbered" in sys.argv[1:]:
            from lab import demo_racks

            return demo_racks.main()
        if "--ipv6-only" in sys.argv[1:]:
            from lab import demo_ipv6

            return demo_ipv6.main()
        if "--processes" in sys.argv[1:]:
            with lab_fabric.running("hybrid") as fabric:
                return Demo(fabric).run()
        with chart.running("hybrid") as pods:
            return Demo(pods.fabric, pods.pods).run()
    except KeyboardInterrupt:
        print("interrupted: fabric removed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
