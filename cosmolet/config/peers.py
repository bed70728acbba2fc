"""``bgp.peers``: the numbered peers of one shared config, and which nodes each applies to.

A peer entry names its switch in one of three ways, so that one file serves every node of a
fabric whose racks differ: an ``address``; ``address: gateway`` (the node's default-route next
hop, per family); or an ``interface``, whose /31 or /30 (IPv4) and /127 (IPv6) give the other
end of the link. A ``nodeSelector`` (a Kubernetes LabelSelector on the node's labels) limits an
entry to some nodes. What an entry becomes on a given node is ``cosmolet.engine.peers``' job;
here only what the file itself can be checked for, each error with its field path.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)

from cosmolet.config.base import Model
from cosmolet.config.fields import (
    GLOB_CHARACTERS,
    ASNOrAuto,
    Int,
    InterfaceName,
    SessionAddress,
)
from cosmolet.engine.model import Family
from cosmolet.engine.selector import LabelSelector, Requirement, valid_key, valid_value

GATEWAY = "gateway"
#: Kubernetes' LabelSelector operators and the engine's names for them.
OPERATORS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}


def _address_or_gateway(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """``gateway``, else an address with the address's own messages (not one per union member)."""
    if value == GATEWAY:
        return value
    try:
        return handler(value)
    except ValidationError as error:
        messages = [e["msg"] for e in error.errors() if e["type"] != "literal_error"]
        message = messages[0] if messages else f"expected an address or 'gateway', got {value!r}"
        raise ValueError(message.removeprefix("Value error, ")) from None


PeerAddress = Annotated[SessionAddress | Literal["gateway"], WrapValidator(_address_or_gateway)]


class SelectorRequirement(Model):
    """One ``matchExpressions`` item, as Kubernetes writes it."""

    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: tuple[str, ...] = ()

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not valid_key(value):
            raise ValueError(f"{value!r} is not a label key")
        return value

    @field_validator("values")
    @classmethod
    def _values(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            if not valid_value(value):
                raise ValueError(f"{value!r} is not a label value")
        return values

    @model_validator(mode="after")
    def _operands(self) -> SelectorRequirement:
        if self.operator in {"In", "NotIn"} and not self.values:
            raise ValueError(f"{self.operator} needs at least one value")
        if self.operator in {"Exists", "DoesNotExist"} and self.values:
            raise ValueError(f"{self.operator} takes no values")
        return self


class NodeSelector(Model):
    """A Kubernetes LabelSelector on the node's labels; every part must hold. Empty: every
    node (as in Kubernetes)."""

    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: tuple[SelectorRequirement, ...] = ()

    @field_validator("match_labels")
    @classmethod
    def _labels(cls, labels: dict[str, str]) -> dict[str, str]:
        for key, value in labels.items():
            if not valid_key(key):
                raise ValueError(f"{key!r} is not a label key")
            if not valid_value(value):
                raise ValueError(f"{value!r} (of {key!r}) is not a label value")
        return labels

    @property
    def selector(self) -> LabelSelector:
        requirements = [Requirement(k, "in", frozenset({v})) for k, v in self.match_labels.items()]
        requirements += [
            Requirement(e.key, OPERATORS[e.operator], frozenset(e.values))
            for e in self.match_expressions
        ]
        return LabelSelector(tuple(requirements), self.text)

    @property
    def text(self) -> str:
        """The selector in Kubernetes' string form, for messages: ``rack=r1,tier in (a,b)``."""
        parts = [f"{key}={value}" for key, value in self.match_labels.items()]
        for item in self.match_expressions:
            if item.operator in {"In", "NotIn"}:
                parts.append(f"{item.key} {item.operator.lower()} ({','.join(item.values)})")
            else:
                parts.append(item.key if item.operator == "Exists" else f"!{item.key}")
        return ",".join(parts)


class Peer(Model):
    """A numbered BGP peer entry: its switch by ``address`` (an address, or ``gateway``) or by
    ``interface``; the nodes it applies to (``nodeSelector``); per-peer timers and port."""

    address: PeerAddress | None = None
    interface: InterfaceName | None = None
    asn: ASNOrAuto
    local_address: SessionAddress | None = None
    password_file: Path | None = None
    multihop: Int | None = Field(default=None, ge=1, le=255)
    families: tuple[Family, ...] | None = None
    node_selector: NodeSelector | None = None
    hold_time: Int | None = Field(default=None, ge=0, le=65535)
    port: Int | None = Field(default=None, ge=1, le=65535)

    @field_validator("families")
    @classmethod
    def _families(cls, value: tuple[Family, ...] | None) -> tuple[Family, ...] | None:
        if value is not None and not value:
            raise ValueError("expected at least one family (leave it out for the address's own)")
        if value and len(set(value)) != len(value):
            raise ValueError(f"expected each family once, got {', '.join(value)}")
        return value

    @field_validator("interface")
    @classmethod
    def _literal(cls, value: str | None) -> str | None:
        if value is not None and any(char in GLOB_CHARACTERS for char in value):
            raise ValueError(f"{value!r} is a glob: a peer is derived from one named interface")
        return value

    @field_validator("hold_time")
    @classmethod
    def _hold_time(cls, value: int | None) -> int | None:
        if value is not None and 0 < value < 3:
            raise ValueError(f"expected 0 (no keepalives) or 3-65535 seconds, got {value}")
        return value

    @model_validator(mode="after")
    def _one_way(self) -> Peer:
        if (self.address is None) == (self.interface is None):
            raise ValueError("give exactly one of address (an address, or 'gateway') and interface")
        if self.local_address is not None and self.ip is None:
            raise ValueError(
                "localAddress is derived for an interface or gateway peer: leave it out"
            )
        return self

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """The configured address (``None`` for an interface or gateway peer)."""
        return None if self.address is None or isinstance(self.address, str) else self.address

    @property
    def address_families(self) -> tuple[Family, ...]:
        """The families to peer for: as configured, else the address's own (an address), else
        every family found (an interface or the gateway)."""
        if self.families:
            return self.families
        if self.ip is None:
            return (Family.IPV4, Family.IPV6)
        return (Family.IPV4,) if self.ip.version == 4 else (Family.IPV6,)

    @property
    def source(self) -> str:
        """How the entry names its switch, for messages: ``address 10.0.0.1``, ``interface
        eth1``, ``gateway``."""
        if self.interface is not None:
            return f"interface {self.interface}"
        return GATEWAY if self.ip is None else f"address {self.ip}"
