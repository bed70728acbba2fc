"""Flap hold: a prefix that went away a moment ago comes back only once it has stayed wanted.

A Service whose endpoints flap between ready and not ready would otherwise make this node send an
UPDATE per flip, and every router in the fabric reprogram its FIB each time. Withdrawals are
never delayed (sending traffic to a Service with no ready endpoint is the worse failure); a
prefix withdrawn less than ``riseSeconds`` ago is re-announced only after it has been wanted
for ``riseSeconds`` without a break. A prefix that stayed away longer, or was never advertised,
is announced at once, so a normal recovery or a new Service pays nothing.

That bounds each prefix to one announcement (and so two UPDATEs) per ``riseSeconds``: between
two announcements lies either a withdrawal that lasted ``riseSeconds`` or a hold of as long.
Pure: the reconciler passes the clock and releases what is due.
"""

from __future__ import annotations

from collections.abc import Container, Mapping

from cosmolet.engine.model import Delta, Route


class RiseHold:
    def __init__(self, rise_seconds: float) -> None:
        self.rise = rise_seconds
        #: prefix -> when it last stopped being wanted (kept for ``rise`` seconds)
        self.down_at: dict[str, float] = {}
        #: prefix -> (the route to announce, since when it has been wanted)
        self.held: dict[str, tuple[Route, float]] = {}

    def filter(
        self, delta: Mapping[str, Route | None], advertised: Container[str], now: float
    ) -> Delta:
        """The part of ``delta`` to send now; the rest is held. ``advertised``: the prefixes
        the speaker currently wants advertised (after every earlier delta this returned)."""
        out: Delta = {}
        for prefix, route in delta.items():
            if route is None:
                if self.held.pop(prefix, None) is not None:
                    self.down_at[prefix] = now  # never announced: nothing to withdraw
                    continue
                if prefix in advertised:
                    self.down_at[prefix] = now
                out[prefix] = None
            elif prefix in advertised:
                out[prefix] = route  # new attributes of an advertised route: not a flap
            elif prefix in self.held:
                self.held[prefix] = (route, self.held[prefix][1])
            elif self.rise > 0 and now - self.down_at.get(prefix, float("-inf")) < self.rise:
                self.held[prefix] = (route, now)
            else:
                out[prefix] = route
        return out

    def release(self, now: float) -> Delta:
        """Held prefixes that have now been wanted for ``rise`` seconds."""
        due: Delta = {p: r for p, (r, since) in self.held.items() if now - since >= self.rise}
        for prefix in due:
            del self.held[prefix]
        if self.down_at:
            self.down_at = {p: t for p, t in self.down_at.items() if now - t < self.rise}
        return due

    def next_release(self) -> float | None:
        """When the earliest held prefix is due (monotonic seconds), or None."""
        if not self.held:
            return None
        return min(since for _route, since in self.held.values()) + self.rise

    def clear(self) -> None:
        self.held.clear()
