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
    def journal(self) -> Path:
        """The write-ahead record of announced prefixes (``cosmolet.agent.journal``)."""
        return self.root / "advertised.journal"

    @property
    def agent_pid(self) -> Path:
        """The agent's pid, for ``start`` to signal a drain (SIGUSR1)."""
        return self.root / "agent.pid"
