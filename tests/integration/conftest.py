"""Fixtures that build real fabrics in network namespaces: FRR peers and cosmolet nodes.

Integration tests need root, iproute2 and Debian's FRR. Where they are missing the tests are
skipped locally, but fail in CI (``CI=true``), so CI can never go green having run none of them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.frr_configs import Neighbor, numbered_router
from lab.netns import FrrRouter, Lab, Namespace, wait_for


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if not Path("/usr/lib/frr/bgpd").exists() or not shutil.which("vtysh"):
        return "needs Debian's frr package"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = _missing()
    for item in items:
        if "integration" not in str(item.path):
            continue
        item.add_marker(pytest.mark.integration)
        if reason and not os.environ.get("CI"):
            item.add_marker(pytest.mark.skip(reason=reason))


@dataclass
class Cosmolet:
    """``cosmolet start`` running in a node namespace, fed by an objects file."""

    ns: Namespace
    directory: Path
    config: dict[str, Any]
    process: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.log = self.directory / "cosmolet.log"
        self.config.setdefault("runtimeDir", str(self.directory / "run"))
        self.config.setdefault("logging", {"level": "info", "format": "json"})
        self.config_path.write_text(yaml.safe_dump(self.config))

    @property
    def config_path(self) -> Path:
        return self.directory / "config.yaml"

    @property
    def objects_path(self) -> Path:
        return self.directory / "objects.json"

    def set_objects(self, objects: list[dict[str, Any]]) -> None:
        """Atomically replace the cluster state the agent reads."""
        temporary = self.objects_path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"kind": "List", "items": objects}))
        os.replace(temporary, self.objects_path)

    def start(self) -> Cosmolet:
        if not self.objects_path.exists():
            self.set_objects([])
        self.process = self.ns.popen(
            sys.executable,
            "-m",
            "cosmolet",
            "start",
            "--config",
            str(self.config_path),
            "--objects",
            str(self.objects_path),
            log=self.log,
        )
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        finally:
            self.process = None

    def agent_pid(self) -> int:
        return int((self.directory / "run" / "agent.pid").read_text())

    def logs(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    lines.append(json.loads(line))
        return lines


@dataclass
class NumberedFabric:
    """A leaf (FRR, AS 65101) and a node (cosmolet, AS 65001) on one dual-stack /31 + /127 link."""

    lab: Lab
    leaf: Namespace
    node: Namespace
    frr: FrrRouter

    LEAF_V4 = "10.0.1.0"
    NODE_V4 = "10.0.1.1"
    LEAF_V6 = "fd00:1::"
    NODE_V6 = "fd00:1::1"

    def cosmolet(self, **overrides: Any) -> Cosmolet:
        bgp: dict[str, Any] = {
            "asn": 65001,
            "routerId": "192.0.2.1",
            "peers": [
                {"address": self.LEAF_V4, "asn": 65101, "localAddress": self.NODE_V4},
                {"address": self.LEAF_V6, "asn": 65101, "localAddress": self.NODE_V6},
            ],
        }
        bgp.update(overrides.pop("bgp", {}))
        config: dict[str, Any] = {"nodeName": "node1", "bgp": bgp, **overrides}
        return Cosmolet(self.node, self.lab.workdir / "node1", config)

    def rib(self, family: str = "ipv4") -> dict[str, Any]:
        return self.frr.received_routes(family)

    def fib(self, family: int = 4) -> set[str]:
        """Prefixes in the leaf kernel installed by BGP (as ``A.B.C.D/32``)."""
        found = set()
        for route in self.leaf.routes(family):
            if route.get("protocol") == "bgp":
                dst = route["dst"]
                found.add(dst if "/" in dst else f"{dst}/{32 if family == 4 else 128}")
        return found

    def wait_rib(self, expected: set[str], family: str = "ipv4", timeout: float = 30) -> None:
        wait_for(
            lambda: set(self.rib(family)) == expected,
            timeout,
            what=f"leaf {family} RIB == {sorted(expected)}",
        )

    def neighbor(self, address: str) -> dict[str, Any]:
        result: dict[str, Any] = self.frr.json(f"show bgp neighbors {address} json").get(
            address, {}
        )
        return result

    def established(self, address: str) -> bool:
        return self.neighbor(address).get("bgpState") == "Established"


def build_numbered(
    lab: Lab, passwords: dict[str, str] | None = None, ibgp: bool = False
) -> NumberedFabric:
    leaf = lab.namespace("leaf")
    node = lab.namespace("node1")
    lab.link(leaf, "eth1", node, "eth1")
    F = NumberedFabric
    leaf.ip("addr", "add", f"{F.LEAF_V4}/31", "dev", "eth1")
    leaf.ip("addr", "add", f"{F.LEAF_V6}/127", "dev", "eth1", "nodad")
    node.ip("addr", "add", f"{F.NODE_V4}/31", "dev", "eth1")
    node.ip("addr", "add", f"{F.NODE_V6}/127", "dev", "eth1", "nodad")
    passwords = passwords or {}
    remote_as = 65001
    config = numbered_router(
        "leaf",
        65001 if ibgp else 65101,
        "10.255.0.1",
        [
            Neighbor(F.NODE_V4, remote_as, passwords.get(F.NODE_V4)),
            Neighbor(F.NODE_V6, remote_as, passwords.get(F.NODE_V6)),
        ],
    )
    frr = lab.frr(leaf, config)
    return NumberedFabric(lab, leaf, node, frr)


@pytest.fixture
def lab() -> Iterator[Lab]:
    instance = Lab()
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture
def fabric(lab: Lab) -> NumberedFabric:
    return build_numbered(lab)


def sample(predicate: Any, seconds: float, interval: float = 0.01) -> list[Any]:
    """Evaluate ``predicate`` every ``interval`` for ``seconds``; return every result."""
    results = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        results.append(predicate())
        time.sleep(interval)
    return results
