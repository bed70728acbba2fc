"""A write-ahead record of the prefixes ExaBGP may be advertising on our behalf.

ExaBGP keeps no adj-RIB-out for API routes (we leave ``adj-rib-out`` off to save ~2.4 KB a
route), so when the agent alone is restarted (a crash, ``kill -9``, an upgrade of the agent) the
new agent cannot ask ExaBGP what is announced. The journal answers instead: a prefix is recorded
*before* its announce is written and removed only *after* its withdraw is written, so the journal
is always a superset of what ExaBGP holds. The new agent withdraws what the journal holds and the
plan no longer wants, and withdraws nothing else: no healthy route is ever withdrawn first.

The file is append-only (``+prefix`` / ``-prefix`` lines, unbuffered, so it survives the process
dying between two writes) and compacted by atomic rename when it grows. ``cosmolet start``
removes it, since a fresh ExaBGP holds nothing.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Iterable
from pathlib import Path


class Journal:
    """The set of prefixes possibly announced, persisted at ``path`` (``None``: memory only)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.live: set[str] = set()
        self._lines = 0
        self._fd: int | None = None

    def load(self) -> set[str]:
        """Replay the file; ignore lines that are not ``+``/``-`` and a canonical prefix (a
        host route, or an aggregate's CIDR)."""
        if self.path is None or not self.path.exists():
            return set()
        live: set[str] = set()
        for line in self.path.read_text(encoding="ascii", errors="replace").splitlines():
            op, prefix = line[:1], line[1:].strip()
            if op not in "+-" or not _is_prefix(prefix):
                continue
            if op == "+":
                live.add(prefix)
            else:
                live.discard(prefix)
        self.live = live
        self._compact()
        return set(live)

    def add(self, prefixes: Iterable[str]) -> None:
        new = [prefix for prefix in prefixes if prefix not in self.live]
        if new:
            self.live.update(new)
            self._append("".join(f"+{prefix}\n" for prefix in new), len(new))

    def discard(self, prefixes: Iterable[str]) -> None:
        gone = [prefix for prefix in prefixes if prefix in self.live]
        if gone:
            self.live.difference_update(gone)
            self._append("".join(f"-{prefix}\n" for prefix in gone), len(gone))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _append(self, text: str, count: int) -> None:
        if self.path is None:
            return
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.write(self._fd, text.encode("ascii"))
        self._lines += count
        if self._lines > 4 * len(self.live) + 4096:
            self._compact()

    def _compact(self) -> None:
        """Rewrite the file with only the live set, atomically (temp file + rename)."""
        if self.path is None:
            return
        self.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text("".join(f"+{prefix}\n" for prefix in sorted(self.live)))
        temporary.chmod(0o600)
        os.replace(temporary, self.path)
        self._lines = len(self.live)


def remove(path: Path) -> None:
    """Forget everything (a fresh ExaBGP is about to start)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _is_prefix(text: str) -> bool:
    """A prefix as the engine writes it (canonical, no host bits set)."""
    try:
        return str(ipaddress.ip_network(text, strict=True)) == text
    except ValueError:
        return False
