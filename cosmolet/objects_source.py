"""Cluster state from a file (``--objects``): re-read when it changes, last good plan kept.

The file source stands in for the Kubernetes watch where there is no API server (the speaker
tests, offline experiments). A file that cannot be read or parsed is logged and ignored: the
agent keeps advertising the last good plan, because a typo must never withdraw healthy routes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cosmolet import logs
from cosmolet.config import Config
from cosmolet.objects_file import ObjectsFileError, load_documents
from cosmolet.routes import Plan, plan_from_documents

PlanSink = Callable[[Plan, float], None]

log = logs.get("cosmolet.objects_source")


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

    def run(self, emit: PlanSink, stop: threading.Event) -> None:
        last: tuple[int, int, int] | bool | None = False  # False: never read
        last_full = 0.0
        while not stop.is_set():
            signature = self._signature()
            due = time.monotonic() - last_full >= self.config.loop_interval_seconds
            if signature != last or due:
                last, last_full = signature, time.monotonic()
                self._read(emit)
            stop.wait(self.poll_seconds)

    def _read(self, emit: PlanSink) -> None:
        started = time.monotonic()
        try:
            documents = load_documents(self.path)
        except ObjectsFileError as error:
            log.error("objects file unusable, keeping the last good plan", error=str(error))
            return
        emit(plan_from_documents(self.config, self.node_name, documents), started)
