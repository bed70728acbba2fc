"""A command line ExaBGP answered ``error`` (``Refused``): what the reconciler does with it,
kept out of the reconciler's loop module."""

from __future__ import annotations

from cosmolet import logs
from cosmolet.agent.inputs import Refused
from cosmolet.agent.journal import Journal
from cosmolet.agent.speaker import Speaker
from cosmolet.exabgp.api import CommandKind

log = logs.get("cosmolet.agent")


def on_refused(event: Refused, speaker: Speaker, journal: Journal) -> None:
    """ExaBGP refused a line: never claim what it carried, and let the next plan retry it
    (the prefixes stay in the journal: a refused withdraw leaves them in ExaBGP)."""
    command = event.command
    session = command.session.name if command.session else None
    if command.kind not in {CommandKind.ANNOUNCE, CommandKind.WITHDRAW}:
        log.warning("ExaBGP refused a command", kind=str(command.kind), peer=session)
        return
    journal.add(speaker.rejected(command))
    log.error(
        "ExaBGP refused routes; they are not counted as advertised, and the next plan retries them",
        kind=str(command.kind),
        peer=session,
        prefixes=list(command.prefixes[:20]),
        count=len(command.prefixes),
    )
