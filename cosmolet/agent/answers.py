"""ExaBGP's answers to our commands, matched to the lines that caused them; and the stdin thread.

With ``exabgp.api.ack`` on, ExaBGP writes ``done`` or ``error`` on our stdin after each command
line. A line it refuses (no neighbor matches, a route it cannot parse, a failure inside it) is
otherwise only logged by ExaBGP, while the agent would go on claiming its routes. The answers
carry no reference to their command, so they are matched by order, with the two exceptions
ExaBGP 5.0.15 has (``reactor/api/command``):

- route commands are answered when the reactor has run them, in the order they were read; but
  an End-of-RIB for a session that is not established is refused at once, ahead of earlier
  commands still queued. Such a session was reported down (or never up) on the same stream,
  before the refusal: an ``error`` goes to the first pending End-of-RIB of a session last seen
  not established, if there is one, and to the oldest pending command otherwise;
- ``reload`` is answered at once too, but its ``done`` follows ``reload in progress``
  immediately, so it is recognised and matched to the pending reload.

Misattribution is left only in races (an End-of-RIB read just as its session came back), and it
errs towards re-sending: a wrongly blamed route line is re-announced by the next plan. Answers
from a previous agent's lines (ExaBGP respawned us while it still had work queued) find the
queue empty or shift it until it next drains; the queue drains after every batch.
"""

from __future__ import annotations

import queue
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from cosmolet import logs
from cosmolet.agent.inputs import Event, Refused, Stop
from cosmolet.exabgp import api as exabgp_api
from cosmolet.exabgp import shown
from cosmolet.exabgp.api import Answer, Command, CommandKind, PeerEvent, PeerState

log = logs.get("cosmolet.agent")

UNMATCHED = "unmatched"


class Answers:
    """The commands written and not answered yet, oldest first; shared by the reconciler (which
    adds each command before writing it) and the stdin thread (which matches the answers)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: deque[Command] = deque()
        self._not_established: set[tuple[str, str]] = set()  # (peer, local), from the stream
        self._reloading = False
        #: the command the last answer was matched to (read by the stdin thread, which answers)
        self.last: Command | None = None
        #: refused commands by kind (``unmatched``: an error with nothing pending)
        self.refused: Counter[str] = Counter()

    def expect(self, commands: Iterable[Command]) -> None:
        with self._lock:
            self._pending.extend(commands)

    def forget(self) -> None:
        """A write failed part-way: which lines reached ExaBGP is unknown."""
        with self._lock:
            self._pending.clear()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def observe(self, event: PeerEvent) -> None:
        """A session state change, seen in stream order with the answers."""
        with self._lock:
            if event.state is PeerState.UP:
                self._not_established.discard((event.peer, event.local))
            else:
                self._not_established.add((event.peer, event.local))

    def answer(self, answer: Answer) -> Command | None:
        """Match one answer; returns the command ExaBGP refused, if it was one."""
        with self._lock:
            if answer is Answer.RELOADING:
                self._reloading, self.last = True, None
                return None
            if self._reloading:  # a reload's own answer, written right after its notice
                self._reloading = False
                self.last = self._take(lambda command: command.kind is CommandKind.RELOAD)
                return None
            command = self._take(self._refused_at_once) if answer is Answer.ERROR else None
            if command is None and self._pending:
                command = self._pending.popleft()
            self.last = command
            if answer is not Answer.ERROR:
                return None
            self.refused[UNMATCHED if command is None else str(command.kind)] += 1
            return command

    def _refused_at_once(self, command: Command) -> bool:
        session = command.session
        return (
            command.kind is CommandKind.EOR
            and session is not None
            and any(session.reports(peer, local) for peer, local in self._not_established)
        )

    def _take(self, wanted: Callable[[Command], bool]) -> Command | None:
        """Remove and return the first pending command ``wanted`` is true of."""
        for index, command in enumerate(self._pending):
            if wanted(command):
                del self._pending[index]
                return command
        return None


class AnswersCollector(Collector):
    """``cosmolet_exabgp_command_errors_total``: command lines ExaBGP answered ``error``."""

    def __init__(self, answers: Answers) -> None:
        self.answers = answers

    def collect(self) -> Iterator[CounterMetricFamily]:
        errors = CounterMetricFamily(
            "cosmolet_exabgp_command_errors",
            "Command lines ExaBGP refused (answered error), by kind: announce, withdraw, eor, "
            "reload, show, or unmatched (an error while no command was pending).",
            labels=["kind"],
        )
        refused = self.answers.refused.copy()
        for kind in [*CommandKind, UNMATCHED]:
            errors.add_metric([str(kind)], refused.get(str(kind), 0))
        yield errors


def read_stdin(stream: TextIO, events: queue.Queue[Event], answers: Answers | None) -> None:
    """The stdin thread: ExaBGP's events to the queue, its answers matched (a refused command
    queued as ``Refused``); EOF means ExaBGP is gone. It never blocks on the queue, so ExaBGP,
    which blocks writing to a full pipe, is never held up by it."""
    blocks = shown.NeighborBlocks()
    try:
        for line in stream:
            answer = exabgp_api.parse_answer(line)
            if answer is not None:
                refused = answers.answer(answer) if answers is not None else None
                if answers is not None and answers.last is shown.SHOW_NEIGHBORS:
                    events.put(blocks.finish(complete=refused is None))
                    continue
                if refused is not None:
                    events.put(Refused(refused))
                elif answer is Answer.ERROR:
                    log.warning("ExaBGP refused a command, which cannot be told apart")
                continue
            if blocks.feed(line):  # ``show neighbor configuration``, asked to check a reload
                continue
            event = exabgp_api.parse_event(line)
            if isinstance(event, PeerEvent) and answers is not None:
                answers.observe(event)
            if event is not None:
                events.put(event)
    except (OSError, ValueError) as error:
        log.warning("reading ExaBGP events failed", error=str(error))
    events.put(Stop("ExaBGP closed our stdin"))
