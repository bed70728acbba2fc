"""Structured logging (structlog) to stderr: stdout is the ExaBGP command pipe and nothing else."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class _Stderr:
    """Whatever ``sys.stderr`` is when a line is written (tests swap it; so may embedders)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(level: str = "info", fmt: str = "json") -> None:
    """Route every log line to stderr, as JSON (one object per line) or for a console.

    Until this runs, structlog's default logger prints to *stdout*; ``cosmolet.cli.main`` calls
    it before any subcommand, and again with the config's level and format once it is loaded.
    """
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        # One write per line (the line and its newline together): PrintLogger writes them apart,
        # and unbuffered (PYTHONUNBUFFERED, as in the image) ExaBGP's own stderr lines landed
        # between a JSON line and its newline in the container's log.
        logger_factory=structlog.WriteLoggerFactory(file=_Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )


def get(name: str) -> Any:
    return structlog.get_logger(name)
