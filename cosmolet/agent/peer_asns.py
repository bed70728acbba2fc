"""The ASes of ``auto`` peers, as their OPENs showed them, kept in the runtime directory.

ExaBGP reports a peer's OPEN once per session. When the agent alone restarts (a crash, an
upgrade), the sessions stay up and no OPEN comes again: without this record every ``auto`` peer
would be of unknown kind until it next flapped, and its prepends withheld. A record from an
earlier ExaBGP (``cosmolet start`` keeps the directory) is only a first guess: each session's
OPEN comes before its UP, whose re-assertion carries what the OPEN said.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from cosmolet import logs

log = logs.get("cosmolet.agent")

FILE = "peer-asns.json"


def load(path: Path) -> dict[str, int]:
    """ExaBGP neighbor selector -> AS; empty when there is no usable record."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        log.warning("ignoring the record of peer ASes", path=str(path), error=str(error))
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        key: value
        for key, value in data.items()
        if isinstance(key, str) and type(value) is int and 0 < value < 2**32
    }


def save(path: Path, asns: Mapping[str, int]) -> None:
    """Replace the record atomically; a failure is logged (the record is only an optimisation
    of the next restart)."""
    temporary = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(dict(sorted(asns.items()))), encoding="utf-8")
        os.replace(temporary, path)
    except OSError as error:
        log.warning("cannot record peer ASes", path=str(path), error=str(error))
