"""The Kubernetes source: three reflectors (Services, EndpointSlices, this Node) feeding a
``ClusterState``, and the policy for losing the API server.

The data plane must not depend on the control plane: while the API server is unreachable the
last known routes stay advertised. Only ``kubernetes.withdrawAfterApiLossSeconds`` (default:
never) bounds that, for operators who prefer a node to fall silent.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import msgspec

from cosmolet import logs
from cosmolet.agent.cluster_state import ClusterState
from cosmolet.config.schema import Config
from cosmolet.engine.model import Skip, SkipCode
from cosmolet.engine.objects import Malformed, Node, Record, Service
from cosmolet.kube import client
from cosmolet.kube.reflector import Reflector

log = logs.get("cosmolet.kube")


def _intern(text: str | None) -> str | None:
    return None if text is None else sys.intern(text)


@dataclass
class ApiHealth:
    synced: bool = False
    connected: bool = False
    lost_for_s: float = 0.0
    relists: int = 0
    watch_restarts: int = 0
    errors: int = 0


class KubeSource:
    """List-watch the cluster into a ``ClusterState``."""

    def __init__(self, config: Config, node_name: str, kubeconfig: str | None = None) -> None:
        self.config = config
        self.node_name = node_name
        self.kubeconfig = kubeconfig
        self.reflectors: list[Reflector] = []
        self.state: ClusterState | None = None
        services = config.services
        self._namespaces = frozenset(services.namespaces)
        self._excluded = frozenset(services.exclude_namespaces)
        self._uses_labels = bool(services.label_selector.strip())

    # --- Handler (called from the reflector threads) ------------------------------------------

    def _wanted(self, record: Record | Malformed) -> bool:
        """Services and slices of namespaces we never advertise are not even kept."""
        if isinstance(record, Malformed | Node):
            return True
        namespace = record.metadata.namespace
        if self._namespaces and namespace not in self._namespaces:
            return False
        return namespace not in self._excluded

    def _compact(self, service: Service) -> Service:
        """What 10,000 stored Services need not repeat: labels when no selector reads them, the
        resourceVersion (the reflector has taken it), and one copy of common strings."""
        meta = service.metadata
        meta = msgspec.structs.replace(
            meta,
            namespace=sys.intern(meta.namespace),
            labels=meta.labels if self._uses_labels else None,
            creation_timestamp=sys.intern(meta.creation_timestamp or ""),
            resource_version="",
        )
        spec = service.spec
        spec = msgspec.structs.replace(
            spec,
            type=sys.intern(spec.type),
            internal_traffic_policy=_intern(spec.internal_traffic_policy),
            external_traffic_policy=_intern(spec.external_traffic_policy),
        )
        return msgspec.structs.replace(service, metadata=meta, spec=spec)

    def upsert_many(self, kind: str, items: list[tuple[str, Record | Malformed]]) -> None:
        assert self.state is not None
        with self.state.update() as builder:
            for key, record in items:
                if not self._wanted(record):
                    continue
                if isinstance(record, Service):
                    record = self._compact(record)
                if isinstance(record, Malformed):
                    builder.set_malformed(f"{kind}:{key}", record)
                    self._set(builder, kind, key, None)
                else:
                    builder.set_malformed(f"{kind}:{key}", None)
                    self._set(builder, kind, key, record)

    def prune(self, kind: str, keep: set[str]) -> None:
        """After a list: forget every object of ``kind`` the list did not hold."""
        assert self.state is not None
        with self.state.update() as builder:
            if kind == "Service":
                stale = [key for key in builder.services if key not in keep]
            elif kind == "EndpointSlice":
                stale = [key for key in builder.slices if key not in keep]
            else:
                node = builder.node
                stale = [node.metadata.name] if node and node.metadata.name not in keep else []
            for key in stale:
                self._set(builder, kind, key, None)
            prefix = f"{kind}:"
            for key in [k for k in builder.malformed if k.startswith(prefix)]:
                if key[len(prefix) :] not in keep:
                    builder.set_malformed(key, None)

    def delete(self, kind: str, key: str) -> None:
        assert self.state is not None
        with self.state.update() as builder:
            builder.set_malformed(f"{kind}:{key}", None)
            self._set(builder, kind, key, None)

    @staticmethod
    def _set(builder: Any, kind: str, key: str, record: Record | None) -> None:
        if kind == "Service":
            builder.set_service(key, record)
        elif kind == "EndpointSlice":
            builder.set_slice(key, record)
        else:
            builder.set_node(record)

    # --- the source ---------------------------------------------------------------------------

    def health(self) -> ApiHealth:
        now = time.monotonic()
        failing = [r.failing_since for r in self.reflectors if r.failing_since is not None]
        return ApiHealth(
            synced=bool(self.reflectors) and all(r.synced for r in self.reflectors),
            connected=bool(self.reflectors) and all(r.connected for r in self.reflectors),
            lost_for_s=now - min(failing) if failing else 0.0,
            relists=sum(r.relists for r in self.reflectors),
            watch_restarts=sum(r.watch_restarts for r in self.reflectors),
            errors=sum(r.errors for r in self.reflectors),
        )

    def run(self, state: ClusterState, stop: threading.Event) -> None:
        self.state = state
        api = client.api_client(self.kubeconfig)
        kinds = client.kinds(api, self.node_name, self.config.services.label_selector)
        self.reflectors = [Reflector(kind, self, stop) for kind in kinds]
        for reflector in self.reflectors:
            threading.Thread(
                target=reflector.run, daemon=True, name=f"watch-{reflector.kind.name}"
            ).start()
        limit = self.config.kubernetes.withdraw_after_api_loss_seconds
        withdrawn = False
        last_full = time.monotonic()
        while not stop.wait(0.2):
            if time.monotonic() - last_full >= self.config.loop_interval_seconds:
                last_full = time.monotonic()
                with state.update() as builder:
                    builder.recompute_all()
            health = self.health()
            if health.synced and not state.readiness.synced:
                log.info("initial list complete: routes may now be advertised")
                state.mark_synced()
            lost = limit is not None and health.synced and health.lost_for_s >= limit
            if lost != withdrawn:
                withdrawn = lost
                reason = (
                    Skip(
                        self.node_name,
                        SkipCode.API_LOST,
                        f"API server unreachable for over {limit:g} s "
                        "(kubernetes.withdrawAfterApiLossSeconds)",
                    )
                    if lost
                    else None
                )
                log.warning(
                    "API server lost: withdrawing every route"
                    if lost
                    else "API server back: advertising again"
                )
                with state.update() as builder:
                    builder.set_withdraw_all(reason)
