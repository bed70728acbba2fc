"""Where the Kubernetes reflectors deliver: one typed sink per kind, writing into the
``ClusterState``.

Each sink takes its own record type only (``ServiceSink`` takes ``Service``...) and calls the
builder's matching setter. What they share, in ``KindSink``: a ``Malformed`` object replaces
the record under its key and is reported; a list prunes what it did not hold, malformed
objects included; Services and EndpointSlices of namespaces the policy never advertises
(``namespace_wanted``, the rule ``cosmolet plan`` reports as ``not-selected``) are not kept.
"""

from __future__ import annotations

import abc
import sys
from collections.abc import Iterable
from typing import ClassVar, Generic

import msgspec

from cosmolet.engine.builder import PlanBuilder
from cosmolet.engine.objects import EndpointSlice, Malformed, Node, RecordT, Service
from cosmolet.engine.policy import namespace_wanted
from cosmolet.sources.state import ClusterState


class KindSink(abc.ABC, Generic[RecordT]):
    """The ``Sink[T]`` of one kind (see ``cosmolet.kube.reflector.Sink``)."""

    #: Prefixes the key of this kind's malformed objects in the builder's report.
    kind: ClassVar[str]

    def __init__(self, state: ClusterState) -> None:
        self.state = state

    def upsert(self, items: list[tuple[str, RecordT | Malformed]]) -> None:
        with self.state.update() as builder:
            for key, record in items:
                if isinstance(record, Malformed):
                    builder.set_malformed(f"{self.kind}:{key}", record)
                    self._set(builder, key, None)
                elif self._wanted(builder, record):
                    builder.set_malformed(f"{self.kind}:{key}", None)
                    self._set(builder, key, self._kept(record))

    def prune(self, keep: set[str]) -> None:
        """After a list: forget every object of this kind the list did not hold."""
        prefix = f"{self.kind}:"
        with self.state.update() as builder:
            for key in [key for key in self._keys(builder) if key not in keep]:
                self._set(builder, key, None)
            for key in [key for key in builder.malformed if key.startswith(prefix)]:
                if key[len(prefix) :] not in keep:
                    builder.set_malformed(key, None)

    def delete(self, key: str) -> None:
        with self.state.update() as builder:
            builder.set_malformed(f"{self.kind}:{key}", None)
            self._set(builder, key, None)

    def _wanted(self, builder: PlanBuilder, record: RecordT) -> bool:
        """Whether to keep this record at all."""
        return True

    def _kept(self, record: RecordT) -> RecordT:
        """The record as stored."""
        return record

    @abc.abstractmethod
    def _keys(self, builder: PlanBuilder) -> Iterable[str]:
        """The keys of this kind the builder holds."""

    @abc.abstractmethod
    def _set(self, builder: PlanBuilder, key: str, record: RecordT | None) -> None:
        """Store (or, with ``None``, forget) the record under ``key``."""


class ServiceSink(KindSink[Service]):
    kind = "Service"

    def __init__(self, state: ClusterState, keep_labels: bool) -> None:
        super().__init__(state)
        self.keep_labels = keep_labels

    def _wanted(self, builder: PlanBuilder, record: Service) -> bool:
        return namespace_wanted(builder.policy, record.metadata.namespace)

    def _kept(self, record: Service) -> Service:
        """What 10,000 stored Services need not repeat: labels when no selector reads them
        (``keep_labels`` false), the resourceVersion (the reflector has taken it), ``clusterIP``
        when ``clusterIPs`` holds it (the rules read ``clusterIPs`` first), and one copy of
        common strings."""
        meta = record.metadata
        meta = msgspec.structs.replace(
            meta,
            namespace=sys.intern(meta.namespace),
            labels=meta.labels if self.keep_labels else None,
            creation_timestamp=sys.intern(meta.creation_timestamp or ""),
            resource_version="",
        )
        spec = record.spec
        spec = msgspec.structs.replace(
            spec,
            type=sys.intern(spec.type),
            cluster_ip=None if spec.cluster_ips else spec.cluster_ip,
            internal_traffic_policy=_intern(spec.internal_traffic_policy),
            external_traffic_policy=_intern(spec.external_traffic_policy),
        )
        return msgspec.structs.replace(record, metadata=meta, spec=spec)

    def _keys(self, builder: PlanBuilder) -> Iterable[str]:
        return builder.services

    def _set(self, builder: PlanBuilder, key: str, record: Service | None) -> None:
        builder.set_service(key, record)


class SliceSink(KindSink[EndpointSlice]):
    kind = "EndpointSlice"

    def _wanted(self, builder: PlanBuilder, record: EndpointSlice) -> bool:
        return namespace_wanted(builder.policy, record.metadata.namespace)

    def _keys(self, builder: PlanBuilder) -> Iterable[str]:
        return builder.slices

    def _set(self, builder: PlanBuilder, key: str, record: EndpointSlice | None) -> None:
        builder.set_slice(key, record)


class NodeSink(KindSink[Node]):
    """This node only (the reflector lists it by name): its key is its name."""

    kind = "Node"

    def prune(self, keep: set[str]) -> None:
        """The Node list is complete, so whether this node is drained is known: what is healthy
        may now go out while the other lists are still paging in."""
        super().prune(keep)
        self.state.mark_node_known()

    def _keys(self, builder: PlanBuilder) -> Iterable[str]:
        return [builder.node.metadata.name] if builder.node else []

    def _set(self, builder: PlanBuilder, key: str, record: Node | None) -> None:
        builder.set_node(record)


def _intern(text: str | None) -> str | None:
    return None if text is None else sys.intern(text)
