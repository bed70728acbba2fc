"""The value types of the configuration's fields, each with the check that names what it expects.

Numbers are strict: YAML hands pydantic ``true``, ``65001.0`` or ``"65001"`` as written, and a
lax model would quietly turn ``asn: true`` into AS 1. Addresses must be ones a BGP session can
use, and interface names ones Linux could have, because both are written into ExaBGP's and FRR's
configuration files verbatim.
"""

from __future__ import annotations

import ipaddress
import unicodedata
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    Strict,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)

from cosmolet.engine import bgp_values

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: the longest literal interface name Linux accepts (IFNAMSIZ less the NUL)
MAX_INTERFACE_NAME = 15
GLOB_CHARACTERS = "*?["


def _ip_address(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return ipaddress.ip_address(value.strip())
        except ValueError:
            raise ValueError(f"expected an IPv4 or IPv6 address, got {value!r}") from None
    return value


def _ipv4_address(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return ipaddress.IPv4Address(value.strip())
        except ValueError:
            raise ValueError(f"expected an IPv4 address, got {value!r}") from None
    return value


def _session_address(value: Address) -> Address:
    """An address one end of a BGP session can have: no zone, and unicast."""
    if isinstance(value, ipaddress.IPv6Address) and value.scope_id:
        raise ValueError(
            f"{value} carries a zone (%{value.scope_id}), which ExaBGP cannot take: "
            "give the address alone"
        )
    for wrong, what in (
        (value.is_unspecified, "the unspecified address"),
        (value.is_loopback, "a loopback address"),
        (value.is_multicast, "a multicast address"),
        (value == ipaddress.IPv4Address("255.255.255.255"), "the broadcast address"),
    ):
        if wrong:
            raise ValueError(f"{value} is {what}: expected a unicast address on the BGP link")
    return value


def _router_id(value: ipaddress.IPv4Address) -> ipaddress.IPv4Address:
    if value.is_unspecified:
        raise ValueError("0.0.0.0 is not a usable BGP identifier: peers refuse the session")
    return value


def _interface_name(value: str) -> str:
    """A Linux interface name, or a glob of them (``*``, ``?``, ``[...]``)."""
    if not value:
        raise ValueError("expected an interface name or glob, got an empty string")
    for char in value:
        if char.isspace() or char in "/:" or unicodedata.category(char) == "Cc":
            raise ValueError(f"{value!r} is not a Linux interface name: {char!r} is not allowed")
    if value in {".", ".."}:
        raise ValueError(f"{value!r} is not a Linux interface name")
    glob = any(char in GLOB_CHARACTERS for char in value)
    if not glob and len(value.encode()) > MAX_INTERFACE_NAME:
        raise ValueError(
            f"{value!r} is longer than {MAX_INTERFACE_NAME} bytes, "
            "the most a Linux interface name can have"
        )
    return value


SessionAddress = Annotated[Address, BeforeValidator(_ip_address), AfterValidator(_session_address)]
RouterId = Annotated[
    ipaddress.IPv4Address, BeforeValidator(_ipv4_address), AfterValidator(_router_id)
]
InterfaceName = Annotated[str, AfterValidator(_interface_name)]
#: an integer written as one (not a bool, a float or a string of digits)
Int = Annotated[int, Strict()]
#: a number written as one (an integer or a float, not a bool or a string)
Number = Annotated[float, Strict()]
ASN = Annotated[int, Strict(), Field(ge=1, le=bgp_values.MAX_U32)]
U32 = Annotated[int, Strict(), Field(ge=0, le=bgp_values.MAX_U32)]


def _asn_or_auto(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """One message for the union, instead of one per member under pydantic's internal names."""
    try:
        return handler(value)
    except ValidationError:
        raise ValueError(
            f"expected an AS number 1-{bgp_values.MAX_U32} or 'auto', got {value!r}"
        ) from None


ASNOrAuto = Annotated[ASN | Literal["auto"], WrapValidator(_asn_or_auto)]


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[V6]:PORT`` for IPv6) into its parts.

    Raises:
        ValueError: when the value is not an address and a port 1-65535.
    """
    host, sep, port = value.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not HOST:PORT (e.g. 0.0.0.0:9179 or [::]:9179)")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{value!r}: {host!r} is not an IP address") from None
    return host, int(port)
