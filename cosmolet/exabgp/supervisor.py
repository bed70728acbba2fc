"""``cosmolet start``: validate, render ExaBGP's config, run ExaBGP (with the agent) and supervise.

``start`` stays as ExaBGP's parent rather than exec'ing it, for one reason: a drain. With
``shutdown.mode: withdraw``, SIGTERM must first make the agent withdraw every route, wait
``shutdown.drainSeconds`` while traffic moves to other nodes, and only then stop ExaBGP. With
``graceful`` (the default), SIGTERM goes straight to ExaBGP, which closes its sessions without a
NOTIFICATION so that graceful-restart peers keep the routes while the pod restarts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cosmolet import logs
from cosmolet.agent import journal
from cosmolet.config.schema import Config, Mode
from cosmolet.engine.model import Link
from cosmolet.engine.objects import Node
from cosmolet.engine.peers import NodeAddresses, ResolvedPeers
from cosmolet.exabgp import config as exabgp_config
from cosmolet.exabgp import sessions as sessions_file
from cosmolet.hybrid.neighbors import snapshot
from cosmolet.paths import RuntimePaths

log = logs.get("cosmolet.exabgp.supervisor")


def agent_command(config_path: Path, extra: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "cosmolet", "agent", "--config", str(config_path), *extra]


def prepare(
    config: Config, config_path: Path, extra_args: Sequence[str], node: Node | None = None
) -> Path:
    """Render ExaBGP's config (and its sessions' record) into the runtime directory for this
    node (``node``: its Node object, when it could be read), and forget any old journal.

    Raises:
        exabgp_config.RenderError: naming the field that cannot be rendered.
    """
    paths = RuntimePaths(config.runtime_dir)
    secrets = exabgp_config.read_secrets(config)
    links = discovered_links(config)
    resolved = resolve(config, node)
    text = exabgp_config.render(
        config,
        agent_command(config_path.resolve(), extra_args),
        secrets,
        links=links,
        peers=resolved,
    )
    if config.mode is Mode.HYBRID:
        sessions = exabgp_config.link_sessions(config, links, resolved.asn)
    else:
        sessions = exabgp_config.sessions(config, resolved)
    assert resolved.router_id is not None  # render raised otherwise
    in_force = sessions_file.InForce(resolved.asn, resolved.router_id, sessions)
    sessions_file.save(paths.exabgp_sessions, in_force)
    exabgp_config.write_private(paths.exabgp_config, text)
    journal.remove(paths.journal)  # a fresh ExaBGP holds no route
    return paths.exabgp_config


def resolve(config: Config, node: Node | None) -> ResolvedPeers:
    """This node's peers from the config, ``node`` and its addresses now; each problem logged
    (the agent keeps resolving as they change)."""
    resolved = exabgp_config.resolve(config, node, node_addresses(config))
    for problem in resolved.problems:
        log.warning(
            "peer entry not usable on this node", entry=problem.path, problem=problem.message
        )
    for unused in resolved.unused:
        log.info("peer entry not used on this node", entry=unused.path, reason=unused.message)
    return resolved


def node_addresses(config: Config) -> NodeAddresses:
    """Numbered mode: the node's addresses and gateways now (none if netlink fails: the agent
    keeps watching them)."""
    if config.mode is not Mode.NUMBERED:
        return NodeAddresses()
    from cosmolet.netlink.addresses import snapshot as addresses

    try:
        return addresses()
    except Exception as error:  # netlink unavailable: the agent will retry
        log.warning("reading the node's addresses failed; the agent will retry", error=str(error))
        return NodeAddresses()


def discovered_links(config: Config) -> set[Link]:
    """Hybrid mode: the switches already discovered (none yet is fine: the agent keeps
    watching, and reloads ExaBGP when they appear)."""
    if config.mode is not Mode.HYBRID:
        return set()
    try:
        links, missing = snapshot(config.bgp.interfaces)
    except Exception as error:  # netlink unavailable: the agent will retry
        log.warning("neighbor discovery failed; the agent will keep trying", error=str(error))
        return set()
    if missing:
        log.warning("fabric interfaces not present (used when they appear)", interfaces=missing)
    if not links:
        log.info("no fabric neighbor yet: ExaBGP starts without one and the agent waits")
    return links


def read_node(name: str, objects: str | None, kubeconfig: str | None) -> Node | None:
    """This node's Node object, read once before ExaBGP starts: from the objects file, else
    from the API server. ``None`` when it cannot be read (logged): ExaBGP starts with the peers
    the config gives without it, and the agent reloads once it has listed the Node (resetting
    every session if its ASN or router id differ)."""
    if objects is not None:
        from cosmolet.engine.objects import decode_all
        from cosmolet.sources.objects_file import ObjectsFileError, load_documents

        try:
            records, _ = decode_all(load_documents(objects))
        except ObjectsFileError as error:
            log.warning("cannot read this node's Node from the objects file", error=str(error))
            return None
        return next((r for r in records if isinstance(r, Node) and r.metadata.name == name), None)
    from cosmolet.kube.node import NodeReadError
    from cosmolet.kube.node import read_node as from_api

    try:
        return from_api(kubeconfig, name)
    except NodeReadError as error:
        log.warning(
            "cannot read this node's Node: starting with the peers the config gives without "
            "its labels and annotations; the agent reloads ExaBGP once it has it",
            error=str(error),
        )
        return None


def supervise(config: Config, conf: Path) -> int:
    """Run ExaBGP until it exits; translate SIGTERM/SIGINT according to ``shutdown.mode``."""
    # cosmolet's ExaBGP settings, unless the operator set one explicitly (``exabgp.*``).
    env = {**exabgp_config.environment(), **os.environ}
    process = subprocess.Popen(
        [sys.executable, "-m", "cosmolet.exabgp.launch", "server", str(conf)], env=env
    )
    stopping = threading.Event()

    def stop_exabgp() -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)

    def drain_then_stop() -> None:
        pid_file = RuntimePaths(config.runtime_dir).agent_pid
        try:
            os.kill(int(pid_file.read_text().strip()), signal.SIGUSR1)
            log.info("drain: routes withdrawn, waiting", seconds=config.shutdown.drain_seconds)
            time.sleep(config.shutdown.drain_seconds)
        except (OSError, ValueError) as error:
            log.warning("drain: could not signal the agent; stopping now", error=str(error))
        stop_exabgp()

    def on_signal(signum: int, _frame: Any) -> None:
        if stopping.is_set():
            stop_exabgp()  # a second signal: stop now
            return
        stopping.set()
        log.info("stopping", signal=signal.Signals(signum).name, mode=config.shutdown.mode)
        if config.shutdown.mode == "withdraw":
            threading.Thread(target=drain_then_stop, daemon=True).start()
        else:
            stop_exabgp()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    log.info("exabgp started", pid=process.pid, config=str(conf))
    return process.wait()
