"""The cosmolet configuration's schema: camelCase keys, validated, every error with its field path.

Every error names the field path (``bgp.peers[1].asn``) and what was expected, and unknown keys are
errors, because a typo in a routing policy must not pass silently. The models double as the source
of the JSON schema used by the Helm chart. Pure: reading the file and the environment is
``cosmolet.config.loader``'s job, so the route engine may import this module. The field types
are ``cosmolet.config.fields``; warnings (valid but probably unintended) ``cosmolet.config.checks``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator

from cosmolet.config.base import Model as _Model
from cosmolet.config.fields import (
    ASN,
    U32,
    Address,
    ASNOrAuto,
    Int,
    InterfaceName,
    Number,
    RouterId,
    parse_listen,
)
from cosmolet.config.peers import Peer
from cosmolet.config.services import Services
from cosmolet.engine import bgp_values
from cosmolet.engine.model import Family

DEFAULT_HTTP_LISTEN = "0.0.0.0:9179"
DEFAULT_STATUS_LISTEN = "127.0.0.1:9180"


class Mode(StrEnum):
    NUMBERED = "numbered"
    HYBRID = "hybrid"


class GracefulRestart(_Model):
    """BGP graceful restart (RFC 4724): a restarting node keeps its routes at the peer."""

    enabled: bool = True
    restart_time: Int = Field(default=120, ge=1, le=4095)


class Bfd(_Model):
    """FRR's bfdd on the node (the chart's sidecar), one BFD peer per BGP peer, so the switch
    detects a dead node or link fast (ExaBGP has no BFD)."""

    enabled: bool = False
    min_rx_ms: Int = Field(default=300, ge=10, le=60000)
    min_tx_ms: Int = Field(default=300, ge=10, le=60000)
    multiplier: Int = Field(default=3, ge=2, le=255)
    #: where the FRR sidecar's vtysh sockets are (shared with the cosmolet container)
    vtysh_socket_dir: Path = Path("/var/run/frr")


class Bgp(_Model):
    enabled: bool = True
    asn: ASN
    router_id: RouterId | None = None
    hold_time: Int = Field(default=9, ge=0, le=65535)
    graceful_restart: GracefulRestart = GracefulRestart()
    peers: tuple[Peer, ...] = ()
    interfaces: tuple[InterfaceName, ...] = ()
    peer_asn: ASNOrAuto = "auto"
    router_advertisement_interval: Int = Field(default=3, ge=1, le=1800)
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


class DataplaneGate(_Model):
    """Announce only while the node's service proxy says its rules are programmed: ``url`` is
    its health endpoint (kube-proxy's ``/healthz``; ``none`` turns the gate off). Until it first
    passes nothing is announced; failing for ``failAfterSeconds`` after that withdraws."""

    url: str = "none"
    interval_seconds: Number = Field(default=1.0, ge=0.1, le=60)
    fail_after_seconds: Number = Field(default=10.0, ge=0, le=3600)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip()
        if value.lower() == "none":
            return "none"
        problem = health_url_problem(value)
        if problem is not None:
            raise ValueError(
                f"expected none or an http(s) URL such as "
                f"http://127.0.0.1:10256/healthz, got {value!r}: {problem}"
            )
        return value


def health_url_problem(url: str) -> str | None:
    """What makes ``url`` unusable for the probe, or ``None``: checked here because a URL that
    only the HTTP client rejects (``http.client.InvalidURL``) would keep the gate waiting, or
    failing, forever with nothing said at start."""
    if any(not c.isprintable() or c.isspace() for c in url):
        return "it contains whitespace or a control character"
    try:
        parts = urlsplit(url)
        if parts.netloc.count(":") > 1 and "[" not in parts.netloc:
            return "an IPv6 address goes in brackets, e.g. http://[::1]:10256/healthz"
        port = parts.port
    except ValueError as error:  # a port not a number or out of range, bad brackets
        return str(error)
    if parts.scheme.lower() not in ("http", "https"):
        return "the scheme must be http or https"
    host = parts.hostname
    if not host:
        return "it names no host"
    if port == 0:
        return "port 0 cannot be connected to"
    if parts.netloc.endswith(":"):
        return "a colon with no port after it"
    return None


class NodePolicy(_Model):
    withdraw_when_cordoned: bool = False
    # kubeadm and Talos label control-plane nodes node.kubernetes.io/exclude-from-external-load-
    # balancers; a site that wants them advertising anyway ignores the label (not the autoscaler
    # taint: that node is about to go).
    ignore_exclude_label: bool = False
    dataplane_gate: DataplaneGate = DataplaneGate()


class Tls(_Model):
    """A certificate and its key (PEM files, e.g. a mounted Secret) for ``http.listen``: read at
    start and again whenever either file changes, so a renewed Secret needs no restart."""

    cert_file: Path
    key_file: Path


class Http(_Model):
    """``listen`` serves the probes, ``/metrics`` and ``/version``; ``statusListen`` serves
    ``/status``, which names every advertised Service and address, so it stays on the node's
    loopback unless set otherwise (``cosmolet status`` through ``kubectl exec`` reads it)."""

    listen: str = DEFAULT_HTTP_LISTEN
    status_listen: str = DEFAULT_STATUS_LISTEN
    tls: Tls | None = None

    @field_validator("listen", "status_listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @model_validator(mode="after")
    def _distinct(self) -> Http:
        (host, port), (status_host, status_port) = self.host_port, self.status_host_port
        # A wildcard address (0.0.0.0, ::) takes the port on every address.
        shared = host == status_host or any(
            ipaddress.ip_address(h).is_unspecified for h in (host, status_host)
        )
        if port == status_port and shared:
            raise ValueError(
                f"statusListen {self.status_listen} overlaps listen {self.listen}: "
                "give /status a port of its own"
            )
        return self

    @property
    def host_port(self) -> tuple[str, int]:
        return parse_listen(self.listen)

    @property
    def status_host_port(self) -> tuple[str, int]:
        return parse_listen(self.status_listen)


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
    drain_seconds: Number = Field(default=10.0, ge=0, le=3600)


class Events(_Model):
    """Kubernetes Events on a Service when its IP starts or stops being advertised here."""

    enabled: bool = False
    max_per_second: Number = Field(default=5.0, gt=0, le=100)


class Kubernetes(_Model):
    """How the agent reaches the API server, and what it does when it cannot."""

    withdraw_after_api_loss_seconds: Number | None = Field(default=None, gt=0)


class Config(_Model):
    mode: Mode = Mode.NUMBERED
    node_name: str = ""  # the loader fills it from NODE_NAME when empty
    loop_interval_seconds: Number = Field(default=300.0, ge=1, le=86400)
    runtime_dir: Path = Path("/run/cosmolet")
    bgp: Bgp
    services: Services = Services()
    node: NodePolicy = NodePolicy()
    http: Http = Http()
    logging: Logging = Logging()
    shutdown: Shutdown = Shutdown()
    kubernetes: Kubernetes = Kubernetes()
    events: Events = Events()


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
    first_with: dict[Address, int] = {}
    for index, peer in enumerate(config.bgp.peers):
        address = peer.ip
        if address is None:
            continue  # an interface or the gateway: what it becomes is known on the node only
        if peer.local_address and peer.local_address.version != address.version:
            problems.append(
                Problem(
                    f"bgp.peers[{index}].localAddress",
                    f"expected an IPv{address.version} address like the peer's address",
                )
            )
        own = Family.IPV4 if address.version == 4 else Family.IPV6
        if config.mode is Mode.NUMBERED and peer.address_families != (own,):
            why = f"expected only {own} on a session to an {own} address: a route of the other"
            why += " family needs a next hop of its own family, which cannot be derived; add a"
            why += " peer on the switch's address of that family (one session per family)"
            problems.append(Problem(f"bgp.peers[{index}].families", why))
        if peer.node_selector is not None:
            continue  # entries for different nodes may name the same switch
        first = first_with.setdefault(address, index)
        if first != index:  # the agent and ExaBGP's API both name a session by the peer address
            problems.append(
                Problem(f"bgp.peers[{index}]", f"same address as bgp.peers[{first}]: one per peer")
            )
    return problems


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
