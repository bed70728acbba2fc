"""Kubernetes Events on Services: "Advertised" / "Withdrawn" from this node, "NotAdvertised"
(refused by policy), and on this Node (the withdraw brake), rate-limited.

Events are a courtesy to the people who own Services (``kubectl describe service`` shows them),
never part of the data path: they are queued (bounded, oldest dropped first), sent from their
own thread at most ``events.maxPerSecond``, and a failure to send is logged and forgotten.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cosmolet import logs

log = logs.get("cosmolet.events")

QUEUE_LIMIT = 1000


@dataclass(frozen=True)
class ServiceEvent:
    service: str  # namespace/name; a Node's name when ``kind`` is "Node"
    reason: str  # "Advertised" | "Withdrawn" | "NotAdvertised" | "WithdrawBraked"
    message: str
    type: str = "Normal"  # or "Warning"
    kind: str = "Service"  # or "Node"


class EventRecorder:
    """Posts ``ServiceEvent``s to the API server from a daemon thread."""

    def __init__(
        self,
        api_factory: Callable[[], Any],
        node_name: str,
        max_per_second: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api_factory = api_factory
        self.node_name = node_name
        self.rate = max_per_second
        self.burst = max(1.0, max_per_second)
        self.clock = clock
        self.queue: collections.deque[ServiceEvent] = collections.deque(maxlen=QUEUE_LIMIT)
        self.wakeup = threading.Event()
        self.sent = 0
        self.failed = 0
        self.dropped = 0

    def record(self, event: ServiceEvent) -> None:
        if len(self.queue) == QUEUE_LIMIT:
            self.dropped += 1
        self.queue.append(event)
        self.wakeup.set()

    def run(self, stop: threading.Event) -> None:
        api = None
        tokens, last = self.burst, self.clock()
        while not stop.is_set():
            if not self.queue:
                self.wakeup.wait(1.0)
                self.wakeup.clear()
                continue
            now = self.clock()
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            last = now
            if tokens < 1:
                stop.wait((1 - tokens) / self.rate)
                continue
            event = self.queue.popleft()
            tokens -= 1
            try:
                api = api or self.api_factory()
                self._post(api, event)
                self.sent += 1
            except Exception as error:
                self.failed += 1
                log.warning(
                    "could not record a Kubernetes Event",
                    service=event.service,
                    reason=event.reason,
                    error=f"{type(error).__name__}: {error}"[:200],
                )

    def _post(self, api: Any, event: ServiceEvent) -> None:
        involved: dict[str, str] = {"apiVersion": "v1", "kind": event.kind}
        if event.kind == "Node":
            # A cluster-scoped object's Events live in "default"; kubectl describe node finds
            # them by a uid equal to the name (as the kubelet and kube-proxy post them).
            namespace, name = "default", event.service
            involved.update(name=name, uid=name)
        else:
            namespace, name = event.service.split("/", 1)
            involved.update(namespace=namespace, name=name)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{name}.", "namespace": namespace},
            "involvedObject": involved,
            "reason": event.reason,
            "message": event.message,
            "type": event.type,
            "source": {"component": "cosmolet", "host": self.node_name},
            "reportingComponent": "cosmolet",
            "reportingInstance": self.node_name,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        request = api.param_serialize(
            method="POST",
            resource_path=f"/api/v1/namespaces/{namespace}/events",
            header_params={"Content-Type": "application/json", "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = api.call_api(*request, _request_timeout=(5.0, 10.0))
        response.read()
        if not 200 <= response.status <= 299:
            raise RuntimeError(f"HTTP {response.status}")
