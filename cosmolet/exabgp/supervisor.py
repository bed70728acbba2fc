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
from cosmolet.exabgp import config as exabgp_config
from cosmolet.hybrid.neighbors import snapshot
from cosmolet.paths import RuntimePaths

log = logs.get("cosmolet.exabgp.supervisor")


def agent_command(config_path: Path, extra: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "cosmolet", "agent", "--config", str(config_path), *extra]


def prepare(config: Config, config_path: Path, extra_args: Sequence[str]) -> Path:
    """Render ExaBGP's config into the runtime directory and forget any old journal.

    Raises:
        exabgp_config.RenderError: naming the field that cannot be rendered.
    """
    paths = RuntimePaths(config.runtime_dir)
    secrets = exabgp_config.read_secrets(config)
    links = discovered_links(config)
    text = exabgp_config.render(
        config, agent_command(config_path.resolve(), extra_args), secrets, links=links
    )
    exabgp_config.write_private(paths.exabgp_config, text)
    journal.remove(paths.journal)  # a fresh ExaBGP holds no route
    return paths.exabgp_config


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
