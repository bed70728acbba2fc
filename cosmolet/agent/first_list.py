"""The first list, while it pages in: what is healthy goes out at once, nothing is withdrawn.

Waiting for every page of the three lists before the first command made a cold start of 50,000
Services wait seconds for a plan that was mostly known after the first pages. Before the source
has listed everything, ``ClusterState.take_announcements`` hands over the routes wanted so far,
never a withdrawal (a half-listed cache, Services without their EndpointSlices yet, looks
unhealthy), and this module turns them into announce lines for every peer not known to be down.

What must wait for the complete list does: the End-of-RIB, which under graceful restart tells
the peer to drop every stale route not re-sent, and the withdrawal of what a previous agent may
have left in ExaBGP (the journal's prefixes). Both come with the speaker's first complete
publish (``Speaker.update_routes``), which diffs the whole desired set against what each peer
was sent here, so nothing is announced twice.
"""

from __future__ import annotations

from cosmolet.agent.report import Reconciled
from cosmolet.agent.speaker import Changes, Speaker
from cosmolet.sources.state import ClusterState

CAUSE = "first list, so far"


def announce(state: ClusterState, speaker: Speaker, dry_run: bool) -> Reconciled:
    """Announce what is healthy so far; the report carries no delta, so Kubernetes Events
    (like those of the first plan) are not posted for it."""
    routes = state.take_announcements()
    changes = speaker.announce_more(routes) if routes else Changes()
    return Reconciled(CAUSE, changes, dry_run=dry_run)
