"""Rendering ExaBGP's configuration and environment from the cosmolet config and this node's
resolved peers (``cosmolet.engine.peers``). Pure functions, but for the two things they read
from the node unless given: ``NODE_IP`` (the router id's fallback) and the kernel's source
address toward a peer without a local address (``kernel_source``).

The output is deterministic (golden-file tested): one ``neighbor`` per session inheriting a
shared template, the ``process`` block that runs ``cosmolet agent``, graceful restart with
manual EOR so the agent decides when the peer may drop stale routes. Deterministic matters
twice: the agent rewrites the file when a node's peers change and asks ExaBGP to ``reload``,
which re-establishes only the neighbors whose definition changed, so an unchanged session must
render to the same text every time.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import re
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cosmolet import __version__
from cosmolet.config import loader
from cosmolet.config.schema import Config, Mode, Problem
from cosmolet.engine.model import Family, Link
from cosmolet.engine.objects import Node
from cosmolet.engine.peers import NodeAddresses, ResolvedPeer, ResolvedPeers, resolve_peers
from cosmolet.exabgp.api import Address, Session

PROCESS_NAME = "cosmolet"
MASK = "<masked>"
_PASSWORD = re.compile(r"^[\x21-\x7e]{1,80}$")
_SAFE_ARG = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


class RenderError(ValueError):
    """The config cannot be turned into an ExaBGP configuration; ``problem`` names the field."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(str(problem))


@dataclass(frozen=True)
class Secrets:
    """Peer passwords read from their files, by peer index; never logged, masked in ``render``."""

    passwords: Mapping[int, str]


def read_secrets(config: Config) -> Secrets:
    """Read every ``passwordFile``.

    Raises:
        RenderError: naming the peer whose file is unreadable or holds an unusable password.
    """
    passwords = {}
    for index, peer in enumerate(config.bgp.peers):
        if peer.password_file is None:
            continue
        path = f"bgp.peers[{index}].passwordFile"
        try:
            password = peer.password_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeError) as error:
            raise RenderError(Problem(path, f"cannot read {peer.password_file}: {error}")) from None
        if not _PASSWORD.match(password):
            raise RenderError(
                Problem(path, "expected 1-80 printable ASCII characters without spaces (TCP MD5)")
            )
        if '"' in password or "\\" in password or ";" in password:
            raise RenderError(Problem(path, 'the password may not contain ", \\ or ;'))
        passwords[index] = password
    return Secrets(passwords)


def resolve(
    config: Config,
    node: Node | None = None,
    addresses: NodeAddresses | None = None,
    environ: Mapping[str, str] | None = None,
) -> ResolvedPeers:
    """This node's peers, ASN and router id, with ``NODE_IP`` from ``environ`` (default: the
    process's environment)."""
    return resolve_peers(config, node, addresses or NodeAddresses(), loader.node_ip(environ))


def router_id(resolved: ResolvedPeers) -> str:
    """The resolved router id.

    Raises:
        RenderError: when nothing gives one (not even a node name to derive it from).
    """
    if resolved.router_id is None:
        raise RenderError(
            Problem(
                "bgp.routerId",
                "required: no cosmolet.io/router-id annotation, NODE_IP, IPv4 local address of "
                "a peer or node name gives one",
            )
        )
    return resolved.router_id


def distinct_links(links: Iterable[Link]) -> tuple[list[Link], list[Link]]:
    """The links ExaBGP can tell apart, and those it cannot (in interface order).

    ExaBGP names a neighbor by its peer and local addresses (with the ASes and router id, the
    same for every link), so two links where both the switch and the node use the same
    link-local are one neighbor to it: it refuses the configuration. The first is kept.
    """
    kept: list[Link] = []
    clashing: list[Link] = []
    seen: set[tuple[ipaddress.IPv6Address, ipaddress.IPv6Address]] = set()
    for link in sorted(links):
        key = (ipaddress.IPv6Address(link.peer), ipaddress.IPv6Address(link.local))
        (clashing if key in seen else kept).append(link)
        seen.add(key)
    return kept, clashing


def link_sessions(config: Config, links: Iterable[Link], asn: int | None = None) -> list[Session]:
    """Hybrid mode: one session per discovered switch, next hop our link-local on that link;
    ``asn``: ours as resolved (default ``bgp.asn``)."""
    peer_as = None if config.bgp.peer_asn == "auto" else int(config.bgp.peer_asn)
    return [
        Session(
            peer=ipaddress.IPv6Address(link.peer),
            local_as=config.bgp.asn if asn is None else asn,
            peer_as=peer_as,
            families=(Family.IPV4, Family.IPV6),
            next_hop=str(ipaddress.IPv6Address(link.local)),
            origin=f"bgp.interfaces ({link.interface})",
            interface=link.interface,
            local_address=ipaddress.IPv6Address(link.local),
        )
        for link in distinct_links(links)[0]
    ]


def sessions(config: Config, resolved: ResolvedPeers | None = None) -> list[Session]:
    """The ExaBGP neighbors of a numbered node, as the speaker addresses them; ``resolved``:
    its peers (default: from the config alone). Hybrid mode has none of these: its switches
    are discovered (``link_sessions``)."""
    if config.mode is Mode.HYBRID:
        return []
    resolved = resolve(config) if resolved is None else resolved
    return [_session(peer, resolved.asn) for peer in resolved.peers]


def _session(peer: ResolvedPeer, asn: int) -> Session:
    scoped = _scoped(peer)
    return Session(
        peer=peer.address,
        local_as=asn,
        peer_as=peer.asn,
        families=(peer.family,),
        next_hop=str(peer.local_address) if scoped else "self",
        origin=peer.origin,
        interface=peer.interface if scoped else "",
        local_address=peer.local_address,
    )


def _scoped(peer: ResolvedPeer) -> bool:
    """A link-local peer with our link-local known: reached through its interface only, and
    named with our address (two links may see the same ``fe80::1``)."""
    local = peer.local_address
    return peer.link_local and bool(peer.interface) and local is not None and local.is_link_local


def kernel_source(peer: Address) -> str | None:
    """The address this node sends from to ``peer``: the kernel's route lookup, as ExaBGP's own
    connection makes it (``None`` without a route, or for an unscoped link-local)."""
    family = socket.AF_INET if peer.version == 4 else socket.AF_INET6
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((str(peer), 179))  # UDP: a lookup only, nothing is sent
            found = ipaddress.ip_address(str(probe.getsockname()[0]).partition("%")[0])
    except (OSError, ValueError):
        return None
    return str(found) if found.version == peer.version and not found.is_unspecified else None


def _hold_per_peer(config: Config) -> bool:
    """Whether each neighbor carries its hold time. ExaBGP copies a template's values over the
    neighbor's own (``Scope.transfer``): a neighbor's ``hold-time`` under a template that has one
    is ignored. So when a peer entry sets ``holdTime``, every neighbor gets its own and the
    template none (decided by the config alone, so it does not move while the agent runs)."""
    return config.mode is Mode.NUMBERED and any(p.hold_time is not None for p in config.bgp.peers)


def _neighbor(
    config: Config,
    peer: ResolvedPeer,
    secrets: Secrets | None,
    source_of: Callable[[Address], str | None],
) -> list[str]:
    entry = config.bgp.peers[peer.entry]
    lines = [
        f"neighbor {peer.address} {{",
        "    inherit cosmolet;",
        f'    description "{peer.origin}";',
    ]
    local = str(peer.local_address) if peer.local_address else source_of(peer.address)
    if local and not peer.local_address:
        # Without it ExaBGP learns its address at the first connection, and until then fails
        # (AttributeError) on every ``next-hop self`` the agent sends: a peer still unreachable
        # at start made a traceback per command.
        lines.append("    # localAddress unset: the address this node sends from to the peer")
    if local:
        lines.append(f"    local-address {local};")
    if _scoped(peer):
        lines.append(f"    source-interface {peer.interface};")
    lines.append(f"    peer-as {'auto' if peer.asn is None else peer.asn};")
    if _hold_per_peer(config):
        hold = config.bgp.hold_time if entry.hold_time is None else entry.hold_time
        lines.append(f"    hold-time {hold};")
    if entry.port is not None:
        lines.append(f"    connect {entry.port};")
    if entry.password_file is not None:
        password = MASK if secrets is None else secrets.passwords[peer.entry]
        lines.append(f'    md5-password "{password}";')
    if entry.multihop:
        lines.append(f"    outgoing-ttl {entry.multihop};")
    lines += ["    family {", f"        {peer.family} unicast;", "    }", "}"]
    return lines


def render(
    config: Config,
    agent_command: Sequence[str],
    secrets: Secrets | None = None,
    environ: Mapping[str, str] | None = None,
    links: Iterable[Link] = (),
    source_of: Callable[[Address], str | None] = kernel_source,
    peers: ResolvedPeers | None = None,
) -> str:
    """The ExaBGP configuration text. ``secrets=None`` masks passwords (for display);
    ``source_of`` gives the local address of a peer without one; ``peers``: this node's, as
    resolved (default: from the config alone, no Node and no interface known).

    Raises:
        RenderError: naming the field that cannot be rendered.
    """
    for arg in agent_command:
        if not _SAFE_ARG.match(arg):
            raise RenderError(
                Problem("", f"agent command argument {arg!r} has characters ExaBGP cannot pass")
            )
    bgp = config.bgp
    resolved = resolve(config, environ=environ) if peers is None else peers
    template = [
        "template {",
        "    neighbor cosmolet {",
        f"        router-id {router_id(resolved)};",
        f"        local-as {resolved.asn};",
    ]
    if not _hold_per_peer(config):
        template.append(f"        hold-time {bgp.hold_time};")
    template.append("        group-updates true;")
    hybrid = config.mode is Mode.HYBRID
    capabilities = []
    if bgp.graceful_restart.enabled:
        template.append("        manual-eor true;")
        capabilities.append(f"graceful-restart {bgp.graceful_restart.restart_time};")
    if hybrid:
        capabilities.append("nexthop enable;")  # RFC 8950: IPv4 routes, IPv6 next hop
    if capabilities:
        template += [
            "        capability {",
            *(f"            {item}" for item in capabilities),
            "        }",
        ]
    template += [
        "        api {",
        f"            processes [ {PROCESS_NAME} ];",
        "            neighbor-changes;",
    ]
    auto = bgp.peer_asn == "auto" if hybrid else any(p.asn == "auto" for p in bgp.peers)
    if auto:
        # The peer's OPEN, for its AS: iBGP or eBGP decides which attributes the agent sends.
        template.append("            receive { parsed; open; }")
    template += [
        "        }",
        "    }",
        "}",
    ]
    lines = [
        f"# Rendered by cosmolet {__version__} for node {config.node_name or '(unset)'}.",
        "# Do not edit: `cosmolet start` rewrites it on every start.",
        "",
        f"process {PROCESS_NAME} {{",
        f"    run {' '.join(agent_command)};",
        "    encoder json;",
        "}",
        "",
        *template,
    ]
    if hybrid:
        for link in distinct_links(links)[0]:
            lines += ["", *_link_neighbor(config, link)]
    else:
        for peer in resolved.peers:
            lines += ["", *_neighbor(config, peer, secrets, source_of)]
    return "\n".join(lines) + "\n"


def _link_neighbor(config: Config, link: Link) -> list[str]:
    """A switch on a fabric link, peered over IPv6 link-local (BGP unnumbered)."""
    return [
        f"neighbor {link.peer} {{",
        "    inherit cosmolet;",
        f'    description "{link.interface}";',
        f"    local-address {link.local};",
        f"    source-interface {link.interface};",
        f"    peer-as {config.bgp.peer_asn};",
        "    nexthop {",
        "        ipv4 unicast ipv6;",
        "    }",
        "    family {",
        "        ipv4 unicast;",
        "        ipv6 unicast;",
        "    }",
        "}",
    ]


def daemon_user(uid: int | None = None) -> str:
    """The user ExaBGP is told it runs as: ours. ExaBGP refuses a name without a passwd entry,
    and an arbitrary uid (OpenShift assigns them) has none: then ``nobody``, which exists on
    every Debian system; the launcher makes sure ExaBGP does not try to switch to it
    (``cosmolet.exabgp.launch``: a process that is not root has nothing to drop)."""
    try:
        return pwd.getpwuid(os.getuid() if uid is None else uid).pw_name
    except KeyError:
        return "nobody"


def environment(log_level: str = "INFO") -> dict[str, str]:
    """The ExaBGP settings cosmolet relies on, as environment variables.

    - run as whoever starts it (no drop to ``nobody``; in numbered mode that can be a non-root
      user, since ExaBGP only connects out and never listens);
    - an answer to every command (``done`` or ``error``): the agent reads them to know which
      lines ExaBGP refused (``cosmolet.agent.answers``), and drains stdin continuously, so a
      full pipe never blocks ExaBGP; no CLI pipe;
    - no per-route or statistics log lines (the agent logs route changes, summarised).

    The reactor speed is set by ``cosmolet.exabgp_launch`` with its other adjustment: the two
    were measured together.
    """
    return {
        "exabgp.daemon.user": daemon_user(),
        "exabgp.daemon.drop": "false",
        "exabgp.daemon.daemonize": "false",
        "exabgp.api.ack": "true",
        "exabgp.api.cli": "false",
        "exabgp.api.respawn": "true",
        "exabgp.log.level": log_level.upper(),
        "exabgp.log.destination": "stderr",
        "exabgp.log.processes": "false",
        "exabgp.log.statistics": "false",
        "exabgp.log.routes": "false",
        "exabgp.log.packets": "false",
        "exabgp.log.rib": "false",
    }


def write_private(path: Path, text: str) -> None:
    """Write atomically with mode 0600 (the rendered config may hold passwords)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)
