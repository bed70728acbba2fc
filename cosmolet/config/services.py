"""The ``services:`` section of the configuration: which Services and addresses to advertise,
and how (flap hold, weighted ECMP, the mass-withdraw brake).

Pure, like ``cosmolet.config.schema`` (which embeds ``Services``): the route engine imports it.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, field_validator

from cosmolet.config.base import Model as _Model
from cosmolet.config.fields import Int, Number
from cosmolet.engine.selector import LabelSelector, parse_selector

DEFAULT_MAX_ROUTES = 100_000


def _ip_network(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return ipaddress.ip_network(value.strip(), strict=True)
        except ValueError as error:
            raise ValueError(f"expected a CIDR such as 10.96.0.0/12 ({error})") from None
    return value


IPNetwork = Annotated[ipaddress.IPv4Network | ipaddress.IPv6Network, BeforeValidator(_ip_network)]


class AdvertiseKind(_Model):
    enabled: bool
    allowed_cidrs: tuple[IPNetwork, ...] = Field(default=(), alias="allowedCIDRs")


class ClusterIPAdvertise(AdvertiseKind):
    """ClusterIPs, and the CIDRs to advertise whole instead of one /32 or /128 per address
    (``aggregate``): each is announced while a Service in it is healthy here, and only
    addresses whose traffic policy is Local are still announced one by one (Calico's model)."""

    aggregate: tuple[IPNetwork, ...] = ()


class Advertise(_Model):
    """Which kinds of Service IP may be advertised, each with an allowlist of CIDRs.

    An empty ``clusterIP.allowedCIDRs`` allows any ClusterIP (the cluster's service CIDR is the
    API server's to police); an empty list for external or load-balancer IPs allows none, since any
    user who can create a Service can write those.
    """

    cluster_ip: ClusterIPAdvertise = Field(
        default=ClusterIPAdvertise(enabled=True), alias="clusterIP"
    )
    external_ips: AdvertiseKind = Field(default=AdvertiseKind(enabled=False), alias="externalIPs")
    load_balancer_ips: AdvertiseKind = Field(
        default=AdvertiseKind(enabled=False), alias="loadBalancerIPs"
    )


class HealthHold(_Model):
    """Flap hold (``cosmolet/health_hold.py``): a prefix withdrawn less than ``riseSeconds``
    ago returns only after it has been wanted that long. Withdrawals are never delayed."""

    rise_seconds: Number = Field(default=1.0, ge=0, le=3600)


class WeightedEcmp(_Model):
    """Weighted ECMP (UCMP) for addresses whose traffic policy is Local: each route carries the
    link-bandwidth extended community, ``mbpsPerEndpoint`` times the node's usable endpoints for
    that address's family, so the switch splits traffic in the ratio of the endpoints."""

    enabled: bool = True
    mbps_per_endpoint: Number = Field(default=1000.0, gt=0, le=1_000_000)


class WithdrawBrake(_Model):
    """The mass-withdraw brake (off unless given): a reconcile that would withdraw more than
    ``maxFraction`` of the advertised routes while the API server is reachable is held for
    ``holdSeconds`` first. Deleted Services and node drains are not braked."""

    max_fraction: Number = Field(default=0.5, gt=0, lt=1)
    hold_seconds: Number = Field(default=60.0, gt=0, le=3600)


class Services(_Model):
    namespaces: tuple[str, ...] = ()
    exclude_namespaces: tuple[str, ...] = ()
    label_selector: str = ""
    opt_in: bool = False
    advertise: Advertise = Advertise()
    max_routes: Int = Field(default=DEFAULT_MAX_ROUTES, ge=0)
    health_hold: HealthHold = HealthHold()
    weighted_ecmp: WeightedEcmp = WeightedEcmp()
    withdraw_brake: WithdrawBrake | None = None

    @field_validator("label_selector")
    @classmethod
    def _selector(cls, value: str) -> str:
        parse_selector(value)
        return value

    @property
    def selector(self) -> LabelSelector:
        return parse_selector(self.label_selector)
