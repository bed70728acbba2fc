"""The mass-withdraw brake (``services.withdrawBrake``): withdrawals of most of what a node
advertises, all at once, are held for ``holdSeconds`` before they are sent.

An emptied namespace, a broken controller scaling everything to zero, an etcd restored from an
old backup: the API server says most Services lost their endpoints, and every node withdraws
every address within a second, an outage of the whole cluster's ingress. The brake turns that
into a pause: the withdrawals of a reconcile that would take more than ``maxFraction`` of the
advertised routes are held (the routes stay advertised); if the state still wants them gone
when ``holdSeconds`` have passed they go, and if it recovers meanwhile nothing was withdrawn.

"At once" is a sliding ``WINDOW_SECONDS``: the watch delivers an emptied namespace as a burst of
EndpointSlice updates that the reconciler may take in several turns, so withdrawals sent within
the window count towards the fraction (of what was advertised when the window began). Once the
brake is engaged, every further withdrawal it would count joins the hold until it ends. Fewer
than ``minRoutes`` withdrawals in the window never engage it: on a node advertising a handful of
routes, losing most of them is a routine change, not a mass withdrawal.

What is not braked is decided by the caller: withdrawals of Services that were deleted (the
owner asked; one held already goes as soon as its Services are all deleted), and everything
while the node itself stops advertising (a drain, an exclusion, a cordon, the data-plane gate,
the API server lost), which also releases what is held at once.

Pure and clock-free: the reconciler passes the time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from cosmolet.config.services import WithdrawBrake
from cosmolet.engine.model import Delta, Route

WINDOW_SECONDS = 10.0


@dataclass(frozen=True)
class Engaged:
    """The brake caught a mass withdrawal: what ``/status``, the log and the Event say."""

    held: int  # withdrawals held by this engagement
    advertised: int  # routes advertised when the window began
    fraction: float
    until: float  # monotonic time the hold ends


@dataclass(frozen=True)
class BrakeView:
    max_fraction: float
    hold_seconds: float
    held: int  # withdrawals held now
    until: float | None  # when they are released, while engaged
    engagements: int  # times the brake engaged since the start
    released: int  # withdrawals sent when a hold ended (the state still said so)
    recovered: int  # held withdrawals the state took back within the hold


class Brake:
    def __init__(self, config: WithdrawBrake, window: float = WINDOW_SECONDS) -> None:
        self.max_fraction = float(config.max_fraction)
        self.hold_seconds = float(config.hold_seconds)
        self.min_routes = config.min_routes
        self.window = window
        self.held: set[str] = set()
        self.until: float | None = None
        self.recent: deque[tuple[float, int]] = deque()  # (when, withdrawals sent)
        self.engagements = 0
        self.released = 0
        self.recovered = 0

    def filter(
        self,
        delta: Mapping[str, Route | None],
        advertised: Collection[str],
        exempt: Collection[str],
        now: float,
        *,
        may_engage: bool = True,
    ) -> tuple[Delta, Engaged | None]:
        """The part of ``delta`` to send now, and the engagement if this one engaged the brake.

        ``advertised``: the prefixes advertised now; ``exempt``: withdrawals never braked (their
        Services were deleted); ``may_engage`` False (the API server unreachable) lets this
        delta's withdrawals through, though a hold already running keeps what it holds."""
        out: Delta = {}
        candidates: list[str] = []
        for prefix, route in delta.items():
            if route is not None:
                if prefix in self.held:
                    self.held.discard(prefix)
                    self.recovered += 1
                out[prefix] = route
            elif prefix in advertised and prefix not in exempt and prefix not in self.held:
                candidates.append(prefix)
            elif prefix not in self.held:
                out[prefix] = None
        while self.recent and now - self.recent[0][0] > self.window:
            self.recent.popleft()
        engaged = None
        if candidates and self.until is not None:
            self.held.update(candidates)
        elif candidates and may_engage:
            sent = sum(count for _when, count in self.recent)
            base = len(advertised) + sent
            count = len(candidates) + sent
            fraction = count / base
            if fraction > self.max_fraction and count >= self.min_routes:
                self.held.update(candidates)
                self.until = now + self.hold_seconds
                self.engagements += 1
                engaged = Engaged(len(candidates), base, fraction, self.until)
        if candidates and engaged is None and self.until is None:
            self.recent.append((now, len(candidates)))
            out.update(dict.fromkeys(candidates))
        if self.until is not None and not self.held:
            self.until = None  # everything held came back
        return out, engaged

    def due(self, now: float) -> Delta:
        """The held withdrawals, once the hold has ended (the state still wanted them)."""
        if self.until is None or now < self.until:
            return {}
        return self.release(counted=True)

    def forget(self, prefixes: Collection[str]) -> Delta:
        """Stop holding ``prefixes`` (their Services were deleted meanwhile): withdraw them now.
        Not counted as released: the owner asked, as for a deletion never braked."""
        out: Delta = dict.fromkeys(sorted(self.held.intersection(prefixes)))
        self.held.difference_update(out)
        if not self.held:
            self.until = None
        return out

    def release(self, *, counted: bool = False) -> Delta:
        """Everything held, now (the node stops advertising anyway, or the hold ended)."""
        out: Delta = dict.fromkeys(sorted(self.held))
        if counted:
            self.released += len(out)
        self.held.clear()
        self.until = None
        self.recent.clear()
        return out

    def view(self) -> BrakeView:
        return BrakeView(
            self.max_fraction,
            self.hold_seconds,
            len(self.held),
            self.until,
            self.engagements,
            self.released,
            self.recovered,
        )


def brake_json(view: BrakeView | None, now: float) -> dict[str, object] | None:
    """``/status``'s ``withdrawBrake``: ``None`` when the brake is off."""
    if view is None:
        return None
    return {
        "maxFraction": view.max_fraction,
        "holdSeconds": view.hold_seconds,
        "engaged": view.until is not None,
        "heldWithdrawals": view.held,
        "releasesInSeconds": None if view.until is None else round(max(0.0, view.until - now), 1),
        "engagements": view.engagements,
        "released": view.released,
        "recovered": view.recovered,
    }
