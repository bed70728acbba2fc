"""``show neighbor configuration``, as ExaBGP 5.0.15 writes it (captured from a real one, with a
neighbor whose AS is ``auto``: ``show neighbor json`` fails on those), read back to check that a
reload took."""

from __future__ import annotations

import io
import queue
from pathlib import Path

from cosmolet.agent.answers import Answers, read_stdin
from cosmolet.agent.inputs import Event
from cosmolet.exabgp.shown import SHOW_NEIGHBORS, NeighborBlocks, NeighborsShown, ShownNeighbor

CAPTURED = (Path(__file__).parents[1] / "golden/exabgp-show-neighbor-configuration.txt").read_text()
AUTO = ShownNeighbor("127.0.0.2", "127.0.0.1", 65001, None, "10.0.0.1", 9)


def test_the_blocks_are_read_back() -> None:
    blocks = NeighborBlocks()
    assert all(blocks.feed(line) for line in CAPTURED.splitlines(keepends=True))
    assert blocks.finish() == NeighborsShown((AUTO,))
    assert blocks.finish() == NeighborsShown(())  # read once
    assert not blocks.feed("done\n") and not blocks.feed('{ "type": "state" }\n')


def test_the_stdin_thread_hands_them_over_when_the_command_is_answered() -> None:
    answers, events = Answers(), queue.Queue[Event]()
    answers.expect([SHOW_NEIGHBORS, SHOW_NEIGHBORS])
    text = CAPTURED + "done\n" + "neighbor 10.0.0.9 {\n  local-as 1;\nerror\n"
    read_stdin(io.StringIO(text), events, answers)
    found = [events.get_nowait() for _ in range(events.qsize())]
    assert found[0] == NeighborsShown((AUTO,))
    # Refused part-way (or without acks to end it): incomplete, so the reload is sent again.
    assert found[1] == NeighborsShown((), complete=False)
