"""Slim, typed records of the Kubernetes objects the route engine reads, and their decoders.

Only the fields cosmolet uses are declared; everything else in an object is skipped while
decoding, so 10,000 Services and their EndpointSlices cost megabytes, not the hundreds the
client's model objects take (and a Service encoded, as the builder keeps it, leaves out what
is at its default). The same records, with the same checks, are decoded from the API
server's raw JSON (``decode_json``, the watch) and from a ``kubectl get -o json`` file
(``decode_dict``/``decode_object``: ``cosmolet plan``, ``--objects``).

A record that does not match the schema (a list where a string belongs, say) or lacks a name is
not raised to the caller: the decoders return a ``Malformed`` naming the object and the field,
which the engine reports as a skipped item.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
ANNOTATION_PREFIX = "cosmolet.io/"


class ObjectMeta(msgspec.Struct, frozen=True, gc=False, omit_defaults=True, rename="camel"):
    name: str = ""
    namespace: str = ""
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    creation_timestamp: str | None = None
    resource_version: str = ""


class ServiceSpec(msgspec.Struct, frozen=True, gc=False, omit_defaults=True, rename="camel"):
    type: str = "ClusterIP"
    cluster_ip: str | None = msgspec.field(default=None, name="clusterIP")
    cluster_ips: list[str] | None = msgspec.field(default=None, name="clusterIPs")
    external_ips: list[str] | None = msgspec.field(default=None, name="externalIPs")
    internal_traffic_policy: str | None = None
    external_traffic_policy: str | None = None


class LoadBalancerIngress(
    msgspec.Struct, frozen=True, gc=False, omit_defaults=True, rename="camel"
):
    ip: str | None = None
    hostname: str | None = None
    ip_mode: str | None = None  # KEP-1860: "VIP" (or absent) or "Proxy"


class LoadBalancerStatus(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    ingress: list[LoadBalancerIngress] | None = None


class ServiceStatus(msgspec.Struct, frozen=True, gc=False, omit_defaults=True, rename="camel"):
    load_balancer: LoadBalancerStatus | None = None


class Service(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    metadata: ObjectMeta = ObjectMeta()
    spec: ServiceSpec = ServiceSpec()
    status: ServiceStatus | None = None

    @property
    def key(self) -> str:
        return f"{self.metadata.namespace}/{self.metadata.name}"


class EndpointConditions(msgspec.Struct, frozen=True, gc=False):
    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None


_NO_CONDITIONS = EndpointConditions()


class Endpoint(msgspec.Struct, frozen=True, gc=False, rename="camel"):
    # Health needs only the conditions and the node: addresses are not even decoded.
    conditions: EndpointConditions | None = None
    node_name: str | None = None

    # The conditions read as kube-proxy reads them (pkg/proxy/endpointslicecache.go): ready and
    # serving are true unless false, terminating is false unless true.

    @property
    def ready(self) -> bool:
        """``ready`` true or absent, whatever ``terminating`` says: with publishNotReadyAddresses
        the EndpointSlice controller marks terminating endpoints ready, and kube-proxy uses them."""
        return (self.conditions or _NO_CONDITIONS).ready is not False

    @property
    def serving_terminating(self) -> bool:
        """Serving and terminating: what kube-proxy falls back to when nothing is ready
        (KEP-1669), so connections drain while a Deployment rolls."""
        conditions = self.conditions or _NO_CONDITIONS
        return conditions.serving is not False and conditions.terminating is True


class EndpointSlice(msgspec.Struct, frozen=True, gc=False, rename="camel"):
    metadata: ObjectMeta = ObjectMeta()
    address_type: str | None = None  # "IPv4", "IPv6" or "FQDN"; the API requires it
    endpoints: list[Endpoint] | None = None

    @property
    def key(self) -> str:
        return f"{self.metadata.namespace}/{self.metadata.name}"

    @property
    def service_key(self) -> str | None:
        """``namespace/name`` of the Service this slice belongs to, from its standard label."""
        name = (self.metadata.labels or {}).get(SERVICE_NAME_LABEL)
        return f"{self.metadata.namespace}/{name}" if name else None


class Taint(msgspec.Struct, frozen=True, gc=False):
    key: str = ""
    effect: str = ""


class NodeSpec(msgspec.Struct, frozen=True, gc=False):
    unschedulable: bool | None = None
    taints: list[Taint] | None = None


class Node(msgspec.Struct, frozen=True, gc=False):
    metadata: ObjectMeta = ObjectMeta()
    spec: NodeSpec | None = None

    @property
    def cordoned(self) -> bool:
        return bool(self.spec and self.spec.unschedulable)


@dataclass(frozen=True, slots=True)
class Malformed:
    """An object that did not decode: which one, and why (the field path msgspec reported)."""

    kind: str
    key: str
    reason: str


Record = Service | EndpointSlice | Node
RecordT = TypeVar("RecordT", bound=Record)
RECORD_TYPES: dict[str, type[Record]] = {
    "Service": Service,
    "EndpointSlice": EndpointSlice,
    "Node": Node,
}


def slim(record: RecordT) -> RecordT:
    """Drop what the engine never reads but objects often carry in bulk.

    A Service's annotations are cut to ``cosmolet.io/*`` (``kubectl apply`` alone leaves a
    kilobyte-sized ``last-applied-configuration`` on each); an EndpointSlice keeps only its
    service-name label and no annotations.
    """
    meta = record.metadata
    if isinstance(record, Service):
        annotations = meta.annotations
        if annotations and any(not key.startswith(ANNOTATION_PREFIX) for key in annotations):
            kept = {k: v for k, v in annotations.items() if k.startswith(ANNOTATION_PREFIX)}
            meta = msgspec.structs.replace(meta, annotations=kept or None)
            return msgspec.structs.replace(record, metadata=meta)
    elif isinstance(record, EndpointSlice):
        labels = meta.labels or {}
        if meta.annotations or len(labels) > 1:
            name = labels.get(SERVICE_NAME_LABEL)
            meta = msgspec.structs.replace(
                meta, annotations=None, labels={SERVICE_NAME_LABEL: name} if name else None
            )
            return msgspec.structs.replace(record, metadata=meta)
    return record


# --- decoding ------------------------------------------------------------------------------
# Two entry points, one set of rules: ``decode_json`` for the watch (raw bytes straight into the
# record, no Python dicts on the way) and ``decode_dict`` for files (already parsed YAML or
# JSON). Both end in ``_checked`` and name objects with ``object_key``, so an object is
# ``Malformed`` for the same reason, under the same key, whichever way it arrived.


def object_key(namespace: object, name: object) -> str:
    """``namespace/name``, or ``name`` for a cluster-scoped object; ``?`` stands for a name that
    is missing, empty or not a string."""
    shown = name if isinstance(name, str) and name else "?"
    return f"{namespace}/{shown}" if isinstance(namespace, str) and namespace else shown


def _describe(raw: Any) -> tuple[str, str]:
    """Best-effort ``(kind, key)`` of a raw object that did not decode, for error messages."""
    if not isinstance(raw, dict):
        return "?", f"<{type(raw).__name__}>"
    kind = raw.get("kind")
    metadata = raw.get("metadata")
    if not isinstance(metadata, dict):
        metadata = {}
    kind = kind if isinstance(kind, str) else "?"
    return kind, object_key(metadata.get("namespace"), metadata.get("name"))


def _mismatch(kind: str, raw: Any, error: msgspec.ValidationError) -> tuple[str, Malformed]:
    """An object that does not match the schema, named from its raw form."""
    _, key = _describe(raw)
    return key, Malformed(kind, key, str(error).replace("$.", "", 1))


def _checked(record: RecordT) -> tuple[str, RecordT | Malformed]:
    """What the schema cannot say: every object has a name, a namespaced one a namespace."""
    meta = record.metadata
    key = object_key(meta.namespace, meta.name)
    kind = type(record).__name__
    if not meta.name:
        return key, Malformed(kind, key, "metadata.name is missing or empty")
    if not isinstance(record, Node) and not meta.namespace:
        return key, Malformed(kind, key, "metadata.namespace is missing or empty")
    return key, slim(record)


def decode_json(
    record_type: type[RecordT], raw: bytes | msgspec.Raw
) -> tuple[str, RecordT | Malformed]:
    """Decode one object of the API server's JSON (a list item, a watch event's object) into
    ``(key, record)``; ``Malformed`` when it does not match the schema or lacks a name.

    The JSON must be well formed (it was split out of a parsed page or event): only a
    schema mismatch is reported, and only then is the object parsed again, to name it.
    """
    try:
        record = msgspec.json.decode(raw, type=record_type)
    except msgspec.ValidationError as error:
        return _mismatch(record_type.__name__, msgspec.json.decode(raw), error)
    return _checked(record)


def decode_dict(record_type: type[RecordT], raw: Any) -> tuple[str, RecordT | Malformed]:
    """Decode one already parsed object (a dict from a file) into ``(key, record)``, with the
    same checks and results as ``decode_json`` on the same object."""
    try:
        record = msgspec.convert(raw, record_type, strict=True)
    except msgspec.ValidationError as error:
        return _mismatch(record_type.__name__, raw, error)
    return _checked(record)


def decode_object(raw: Any, kind: str | None = None) -> Record | Malformed | None:
    """Decode one object of a file (a dict) into its record; its kind is ``kind`` if given, else
    the object's own ``kind`` field.

    Returns ``None`` for kinds cosmolet does not read, and ``Malformed`` when the object is one of
    ours but does not match the schema or lacks a name.
    """
    described_kind, key = _describe(raw)
    kind = kind or described_kind
    record_type = RECORD_TYPES.get(kind)
    if record_type is None:
        if kind == "?":
            return Malformed(kind, key, "not an object with a string 'kind'")
        return None
    return decode_dict(record_type, raw)[1]


def flatten_items(document: Any) -> Iterator[Any]:
    """Yield the objects of a document: a `kubectl get -o json` List, or one object."""
    if isinstance(document, dict) and isinstance(document.get("items"), list):
        item_kind = document.get("kind")
        default_kind = (
            item_kind.removesuffix("List")
            if isinstance(item_kind, str) and item_kind != "List"
            else None
        )
        for item in document["items"]:
            if default_kind and isinstance(item, dict) and "kind" not in item:
                item = {**item, "kind": default_kind}
            yield from flatten_items(item)
    elif document is not None:
        yield document


def decode_all(documents: Iterable[Any]) -> tuple[list[Record], list[Malformed]]:
    """Decode every object of the documents, splitting good records from malformed ones."""
    records: list[Record] = []
    malformed: list[Malformed] = []
    for document in documents:
        for raw in flatten_items(document):
            result = decode_object(raw)
            if isinstance(result, Malformed):
                malformed.append(result)
            elif result is not None:
                records.append(result)
    return records, malformed
