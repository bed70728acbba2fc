"""Build information, for ``/version``, the ``cosmolet_build`` metric and ``--version``."""

from __future__ import annotations

import os
import platform
from importlib.metadata import version

from cosmolet import __version__


def version_info() -> dict[str, str]:
    """What ``/version`` answers."""
    return {
        "version": __version__,
        "gitCommit": os.environ.get("COSMOLET_GIT_COMMIT", "unknown"),
        "exabgp": exabgp_version(),
        "python": platform.python_version(),
    }


_EXABGP_VERSION: str | None = None


def exabgp_version() -> str:
    """The installed ExaBGP's version (read once)."""
    global _EXABGP_VERSION
    if _EXABGP_VERSION is None:
        try:
            _EXABGP_VERSION = version("exabgp")
        except Exception:
            _EXABGP_VERSION = "unknown"
    return _EXABGP_VERSION
