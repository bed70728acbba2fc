"""Where the cluster state comes from: the Kubernetes watch (``kube``) or an objects file
(``file``). Both write the same typed records into the same ``ClusterState`` (``state``), and
both answer ``health()`` so that ``/healthz`` can tell a dead source from a quiet one.

The agent depends on the ``Source`` protocol only; a source never imports the agent.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from cosmolet.sources.state import ClusterState


@dataclass(frozen=True)
class ApiHealth:
    """The API server as the watches see it (only a source that has one reports it)."""

    synced: bool = False
    connected: bool = False
    lost_for_s: float = 0.0
    relists: int = 0
    watch_restarts: int = 0
    errors: int = 0


@dataclass(frozen=True)
class SourceHealth:
    """Is the source still working? ``alive`` is false only when a restart would help (one of
    its threads died); an unreachable API server is not that, it is in ``api``."""

    alive: bool = True
    reason: str = "ok"
    api: ApiHealth | None = None


class Source(Protocol):
    """Fills a ``ClusterState`` until ``stop`` is set; marks it synced after the first complete
    list. ``run`` may raise: the agent logs it and calls ``run`` again after a pause, and the
    source must then not leave threads of the previous run behind."""

    def run(self, state: ClusterState, stop: threading.Event) -> None: ...

    def health(self) -> SourceHealth: ...
