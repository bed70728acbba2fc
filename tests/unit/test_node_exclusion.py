"""Nodes the service controller takes out of load balancers: one the cluster autoscaler is
deleting (its taint), or one with the exclude label unless ``node.ignoreExcludeLabel`` is set."""

from __future__ import annotations

from typing import Any

import pytest

from cosmolet.config.schema import ConfigError, validate
from cosmolet.engine.builder import PlanBuilder
from cosmolet.engine.model import Plan, SkipCode
from cosmolet.engine.objects import Node, Service, decode_object
from cosmolet.engine.plan import plan_from_documents
from tests.factories import config_dict, node, service, slice_

EXCLUDE_LABEL = {"node.kubernetes.io/exclude-from-external-load-balancers": ""}
AUTOSCALER = "ToBeDeletedByClusterAutoscaler"


def plan(objects: list[Any], config: dict[str, Any] | None = None) -> Plan:
    return plan_from_documents(validate(config or config_dict()), "node1", objects)


def prefixes(result: Plan) -> list[str]:
    return [route.prefix for route in result.routes]


@pytest.mark.parametrize("effect", ["NoSchedule", "PreferNoSchedule", "NoExecute"])
def test_autoscaler_deletion_taint_excludes_the_node(effect: str) -> None:
    result = plan([service("web"), slice_("web"), node(taints=[(AUTOSCALER, effect)])])
    assert result.routes == ()
    (skip,) = result.skipped
    assert (skip.service, skip.code) == ("node1", SkipCode.NODE_EXCLUDED)
    assert AUTOSCALER in skip.reason


def test_other_taints_do_not_exclude() -> None:
    tainted = node(taints=[("DeletionCandidateOfClusterAutoscaler", "PreferNoSchedule")])
    assert prefixes(plan([service("web"), slice_("web"), tainted])) == ["10.96.0.10/32"]


def test_ignore_exclude_label_ignores_the_label_not_the_taint() -> None:
    ignoring = {**config_dict(), "node": {"ignoreExcludeLabel": True}}
    labelled = node(labels=EXCLUDE_LABEL)
    assert plan([service("web"), slice_("web"), labelled]).routes == ()
    assert prefixes(plan([service("web"), slice_("web"), labelled], ignoring)) == ["10.96.0.10/32"]
    both = node(labels=EXCLUDE_LABEL, taints=[(AUTOSCALER, "NoSchedule")])
    result = plan([service("web"), slice_("web"), both], ignoring)
    assert result.routes == ()
    assert [skip.code for skip in result.skipped] == [SkipCode.NODE_EXCLUDED]


def test_ignore_exclude_label_is_a_boolean_defaulting_to_false() -> None:
    assert validate(config_dict()).node.ignore_exclude_label is False
    with pytest.raises(ConfigError, match=r"node\.ignoreExcludeLabel"):
        validate({**config_dict(), "node": {"ignoreExcludeLabel": "sometimes"}})


def test_builder_withdraws_everything_when_the_taint_appears() -> None:
    builder = PlanBuilder(validate(config_dict()), "node1")
    svc = decode_object(service("web"))
    endpoint_slice = decode_object(slice_("web"))
    assert isinstance(svc, Service) and endpoint_slice is not None
    builder.set_service(svc.key, svc)
    builder.set_slice("default/web-abcde", endpoint_slice)  # type: ignore[arg-type]
    assert set(builder.take_delta()) == {"10.96.0.10/32"}
    tainted = decode_object(node(taints=[(AUTOSCALER, "NoSchedule")]))
    assert isinstance(tainted, Node)
    assert [taint.key for taint in (tainted.spec and tainted.spec.taints) or []] == [AUTOSCALER]
    builder.set_node(tainted)
    assert builder.take_delta() == {"10.96.0.10/32": None}
    builder.set_node(decode_object(node()))  # type: ignore[arg-type]
    assert set(builder.take_delta()) == {"10.96.0.10/32"}
