"""The two decisions a live source takes from the engine's policy: which namespaces it keeps at
all (the same rule ``cosmolet plan`` reports as ``not-selected``), and when losing the API server
withdraws every route."""

from __future__ import annotations

from typing import Any

import pytest

from cosmolet.config.schema import validate
from cosmolet.engine.model import SkipCode
from cosmolet.engine.objects import Service, decode_dict
from cosmolet.engine.policy import Policy, api_loss_skip, namespace_wanted, selection_skip
from tests.factories import config_dict, service

NAMESPACES = ["default", "team-a", "kube-system", "other"]
SETTINGS: list[dict[str, Any]] = [
    {},
    {"namespaces": ["default", "team-a"]},
    {"excludeNamespaces": ["kube-system"]},
    {"namespaces": ["default", "kube-system"], "excludeNamespaces": ["kube-system"]},
]


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("namespace", NAMESPACES)
def test_the_pre_filter_and_plan_are_one_rule(settings: dict[str, Any], namespace: str) -> None:
    policy = Policy.from_config(validate(config_dict(**settings)))
    _, record = decode_dict(Service, service("web", namespace))
    assert isinstance(record, Service)
    skip = selection_skip(policy, record)
    namespace_skip = skip is not None and skip.reason.startswith("namespace")
    assert namespace_wanted(policy, namespace) is not namespace_skip
    if namespace_skip:
        assert skip is not None and skip.code is SkipCode.NOT_SELECTED


def test_the_pre_filter_drops_what_is_configured() -> None:
    policy = Policy.from_config(validate(config_dict(**SETTINGS[3])))
    assert [n for n in NAMESPACES if namespace_wanted(policy, n)] == ["default"]


@pytest.mark.parametrize(
    ("limit", "synced", "lost_for", "withdraws"),
    [
        (None, True, 10_000.0, False),  # the default: routes outlive the API server
        (30.0, True, 29.9, False),
        (30.0, True, 30.0, True),
        (30.0, True, 45.0, True),
        (30.0, False, 45.0, False),  # never listed: nothing to withdraw
        (0.5, True, 0.0, False),  # connected
    ],
)
def test_api_loss(limit: float | None, synced: bool, lost_for: float, withdraws: bool) -> None:
    skip = api_loss_skip("node1", limit, synced, lost_for)
    if not withdraws:
        assert skip is None
        return
    assert skip is not None
    assert (skip.service, skip.code) == ("node1", SkipCode.API_LOST)
    assert skip.reason == (
        f"API server unreachable for over {limit:g} s (kubernetes.withdrawAfterApiLossSeconds)"
    )
