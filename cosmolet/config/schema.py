"""The cosmolet configuration's schema: camelCase keys, validated, every error with its field path.

Every error names the field path (``bgp.peers[1].asn``) and what was expected, and unknown keys are
errors, because a typo in a routing policy must not pass silently. The models double as the source
of the JSON schema used by the Helm chart. Pure: reading the file and the environment is
``cosmolet.config.loader``'s job, so the route engine may import this module.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from pydantic.alias_generators import to_camel

from cosmolet.engine import bgp_values
from cosmolet.engine.model import Family
from cosmolet.engine.selector import LabelSelector, parse_selector


def _ip_address(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return ipaddress.ip_address(value.strip())
        except ValueError:
            raise ValueError(f"expected an IPv4 or IPv6 address, got {value!r}") from None
    return value


def _ip_network(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return ipaddress.ip_network(value.strip(), strict=True)
        except ValueError as error:
            raise ValueError(f"expected a CIDR such as 10.96.0.0/12 ({error})") from None
    return value


def _ipv4_address(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return ipaddress.IPv4Address(value.strip())
        except ValueError:
            raise ValueError(f"expected an IPv4 address, got {value!r}") from None
    return value


IPAddress = Annotated[ipaddress.IPv4Address | ipaddress.IPv6Address, BeforeValidator(_ip_address)]
IPv4Address = Annotated[ipaddress.IPv4Address, BeforeValidator(_ipv4_address)]
IPNetwork = Annotated[ipaddress.IPv4Network | ipaddress.IPv6Network, BeforeValidator(_ip_network)]
ASN = Annotated[int, Field(ge=1, le=bgp_values.MAX_U32)]
U32 = Annotated[int, Field(ge=0, le=bgp_values.MAX_U32)]

DEFAULT_HTTP_LISTEN = "0.0.0.0:9179"
DEFAULT_MAX_ROUTES = 100_000


class Mode(StrEnum):
    NUMBERED = "numbered"
    HYBRID = "hybrid"


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


class GracefulRestart(_Model):
    """BGP graceful restart (RFC 4724): a restarting node keeps its routes at the peer."""

    enabled: bool = True
    restart_time: int = Field(default=120, ge=1, le=4095)


class Peer(_Model):
    """A numbered BGP peer: the fabric switch's address on the node's link."""

    address: IPAddress
    asn: ASN
    local_address: IPAddress | None = None
    password_file: Path | None = None
    multihop: int | None = Field(default=None, ge=1, le=255)
    families: tuple[Family, ...] | None = None

    @property
    def address_families(self) -> tuple[Family, ...]:
        """The families carried on this session: as configured, else the peer address's own."""
        if self.families:
            return self.families
        return (Family.IPV4,) if self.address.version == 4 else (Family.IPV6,)


class Bfd(_Model):
    """Hybrid mode: FRR's bfdd beside zebra, so the switch detects a dead node or link fast."""

    enabled: bool = False
    min_rx_ms: int = Field(default=300, ge=10, le=60000)
    min_tx_ms: int = Field(default=300, ge=10, le=60000)
    multiplier: int = Field(default=3, ge=2, le=255)
    #: where the FRR sidecar's vtysh sockets are (shared with the cosmolet container)
    vtysh_socket_dir: Path = Path("/var/run/frr")


class Bgp(_Model):
    enabled: bool = True
    asn: ASN
    router_id: IPv4Address | None = None
    hold_time: int = Field(default=9, ge=0, le=65535)
    graceful_restart: GracefulRestart = GracefulRestart()
    peers: tuple[Peer, ...] = ()
    interfaces: tuple[str, ...] = ()
    peer_asn: ASN | Literal["auto"] = "auto"
    router_advertisement_interval: int = Field(default=3, ge=1, le=1800)
    bfd: Bfd = Bfd()
    communities: tuple[str, ...] = ()
    large_communities: tuple[str, ...] = ()
    local_preference: U32 | None = None
    med: U32 | None = None

    @field_validator("hold_time")
    @classmethod
    def _hold_time(cls, value: int) -> int:
        if 0 < value < 3:
            raise ValueError(f"expected 0 (no keepalives) or 3-65535 seconds, got {value}")
        return value

    @field_validator("communities")
    @classmethod
    def _communities(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(bgp_values.parse_community(value) for value in values)

    @field_validator("large_communities")
    @classmethod
    def _large_communities(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(bgp_values.parse_large_community(value) for value in values)


class AdvertiseKind(_Model):
    enabled: bool
    allowed_cidrs: tuple[IPNetwork, ...] = Field(default=(), alias="allowedCIDRs")


class Advertise(_Model):
    """Which kinds of Service IP may be advertised, each with an allowlist of CIDRs.

    An empty ``clusterIP.allowedCIDRs`` allows any ClusterIP (the cluster's service CIDR is the
    API server's to police); an empty list for external or load-balancer IPs allows none, since any
    user who can create a Service can write those.
    """

    cluster_ip: AdvertiseKind = Field(default=AdvertiseKind(enabled=True), alias="clusterIP")
    external_ips: AdvertiseKind = Field(default=AdvertiseKind(enabled=False), alias="externalIPs")
    load_balancer_ips: AdvertiseKind = Field(
        default=AdvertiseKind(enabled=False), alias="loadBalancerIPs"
    )


class HealthHold(_Model):
    """Flap hold (``cosmolet/health_hold.py``): a prefix withdrawn less than ``riseSeconds``
    ago returns only after it has been wanted that long. Withdrawals are never delayed."""

    rise_seconds: float = Field(default=1.0, ge=0, le=3600)


class Services(_Model):
    namespaces: tuple[str, ...] = ()
    exclude_namespaces: tuple[str, ...] = ()
    label_selector: str = ""
    opt_in: bool = False
    advertise: Advertise = Advertise()
    max_routes: int = Field(default=DEFAULT_MAX_ROUTES, ge=0)
    health_hold: HealthHold = HealthHold()

    @field_validator("label_selector")
    @classmethod
    def _selector(cls, value: str) -> str:
        parse_selector(value)
        return value

    @property
    def selector(self) -> LabelSelector:
        return parse_selector(self.label_selector)


class NodePolicy(_Model):
    withdraw_when_cordoned: bool = False


class Http(_Model):
    listen: str = DEFAULT_HTTP_LISTEN

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @property
    def host_port(self) -> tuple[str, int]:
        return parse_listen(self.listen)


class Logging(_Model):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"

    @field_validator("level", "format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class Shutdown(_Model):
    """What SIGTERM does: keep routes for graceful restart, or withdraw them and drain."""

    mode: Literal["graceful", "withdraw"] = "graceful"
    drain_seconds: float = Field(default=10.0, ge=0, le=3600)


class Events(_Model):
    """Kubernetes Events on a Service when its IP starts or stops being advertised here."""

    enabled: bool = False
    max_per_second: float = Field(default=5.0, gt=0, le=100)


class Kubernetes(_Model):
    """How the agent reaches the API server, and what it does when it cannot."""

    withdraw_after_api_loss_seconds: float | None = Field(default=None, gt=0)


class Config(_Model):
    mode: Mode = Mode.NUMBERED
    node_name: str = ""  # the loader fills it from NODE_NAME when empty
    loop_interval_seconds: float = Field(default=300.0, gt=0, le=86400)
    runtime_dir: Path = Path("/run/cosmolet")
    bgp: Bgp
    services: Services = Services()
    node: NodePolicy = NodePolicy()
    http: Http = Http()
    logging: Logging = Logging()
    shutdown: Shutdown = Shutdown()
    kubernetes: Kubernetes = Kubernetes()
    events: Events = Events()


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[V6]:PORT`` for IPv6) into its parts.

    Raises:
        ValueError: when the value is not an address and a port 1-65535.
    """
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not HOST:PORT (e.g. 0.0.0.0:9179 or [::]:9179)")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{value!r}: {host!r} is not an IP address") from None
    return host, int(port)


@dataclass(frozen=True)
class Problem:
    """One configuration problem: the dotted field path and what was expected."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(Exception):
    """The configuration could not be loaded; ``problems`` has one entry per fault."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(str(problem) for problem in problems))


def _path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in {"function-after", "function-before"} or "[" in part:
            continue  # pydantic's internal validator markers
        else:
            text += f".{part}" if text else part
    return text


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key (check the spelling against the config reference)"
    if kind == "missing":
        return "required key is missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    given = error.get("input")
    if isinstance(given, str | int | float | bool) and kind not in {"value_error"}:
        message += f" (got {given!r})"
    return message


def _blocking_problems(config: Config) -> list[Problem]:
    """Cross-field rules that a single field's validator cannot see."""
    problems = []
    if config.mode is Mode.HYBRID and not config.bgp.interfaces:
        problems.append(
            Problem(
                "bgp.interfaces", "hybrid mode needs at least one fabric interface name or glob"
            )
        )
    for index, peer in enumerate(config.bgp.peers):
        if peer.local_address and peer.local_address.version != peer.address.version:
            problems.append(
                Problem(
                    f"bgp.peers[{index}].localAddress",
                    f"expected an IPv{peer.address.version} address like the peer's address",
                )
            )
    return problems


def warnings_for(config: Config) -> list[Problem]:
    """Valid but probably unintended settings, printed by ``check-config`` and logged at start."""
    warnings = []
    advertise = config.services.advertise
    for key, kind in (
        ("externalIPs", advertise.external_ips),
        ("loadBalancerIPs", advertise.load_balancer_ips),
    ):
        if kind.enabled and not kind.allowed_cidrs:
            warnings.append(
                Problem(
                    f"services.advertise.{key}.allowedCIDRs",
                    "enabled with an empty allowlist, so nothing of this kind will be advertised",
                )
            )
    if config.mode is Mode.NUMBERED and not config.bgp.peers:
        warnings.append(Problem("bgp.peers", "no peers: nothing will be advertised"))
    if not config.node_name:
        warnings.append(
            Problem("nodeName", "empty and NODE_NAME is unset: give it, or --node, before start")
        )
    return warnings


def validate(data: Any, source: str = "config") -> Config:
    """Validate already-parsed YAML data.

    Raises:
        ConfigError: with one problem per invalid field.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, [Problem("", "expected a mapping of keys at the top level")])
    try:
        config = Config.model_validate(data)
    except ValidationError as error:
        problems = list(
            dict.fromkeys(Problem(_path(item["loc"]), _message(item)) for item in error.errors())
        )
        raise ConfigError(source, problems) from None
    problems = _blocking_problems(config)
    if problems:
        raise ConfigError(source, problems)
    return config
