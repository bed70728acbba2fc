"""The files cosmolet keeps in its runtime directory (``runtimeDir``, ``/run/cosmolet``), named
in one place: ``cosmolet start`` writes some, the agent others, and each reads the other's."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RuntimePaths:
    root: Path

    @property
    def exabgp_config(self) -> Path:
        """ExaBGP's configuration, rendered by ``start`` and re-rendered by the agent."""
        return self.root / "exabgp.conf"

    @property
    def exabgp_sessions(self) -> Path:
        """The sessions that configuration defines, as the agent addresses them: written with
        it (by ``start``, then by the agent), read by an agent that starts, so that ExaBGP's
        first events find their sessions known."""
        return self.root / "exabgp-sessions.json"

    @property
    def journal(self) -> Path:
        """The write-ahead record of announced prefixes (``cosmolet.agent.journal``)."""
        return self.root / "advertised.journal"

    @property
    def agent_pid(self) -> Path:
        """The agent's pid, for ``start`` to signal a drain (SIGUSR1)."""
        return self.root / "agent.pid"
