"""The ``services:`` section of the configuration: which Services and addresses to advertise,
and how (flap hold, weighted ECMP, the mass-withdraw brake).

Pure, like ``cosmolet.config.schema`` (which embeds ``Services``): the route engine imports it.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

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


def _inside(inner: IPNetwork, outer: IPNetwork) -> bool:
    """``inner`` lies inside ``outer`` (two CIDRs overlap exactly when one holds the other)."""
    return (
        inner.version == outer.version
        and inner.prefixlen >= outer.prefixlen
        and int(inner.network_address) & int(outer.netmask) == int(outer.network_address)
    )


class ClusterIPAdvertise(AdvertiseKind):
    """ClusterIPs, and the CIDRs to advertise whole instead of one /32 or /128 per address
    (``aggregate``): each is announced while a Cluster-policy ClusterIP in it would have been
    (a usable endpoint of its family anywhere), and only addresses whose traffic policy is Local
    are still announced one by one (Calico's model).

    Each aggregate must lie inside ``allowedCIDRs`` when that list is given, overlap no other,
    and be shorter than a host route (a /32 or /128 aggregate is the address itself).
    """

    aggregate: tuple[IPNetwork, ...] = ()

    @field_validator("aggregate")
    @classmethod
    def _aggregates(
        cls, value: tuple[IPNetwork, ...], info: ValidationInfo
    ) -> tuple[IPNetwork, ...]:
        # ``enabled`` and ``allowedCIDRs`` are validated before (declared first)
        if value and not info.data.get("enabled", True):
            raise ValueError(
                "set while clusterIP.enabled is false: no ClusterIP is advertised, so nothing "
                "would be aggregated"
            )
        allowed: tuple[IPNetwork, ...] = info.data.get("allowed_cidrs", ())
        for index, network in enumerate(value):
            where = f"aggregate[{index}] ({network})"
            if network.prefixlen == network.max_prefixlen:
                raise ValueError(f"{where} is a host route: it aggregates nothing")
            if allowed and not any(_inside(network, outer) for outer in allowed):
                raise ValueError(f"{where} is not inside clusterIP.allowedCIDRs")
            for other_index, other in enumerate(value[:index]):
                if _inside(network, other) or _inside(other, network):
                    raise ValueError(f"{where} overlaps aggregate[{other_index}] ({other})")
        return value


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
    that address's family, so the switch splits traffic in the ratio of the endpoints.

    Switches use only the ratios. The value travels in bytes per second in 32 bits: ExaBGP
    refuses one of 2**32 or more (34,359 Mbit/s) and FRR's ``cumulative`` sum at a leaf wraps
    past it. The default 1 Mbit/s per endpoint keeps 34,359 endpoints of one Service on a node,
    or summed behind one leaf, apart, and a switch shows a node's endpoints as its Mbit/s; the
    largest unit, 10, keeps 3,435 (``cosmolet/engine/weights.py``).
    """

    enabled: bool = True
    mbps_per_endpoint: Number = Field(default=1.0, ge=0.001, le=10)


class WithdrawBrake(_Model):
    """The mass-withdraw brake (off unless given): a reconcile that would withdraw more than
    ``maxFraction`` of the advertised routes while the API server is reachable is held for
    ``holdSeconds`` first. Deleted Services and node drains are not braked, nor fewer than
    ``minRoutes`` withdrawals (in one window): a node with three routes losing two is routine,
    and holding it would blackhole them for ``holdSeconds``."""

    max_fraction: Number = Field(default=0.5, gt=0, lt=1)
    hold_seconds: Number = Field(default=60.0, gt=0, le=3600)
    min_routes: Int = Field(default=10, ge=0)


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

    @model_validator(mode="after")
    def _aggregate_selects_all(self) -> Services:
        """An aggregate carries every ClusterIP inside it to the fabric, those of Services the
        selection leaves out too (the node's proxy forwards them all): it cannot be combined
        with a selection, which it would silently override."""
        chosen = [
            key
            for key, value in (
                ("namespaces", self.namespaces),
                ("excludeNamespaces", self.exclude_namespaces),
                ("labelSelector", self.label_selector),
                ("optIn", self.opt_in),
            )
            if value
        ]
        if self.advertise.cluster_ip.aggregate and chosen:
            raise ValueError(
                "advertise.clusterIP.aggregate cannot be combined with "
                + ", ".join(f"services.{key}" for key in chosen)
                + ": the aggregate attracts traffic for every ClusterIP inside it, those of "
                "Services the selection leaves out too; drop the selection or the aggregate"
            )
        return self

    @field_validator("label_selector")
    @classmethod
    def _selector(cls, value: str) -> str:
        parse_selector(value)
        return value

    @property
    def selector(self) -> LabelSelector:
        return parse_selector(self.label_selector)
