"""The incremental engine always agrees with the reference ``compute_plan``."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cosmolet.config.schema import Config
from cosmolet.engine.builder import PlanBuilder
from cosmolet.engine.model import Route, Skip, SkipCode
from cosmolet.engine.objects import EndpointSlice, Node, Service, decode_object
from cosmolet.engine.plan import compute_plan
from tests.factories import service, slice_
from tests.unit.test_route_properties import (
    CONFIG,
    CONFIG_AGGREGATES,
    CONFIG_IGNORING_LABEL,
    endpoint_slices,
    nodes,
    services,
)

NAMES = [f"svc{i}" for i in range(4)]


@st.composite
def operations(draw: st.DrawFn) -> list[tuple[str, str, Any]]:
    ops: list[tuple[str, str, Any]] = []
    for _ in range(draw(st.integers(1, 25))):
        kind = draw(st.sampled_from(["service", "slice", "delete-service", "delete-slice", "node"]))
        name = draw(st.sampled_from(NAMES))
        if kind == "service":
            ops.append((kind, name, draw(services(name))[0]))
        elif kind == "slice":
            # A Service has up to two slices (suffix a or b), each of any address type.
            namespace = draw(st.sampled_from(["default", "prod"]))
            endpoint_slice = draw(endpoint_slices(name, namespace))
            ops.append((kind, endpoint_slice["metadata"]["name"], endpoint_slice))
        elif kind == "delete-slice":
            ops.append((kind, f"{name}-{draw(st.sampled_from(['a', 'b']))}", None))
        elif kind == "node":
            ops.append((kind, "node1", draw(nodes())))
        else:
            ops.append((kind, name, None))
    return ops


def _record(raw: dict[str, Any]) -> Any:
    record = decode_object(raw)
    assert record is not None and not hasattr(record, "reason")
    return record


@settings(max_examples=300, deadline=None)
@given(
    operations(),
    st.integers(1, 5),
    st.sampled_from([CONFIG, CONFIG_IGNORING_LABEL, CONFIG_AGGREGATES]),
)
def test_incremental_equals_reference(
    ops: list[tuple[str, str, Any]], take_every: int, config: Config
) -> None:
    builder = PlanBuilder(config, "node1")
    services_by_name: dict[str, Service] = {}
    slices_by_name: dict[str, EndpointSlice] = {}
    current_node: Node | None = None
    published: dict[str, Route] = {}
    for step, (kind, name, raw) in enumerate(ops):
        if kind == "service":
            record = _record(raw)
            # A namespace change is a different object: delete the old key first.
            old = services_by_name.pop(name, None)
            if old is not None and old.key != record.key:
                builder.set_service(old.key, None)
            services_by_name[name] = record
            builder.set_service(record.key, record)
        elif kind == "slice":
            record = _record(raw)
            old_slice = slices_by_name.pop(name, None)
            if old_slice is not None and old_slice.key != record.key:
                builder.set_slice(old_slice.key, None)
            slices_by_name[name] = record
            builder.set_slice(record.key, record)
        elif kind == "delete-service" and name in services_by_name:
            builder.set_service(services_by_name.pop(name).key, None)
        elif kind == "delete-slice" and name in slices_by_name:
            builder.set_slice(slices_by_name.pop(name).key, None)
        elif kind == "node":
            current_node = _record(raw)
            builder.set_node(current_node)
        if step % take_every == 0 or step == len(ops) - 1:
            for prefix, route in builder.take_delta().items():
                if route is None:
                    published.pop(prefix, None)
                else:
                    published[prefix] = route

    reference = compute_plan(
        config, "node1", current_node, services_by_name.values(), slices_by_name.values()
    )
    assert published == {route.prefix: route for route in reference.routes}
    assert builder.plan() == reference
    assert builder.take_delta() == {}


def test_max_routes_and_withdraw_all() -> None:
    from cosmolet.config.schema import validate
    from tests.factories import config_dict

    config = validate(config_dict(maxRoutes=1))
    builder = PlanBuilder(config, "node1")
    for index, created in enumerate(["2024-02-01T00:00:00Z", "2024-01-01T00:00:00Z"]):
        raw = service(f"s{index}", cluster_ips=(f"10.96.0.{index + 1}",), created=created)
        builder.set_service(f"default/s{index}", _record(raw))
        builder.set_slice(f"default/s{index}-abcde", _record(slice_(f"s{index}")))
    assert set(builder.take_delta()) == {"10.96.0.2/32"}
    builder.set_withdraw_all(Skip("node1", SkipCode.NODE_EXCLUDED, "API server lost"))
    assert builder.take_delta() == {"10.96.0.2/32": None}
    builder.set_withdraw_all(None)
    assert set(builder.take_delta()) == {"10.96.0.2/32"}


def test_recompute_all_of_a_correct_state_changes_nothing() -> None:
    builder = PlanBuilder(CONFIG, "node1")
    for index in range(5):
        raw = service(f"s{index}", cluster_ips=(f"10.96.0.{index + 1}",))
        builder.set_service(f"default/s{index}", _record(raw))
        builder.set_slice(f"default/s{index}-abcde", _record(slice_(f"s{index}")))
    assert len(builder.take_delta()) == 5
    builder.recompute_all()
    assert builder.take_delta() == {}


def test_policy_refusals_are_reported_once_as_they_appear() -> None:
    from cosmolet.config.schema import validate
    from tests.factories import config_dict

    config = validate(
        config_dict(
            maxRoutes=2,
            advertise={
                "clusterIP": {"enabled": True, "allowedCIDRs": ["10.96.0.0/16"]},
                "externalIPs": {"enabled": True, "allowedCIDRs": ["203.0.113.0/24"]},
            },
        )
    )
    builder = PlanBuilder(config, "node1")
    outside = service("out", cluster_ips=("10.200.0.1",), external_ips=["192.0.2.1"])
    builder.set_service("default/out", _record(outside))
    builder.set_slice("default/out-abcde", _record(slice_("out")))  # healthy: now it counts
    builder.take_delta()
    refusals, dropped = builder.take_refusals()
    assert dropped == 0
    assert [(r.service, r.code) for r in refusals] == [
        ("default/out", SkipCode.NOT_ALLOWED),
        ("default/out", SkipCode.NOT_ALLOWED),
    ]
    assert "10.200.0.1 outside services.advertise.clusterIP.allowedCIDRs" in refusals[0].reason
    builder.set_service("default/out", _record(outside))  # the same again: already reported
    builder.recompute_all()
    assert builder.take_refusals() == ([], 0)

    for index in range(3):  # a third healthy Service passes maxRoutes: reported once
        raw = service(f"s{index}", cluster_ips=(f"10.96.0.{index + 1}",))
        builder.set_service(f"default/s{index}", _record(raw))
        builder.set_slice(f"default/s{index}-abcde", _record(slice_(f"s{index}")))
    builder.take_delta()
    builder.take_delta()
    refusals, _ = builder.take_refusals()
    assert [r.code for r in refusals] == [SkipCode.MAX_ROUTES]
    assert "3 routes wanted, services.maxRoutes is 2" in refusals[0].reason
