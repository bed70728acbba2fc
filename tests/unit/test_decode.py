"""One decoder for the watch and for files: the same object, as the API server's JSON bytes
(``decode_json``) or as a parsed dict (``decode_dict``), gives the same key and the same record,
or the same ``Malformed`` for the same reason."""

from __future__ import annotations

import contextlib
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosmolet.engine.objects import (
    EndpointSlice,
    Malformed,
    Node,
    Record,
    Service,
    decode_dict,
    decode_json,
    decode_object,
)
from tests.factories import node, service, slice_

KUBECTL_APPLY = "kubectl.kubernetes.io/last-applied-configuration"


def _without(raw: dict[str, Any], *path: str) -> dict[str, Any]:
    """A deep copy of ``raw`` without the field at ``path``."""
    copy: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(raw))
    inner = copy
    for step in path[:-1]:
        inner = inner[step]
    del inner[path[-1]]
    return copy


def _with(raw: dict[str, Any], value: Any, *path: str) -> dict[str, Any]:
    copy: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(raw))
    inner = copy
    for step in path[:-1]:
        inner = inner[step]
    inner[path[-1]] = value
    return copy


# (record type, raw object, what decoding must give: the key and None for a good record, or the
# key and the start of the Malformed reason)
CASES: list[tuple[type[Record], Any, str, str | None]] = [
    (Service, service("web"), "default/web", None),
    (
        Service,
        service("web", annotations={KUBECTL_APPLY: "{}", "cosmolet.io/med": "5"}),
        "default/web",
        None,
    ),
    (EndpointSlice, slice_("web"), "default/web-abcde", None),
    (Node, node(), "node1", None),
    (
        Service,
        _with(service("web"), "", "metadata", "name"),
        "default/?",
        "metadata.name is missing or empty",
    ),
    (
        Service,
        _without(service("web"), "metadata", "name"),
        "default/?",
        "metadata.name is missing or empty",
    ),
    (
        Service,
        _without(service("web"), "metadata", "namespace"),
        "web",
        "metadata.namespace is missing or empty",
    ),
    (
        Service,
        _with(service("web"), "", "metadata", "namespace"),
        "web",
        "metadata.namespace is missing or empty",
    ),
    (
        EndpointSlice,
        _without(slice_("web"), "metadata", "namespace"),
        "web-abcde",
        "metadata.namespace is missing or empty",
    ),
    (Node, _with(node(), "", "metadata", "name"), "?", "metadata.name is missing or empty"),
    (Service, _without(service("web"), "metadata"), "?", "metadata.name is missing or empty"),
    (
        Service,
        _with(service("web"), "10.96.0.9", "spec", "clusterIPs"),
        "default/web",
        "Expected `array | null`, got `str` - at `spec.clusterIPs`",
    ),
    (Service, _with(service("web"), 7, "metadata", "name"), "default/?", "Expected `str`"),
    (Service, _with(service("web"), "nope", "metadata"), "?", "Expected `object`"),
    (
        Service,
        _with(service("web"), {"a": 1}, "metadata", "labels"),
        "default/web",
        "Expected `str`",
    ),
    (
        EndpointSlice,
        _with(slice_("web"), [1], "endpoints"),
        "default/web-abcde",
        "Expected `object`, got `int` - at `endpoints[0]`",
    ),
    (Node, _with(node(), {"unschedulable": "yes"}, "spec"), "node1", "Expected `bool"),
    (Service, "a string", "<str>", "Expected `object`, got `str`"),
    (Service, [service("web")], "<list>", "Expected `object`, got `array`"),
    (Service, None, "<NoneType>", "Expected `object`, got `null`"),
]


@pytest.mark.parametrize(("record_type", "raw", "key", "reason"), CASES)
def test_both_paths_give_the_same_result(
    record_type: type[Record], raw: Any, key: str, reason: str | None
) -> None:
    from_file = decode_dict(record_type, raw)
    from_watch = decode_json(record_type, msgspec.json.encode(raw))
    assert from_file == from_watch
    got_key, result = from_watch
    assert got_key == key
    if reason is None:
        assert isinstance(result, record_type)
    else:
        assert isinstance(result, Malformed)
        assert (result.kind, result.key) == (record_type.__name__, key)
        assert result.reason.startswith(reason), result.reason


def test_both_paths_slim_alike() -> None:
    raw = service("web", annotations={KUBECTL_APPLY: "{}", "cosmolet.io/med": "5"})
    _, record = decode_json(Service, msgspec.json.encode(raw))
    assert isinstance(record, Service)
    assert record.metadata.annotations == {"cosmolet.io/med": "5"}


def test_the_file_decoder_reads_the_kind_and_uses_the_same_rules() -> None:
    raw = _with(service("web"), "", "metadata", "name")
    assert decode_object(raw) == decode_dict(Service, raw)[1]
    assert decode_object({"kind": "ConfigMap", "metadata": {"name": "c"}}) is None


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = {
    Service: [
        ("metadata",),
        ("metadata", "name"),
        ("metadata", "namespace"),
        ("metadata", "labels"),
        ("metadata", "annotations"),
        ("spec",),
        ("spec", "type"),
        ("spec", "clusterIPs"),
        ("spec", "externalIPs"),
        ("status",),
    ],
    EndpointSlice: [
        ("metadata",),
        ("metadata", "name"),
        ("metadata", "namespace"),
        ("metadata", "labels"),
        ("endpoints",),
    ],
    Node: [("metadata",), ("metadata", "name"), ("spec",), ("spec", "unschedulable")],
}
GOOD: dict[type[Record], dict[str, Any]] = {
    Service: service("web", annotations={"cosmolet.io/med": "5"}, lb_ips=["198.51.100.1"]),
    EndpointSlice: slice_("web"),
    Node: node(),
}


@st.composite
def damaged(draw: st.DrawFn) -> tuple[type[Record], Any]:
    """A good object with some fields replaced by arbitrary JSON values or removed."""
    types: list[type[Record]] = [Service, EndpointSlice, Node]
    record_type = draw(st.sampled_from(types))
    raw = GOOD[record_type]
    for path in draw(st.lists(st.sampled_from(FIELDS[record_type]), max_size=3)):
        # KeyError, TypeError: an earlier step removed the parent or made it a non-object.
        with contextlib.suppress(KeyError, TypeError):
            raw = _without(raw, *path) if draw(st.booleans()) else _with(raw, draw(JSON), *path)
    return record_type, raw


@settings(max_examples=300, deadline=None)
@given(damaged())
def test_both_paths_agree_on_arbitrary_damage(case: tuple[type[Record], Any]) -> None:
    record_type, raw = case
    assert decode_dict(record_type, raw) == decode_json(record_type, msgspec.json.encode(raw))
