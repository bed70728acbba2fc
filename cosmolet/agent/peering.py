"""The agent's side of this node's ExaBGP neighbors: what they are resolved from, the
configuration written for them, and the check that ExaBGP's ``reload`` took.

Inputs: the Node (labels and annotations, from the cluster source), and the node's addresses
(numbered mode, netlink) or its fabric links (hybrid mode, netlink). Nothing is resolved before
all of them are known: rendering without the Node would drop its selector peers and its own ASN
for a moment, and ExaBGP would reset sessions for nothing. After that, each change re-renders;
only a different text is written, and then ExaBGP is asked to ``reload``, which re-establishes
only the neighbors whose definition changed (the rendering is deterministic, so an unchanged
session is the same text).

ExaBGP 5.0.15 drops a ``reload`` that arrives while a neighbor still has route updates queued
(``reactor/loop.py``: the signal is re-armed, then the loop ``continue``s), answering ``done``
all the same. So every reload is checked: ``show neighbor configuration`` a moment later must
list the neighbors rendered (``cosmolet.exabgp.shown``); until it does the reload is sent again,
with a growing pause.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from cosmolet import logs
from cosmolet.config.schema import Config, Mode
from cosmolet.engine.model import Link
from cosmolet.engine.objects import Node
from cosmolet.engine.peers import (
    ASN_ANNOTATION,
    NodeAddresses,
    PeerProblem,
    ResolvedPeers,
    bfd_links,
)
from cosmolet.engine.router_ids import ROUTER_ID_ANNOTATION, Collision
from cosmolet.exabgp import config as exabgp_config
from cosmolet.exabgp import sessions as sessions_file
from cosmolet.exabgp.api import Session
from cosmolet.exabgp.sessions import InForce
from cosmolet.exabgp.shown import NeighborsShown, ShownNeighbor
from cosmolet.paths import RuntimePaths

log = logs.get("cosmolet.agent.peering")

#: First check of a reload after this long; each failed check doubles it, up to the maximum.
VERIFY_AFTER_SECONDS = 1.0
VERIFY_MAX_SECONDS = 30.0


@dataclass(frozen=True)
class Reconfiguration:
    """The neighbors to track now; ``reload``: ExaBGP's configuration was rewritten."""

    sessions: list[Session]
    reload: bool
    bfd: frozenset[Link]


@dataclass(frozen=True)
class Expected:
    """A neighbor as ``show neighbor json`` should show it (``None``: not known, any value)."""

    peer: str
    local: str | None
    local_as: int
    peer_as: int | None
    router_id: str
    hold_time: int

    def shown_as(self, shown: ShownNeighbor) -> bool:
        return (
            shown.peer == self.peer
            and self.local in (None, shown.local)
            and shown.local_as == self.local_as
            and self.peer_as in (None, shown.peer_as)
            and shown.router_id == self.router_id
            and shown.hold_time == self.hold_time
        )


def _same(expected: Sequence[Expected], shown: list[ShownNeighbor]) -> bool:
    """Each expected neighbor shown, and nothing else."""
    for wanted in expected:
        match = next((s for s in shown if wanted.shown_as(s)), None)
        if match is None:
            return False
        shown.remove(match)
    return not shown


def _node_key(node: Node | None) -> tuple[object, ...]:
    """What the resolution reads of the Node."""
    if node is None:
        return ()
    annotations = node.metadata.annotations or {}
    return (
        tuple(sorted((node.metadata.labels or {}).items())),
        annotations.get(ASN_ANNOTATION),
        annotations.get(ROUTER_ID_ANNOTATION),
    )


def _with(resolved: ResolvedPeers, collisions: tuple[PeerProblem, ...]) -> ResolvedPeers:
    return dataclasses.replace(resolved, problems=resolved.problems + collisions)


def _without(resolved: ResolvedPeers, collisions: tuple[PeerProblem, ...]) -> ResolvedPeers:
    kept = resolved.problems[: len(resolved.problems) - len(collisions)]
    return dataclasses.replace(resolved, problems=kept)


def _canonical(text: str) -> str:
    return str(ipaddress.ip_address(text))


class Peering:
    """Owned by the reconciler's thread; read (``resolved``) by the HTTP threads; told of
    router id collisions (``set_collisions``) by the thread that looks for them
    (``cosmolet.kube.router_ids``)."""

    def __init__(self, config: Config, agent_command: Sequence[str]) -> None:
        self.config = config
        self.agent_command = list(agent_command)
        self.paths = RuntimePaths(config.runtime_dir)
        self.node: Node | None = None
        self.node_known = False
        self.addresses: NodeAddresses | None = None
        self.links: frozenset[Link] | None = None
        self.resolved: ResolvedPeers | None = None
        self.in_force: InForce | None = sessions_file.load(self.paths.exabgp_sessions)
        self.expected: list[Expected] = []
        self.verify_at: float | None = None
        self.attempts = 0
        self._reported: tuple[PeerProblem, ...] | None = None
        self._lock = threading.Lock()  # ``resolved`` and ``collisions`` change together
        self.collisions: tuple[PeerProblem, ...] = ()

    def sessions(self, default: list[Session]) -> list[Session]:
        """The sessions of the configuration in force (``default`` when none was recorded)."""
        return default if self.in_force is None else self.in_force.sessions

    # --- inputs: each returns whether what the resolution reads changed --------------------

    def set_node(self, node: Node | None) -> bool:
        changed = not self.node_known or _node_key(node) != _node_key(self.node)
        self.node, self.node_known = node, True
        return changed

    def set_addresses(self, addresses: NodeAddresses) -> bool:
        changed = addresses != self.addresses
        self.addresses = addresses
        return changed and self.config.mode is Mode.NUMBERED

    def set_links(self, links: frozenset[Link]) -> bool:
        changed = links != self.links
        self.links = links
        return changed

    @property
    def ready(self) -> bool:
        """Every input is known (see the module docstring)."""
        if self.config.mode is Mode.HYBRID:
            return self.node_known and self.links is not None
        return self.node_known and self.addresses is not None

    # --- the configuration ------------------------------------------------------------------

    def reconfigure(self, cause: str) -> Reconfiguration | None:
        """Resolve and render; write the configuration if its text changed. ``None``: not ready,
        or it cannot be rendered (logged: the configuration in force stays)."""
        if not self.ready:
            return None
        config = self.config
        resolved = exabgp_config.resolve(config, self.node, self.addresses)
        self._report(resolved)
        links = self.links or frozenset()
        try:
            secrets = exabgp_config.read_secrets(config)
            text = exabgp_config.render(
                config, self.agent_command, secrets, links=links, peers=resolved
            )
        except exabgp_config.RenderError as error:
            log.error(
                "cannot render ExaBGP's configuration: keeping the one in force",
                problem=str(error.problem),
                cause=cause,
            )
            return None
        if config.mode is Mode.HYBRID:
            sessions = exabgp_config.link_sessions(config, links, resolved.asn)
            self._report_clashes(links)
        else:
            sessions = exabgp_config.sessions(config, resolved)
        with self._lock:
            if self.resolved is None or self.resolved.router_id != resolved.router_id:
                self.collisions = ()  # found for another id
            self.resolved = _with(resolved, self.collisions)
        assert resolved.router_id is not None  # render raised otherwise
        in_force = InForce(resolved.asn, resolved.router_id, sessions)
        conf = self.paths.exabgp_config
        reload = not conf.exists() or conf.read_text(encoding="utf-8") != text
        if reload:
            self._log_identity(in_force, resolved, cause)
            sessions_file.save(self.paths.exabgp_sessions, in_force)
            exabgp_config.write_private(conf, text)
            self.expected = self._expected(resolved, links)
            self.attempts = 0
            log.info(
                "ExaBGP's neighbors changed: reloading",
                cause=cause,
                sessions=[f"{s.name} ({s.origin})" for s in sessions],
            )
        self.in_force = in_force
        bfd = links if config.mode is Mode.HYBRID else bfd_links(config, resolved)
        return Reconfiguration(sessions, reload, bfd)

    def _expected(self, resolved: ResolvedPeers, links: frozenset[Link]) -> list[Expected]:
        bgp = self.config.bgp
        router_id = str(resolved.router_id)
        if self.config.mode is Mode.HYBRID:
            peer_as = None if bgp.peer_asn == "auto" else int(bgp.peer_asn)
            return [
                Expected(
                    _canonical(link.peer),
                    _canonical(link.local),
                    resolved.asn,
                    peer_as,
                    router_id,
                    bgp.hold_time,
                )
                for link in exabgp_config.distinct_links(links)[0]
            ]
        expected = []
        for peer in resolved.peers:
            hold = bgp.peers[peer.entry].hold_time
            local = None if peer.local_address is None else str(peer.local_address)
            expected.append(
                Expected(
                    str(peer.address),
                    local,
                    resolved.asn,
                    peer.asn,
                    router_id,
                    bgp.hold_time if hold is None else hold,
                )
            )
        return expected

    def set_collisions(self, router_id: str, found: Sequence[Collision]) -> None:
        """Other nodes found with the router id ``router_id`` (ours when they were looked
        for): a problem of ``bgp.routerId`` each in ``resolved`` (``/status``), logged when
        they change. Ignored if our id changed meanwhile (the next look compares the new)."""
        problems = tuple(
            PeerProblem(
                "bgp.routerId", f"{c}: give one of them a {ROUTER_ID_ANNOTATION} annotation"
            )
            for c in found
        )
        with self._lock:
            resolved = self.resolved
            if resolved is None or resolved.router_id != router_id:
                return
            changed = problems != self.collisions
            base = _without(resolved, self.collisions)
            self.collisions = problems
            self.resolved = _with(base, problems)
        if changed and problems:
            log.warning(
                "another node has this node's router id: BGP peers may refuse or confuse "
                "the sessions of both",
                router_id=router_id,
                nodes=[str(c) for c in found],
            )
        elif changed:
            log.info("no other node has this node's router id any more", router_id=router_id)

    # --- checking the reload ----------------------------------------------------------------

    def reload_sent(self, now: float) -> None:
        delay = min(VERIFY_AFTER_SECONDS * 2**self.attempts, VERIFY_MAX_SECONDS)
        self.attempts += 1
        self.verify_at = now + delay

    def verify_due(self, now: float) -> bool:
        """Time to ask ExaBGP for its neighbors (once per reload sent)."""
        if self.verify_at is None or now < self.verify_at:
            return False
        self.verify_at = None
        return True

    def applied(self, answer: NeighborsShown) -> bool:
        """Whether ExaBGP runs the neighbors rendered (logged either way, once per reload)."""
        if answer.complete and _same(self.expected, list(answer.neighbors)):
            if self.attempts:
                log.info("ExaBGP reloaded its configuration", attempts=self.attempts)
            self.attempts = 0
            return True
        log.warning(
            "ExaBGP does not run the configuration written (it drops a reload while route "
            "updates are queued, and keeps its configuration when it cannot load one: see its "
            "log): reloading again",
            attempt=self.attempts,
            running=sorted(f"{s.peer} AS{s.peer_as}" for s in answer.neighbors),
            answered=answer.complete,
        )
        return False

    # --- logs -------------------------------------------------------------------------------

    def _report(self, resolved: ResolvedPeers) -> None:
        """Each problem and unused entry, logged when the set changes (not on every event)."""
        found = resolved.problems + resolved.unused
        if found == self._reported:
            return
        self._reported = found
        for problem in resolved.problems:
            log.error(
                "peer entry not usable on this node", entry=problem.path, problem=problem.message
            )
        for unused in resolved.unused:
            log.info("peer entry not used on this node", entry=unused.path, reason=unused.message)

    def _log_identity(self, in_force: InForce, resolved: ResolvedPeers, cause: str) -> None:
        before = self.in_force
        if before is None or (before.asn, before.router_id) == (in_force.asn, in_force.router_id):
            return
        log.warning(
            "this node's AS or router id changed: every BGP session resets (graceful restart "
            "keeps the routes at the peers meanwhile)",
            asn=f"{before.asn} -> {in_force.asn} (from {resolved.asn_from})",
            router_id=f"{before.router_id} -> {in_force.router_id} (from "
            f"{resolved.router_id_from})",
            cause=cause,
        )

    @staticmethod
    def _report_clashes(links: frozenset[Link]) -> None:
        clashing = exabgp_config.distinct_links(links)[1]
        if clashing:
            log.error(
                "fabric links with the same pair of switch and node link-locals as another "
                "link: ExaBGP cannot tell them apart, so only the first is peered; give the "
                "node's fabric interfaces distinct link-local addresses",
                interfaces=[link.interface for link in clashing],
            )


def watch_router_ids(peering: Peering, source: object, stop: threading.Event) -> None:
    """Start the thread that looks for another node with our derived router id
    (``cosmolet.kube.router_ids``), when the cluster source is an API server."""
    from cosmolet.kube import client
    from cosmolet.kube.client import InFlight
    from cosmolet.kube.router_ids import CollisionWatch, list_identities
    from cosmolet.sources.kube import KubeSource

    if not isinstance(source, KubeSource):
        return  # an objects file has no other Nodes
    kubeconfig = source.kubeconfig

    def current() -> tuple[str, str] | None:
        resolved = peering.resolved
        if resolved is None or resolved.router_id is None:
            return None
        return resolved.router_id, resolved.router_id_from

    in_flight = InFlight()
    watch = CollisionWatch(
        lambda: list_identities(client.api_client(kubeconfig), in_flight),
        peering.config.node_name,
        current,
        peering.set_collisions,
    )
    threading.Thread(target=watch.run, args=(stop,), daemon=True, name="router-ids").start()
