"""Probes as the kubelet runs them: ``httpGet`` and ``tcpSocket`` from the node (the calling
thread must be in the node's network namespace: ``enter_netns``), ``exec`` inside the container
with its identity; a result counts after ``successThreshold``/``failureThreshold`` in a row."""

from __future__ import annotations

import http.client
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field

from lab.pod.container import ContainerRun
from lab.pod.spec import Probe


def check(probe: Probe, run: ContainerRun, pod_ip: str, ports: dict[str, int]) -> tuple[bool, str]:
    """One attempt: (succeeded, what happened)."""
    spec = probe.spec
    try:
        if probe.handler == "exec":
            return _exec(probe, run)
        port = spec["port"]
        port = ports[port] if isinstance(port, str) else int(port)
        host = spec.get("host") or pod_ip
        if probe.handler == "tcpSocket":
            with socket.create_connection((host, port), timeout=probe.timeout):
                return True, f"connected to {host}:{port}"
        return _http(probe, host, port)
    except (OSError, http.client.HTTPException, subprocess.TimeoutExpired) as error:
        return False, f"{type(error).__name__}: {error}"


def _http(probe: Probe, host: str, port: int) -> tuple[bool, str]:
    spec = probe.spec
    connection: http.client.HTTPConnection
    if spec.get("scheme", "HTTP").upper() == "HTTPS":  # the kubelet does not verify
        context = ssl._create_unverified_context()
        connection = http.client.HTTPSConnection(host, port, timeout=probe.timeout, context=context)
    else:
        connection = http.client.HTTPConnection(host, port, timeout=probe.timeout)
    try:
        headers = {h["name"]: h["value"] for h in spec.get("httpHeaders", [])}
        headers.setdefault("User-Agent", "kube-probe/lab")
        connection.request("GET", spec.get("path", "/"), headers=headers)
        response = connection.getresponse()
        body = response.read(200).decode(errors="replace").strip()
    finally:
        connection.close()
    return 200 <= response.status < 400, f"HTTP {response.status} {body}"


def _exec(probe: Probe, run: ContainerRun) -> tuple[bool, str]:
    result = subprocess.run(
        run.exec_command(probe.spec["command"]),
        capture_output=True,
        text=True,
        timeout=probe.timeout,
        check=False,
    )
    return result.returncode == 0, f"exit {result.returncode} {result.stdout[-200:].strip()}"


@dataclass
class ProbeState:
    """One probe of one container run: when it is next due and its counted result."""

    probe: Probe
    started: float
    #: the result so far: None before the first counted one (readiness: not ready)
    passing: bool | None = None
    successes: int = 0
    failures: int = 0
    last: str = ""
    due: float = field(init=False)

    def __post_init__(self) -> None:
        self.due = self.started + self.probe.initial_delay

    def record(self, ok: bool, what: str, now: float | None = None) -> bool | None:
        """Count one attempt; returns the state's result (None: not decided yet)."""
        now = time.monotonic() if now is None else now
        self.last = what
        self.due = now + self.probe.period
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            if self.successes >= self.probe.success_threshold:
                self.passing = True
        else:
            self.successes, self.failures = 0, self.failures + 1
            if self.failures >= self.probe.failure_threshold:
                self.passing = False
        return self.passing
