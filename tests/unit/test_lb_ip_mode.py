"""Load-balancer IPs with ``ipMode: Proxy`` (KEP-1860): the load balancer proxies to the nodes
and kube-proxy installs nothing for the address, so no node advertises it."""

from __future__ import annotations

from typing import Any

from cosmolet.config.schema import validate
from cosmolet.engine.model import Plan, SkipCode
from cosmolet.engine.objects import Service, decode_object
from cosmolet.engine.plan import plan_from_documents
from tests.factories import config_dict, service, slice_

LB = {"advertise": {"loadBalancerIPs": {"enabled": True, "allowedCIDRs": ["198.51.100.0/24"]}}}


def plan(objects: list[Any], config: dict[str, Any] | None = None) -> Plan:
    return plan_from_documents(validate(config or config_dict()), "node1", objects)


def prefixes(result: Plan) -> list[str]:
    return [route.prefix for route in result.routes]


def test_lb_ip_mode_proxy_is_never_advertised() -> None:
    svc = service(
        "lb",
        type="LoadBalancer",
        lb_ips=["198.51.100.1", "198.51.100.2", "198.51.100.3"],
        lb_ip_modes={"198.51.100.1": "VIP", "198.51.100.2": "Proxy"},
    )
    result = plan([svc, slice_("lb")], config_dict(**LB))
    assert prefixes(result) == ["10.96.0.10/32", "198.51.100.1/32", "198.51.100.3/32"]
    (skip,) = result.skipped
    assert (skip.service, skip.code) == ("default/lb", SkipCode.LB_IP_MODE_PROXY)
    assert skip.reason.startswith("loadBalancerIPs 198.51.100.2: ipMode Proxy")


def test_lb_ip_mode_is_not_reported_while_lb_ips_are_disabled() -> None:
    svc = service("lb", type="LoadBalancer", lb_ips=["198.51.100.2"], lb_ip_modes={})
    svc["status"]["loadBalancer"]["ingress"][0]["ipMode"] = "Proxy"
    result = plan([svc, slice_("lb")])
    assert [skip.code for skip in result.skipped] == [SkipCode.KIND_DISABLED]


def test_lb_ip_mode_proxy_under_local_policy_is_reported_as_proxy() -> None:
    svc = service(
        "lb",
        type="LoadBalancer",
        external_policy="Local",
        lb_ips=["198.51.100.2"],
        lb_ip_modes={"198.51.100.2": "Proxy"},
    )
    result = plan([svc, slice_("lb")], config_dict(**LB))
    assert prefixes(result) == ["10.96.0.10/32"]
    assert [skip.code for skip in result.skipped] == [SkipCode.LB_IP_MODE_PROXY]


def test_ip_mode_is_decoded() -> None:
    raw = service("lb", lb_ips=["198.51.100.2"], lb_ip_modes={"198.51.100.2": "Proxy"})
    record = decode_object(raw)
    assert isinstance(record, Service)
    assert record.status and record.status.load_balancer
    assert [i.ip_mode for i in record.status.load_balancer.ingress or []] == ["Proxy"]
