"""Cluster state from a file (``--objects``): re-read when it changes, last good plan kept.

The file source stands in for the Kubernetes watch where there is no API server (the speaker
tests, offline experiments). A file that cannot be read or parsed is logged and ignored: the
agent keeps advertising the last good plan, because a typo must never withdraw healthy routes.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from cosmolet import logs
from cosmolet.config.schema import Config
from cosmolet.engine.objects import EndpointSlice, Node, Service, decode_all
from cosmolet.sources import SourceHealth
from cosmolet.sources.objects_file import ObjectsFileError, load_documents
from cosmolet.sources.state import ClusterState

log = logs.get("cosmolet.sources.file")


class FileSource:
    """Polls a file's identity (inode, size, mtime) and emits a new plan when it changes."""

    def __init__(
        self, path: Path, config: Config, node_name: str, poll_seconds: float = 0.2
    ) -> None:
        self.path = path
        self.config = config
        self.node_name = node_name
        self.poll_seconds = poll_seconds

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return stat.st_ino, stat.st_size, stat.st_mtime_ns

    def health(self) -> SourceHealth:
        """Always alive: the file is read on the agent's thread that calls ``run``, and an
        unreadable file keeps the last good plan (logged), which a restart would not change."""
        return SourceHealth()

    def run(self, state: ClusterState, stop: threading.Event) -> None:
        last: tuple[int, int, int] | bool | None = False  # False: never read
        last_full = 0.0
        while not stop.is_set():
            signature = self._signature()
            due = time.monotonic() - last_full >= self.config.loop_interval_seconds
            if signature != last or due:
                last, last_full = signature, time.monotonic()
                self._read(state)
            stop.wait(self.poll_seconds)

    def _read(self, state: ClusterState) -> None:
        try:
            documents = load_documents(self.path)
        except ObjectsFileError as error:
            log.error("objects file unusable, keeping the last good plan", error=str(error))
            return
        records, malformed = decode_all(documents)
        with state.update() as builder:
            builder.replace_services(r for r in records if isinstance(r, Service))
            builder.replace_slices(r for r in records if isinstance(r, EndpointSlice))
            builder.set_node(
                next(
                    (
                        r
                        for r in records
                        if isinstance(r, Node) and r.metadata.name == self.node_name
                    ),
                    None,
                )
            )
            for key in list(builder.malformed):
                builder.set_malformed(key, None)
            for item in malformed:
                builder.set_malformed(f"{item.kind}:{item.key}", item)
        state.mark_synced()
