"""What a Service's EndpointSlices say to the engine: per IP family, is there an endpoint
kube-proxy would forward to anywhere and on this node, and how many on this node (the weight of
a Local traffic policy's routes under weighted ECMP).

kube-proxy (``CategorizeEndpoints``, KEP-1669) uses the ready endpoints, and only when there is
none the serving terminating ones; it does so for the whole cluster and, for a Local traffic
policy, for this node's endpoints alone. So a set is non-empty exactly when some endpoint is
ready or serving-and-terminating, and this node's count is its ready endpoints, or when it has
none its serving terminating ones. Endpoints are counted, not slices.
"""

from __future__ import annotations

from collections.abc import Iterable

from cosmolet.engine.model import (
    HEALTH,
    NO_LOCAL,
    UNHEALTHY,
    Family,
    Health,
    LocalCounts,
    health_of,
)
from cosmolet.engine.objects import EndpointSlice

#: The EndpointSlice ``addressType`` each proxier reads. kube-proxy's dual-stack proxier hands a
#: slice to its IPv4 or IPv6 half by this field and drops any other: an FQDN slice is proxied by
#: neither. A slice without the field (the API requires it, so only a hand-written objects file
#: has one) is dropped the same way rather than guessed from its addresses, which are not decoded.
SLICE_FAMILIES = {"IPv4": Family.IPV4, "IPv6": Family.IPV6}
FAMILY_NAMES = {Family.IPV4: "IPv4", Family.IPV6: "IPv6"}

#: One slice as the builder keeps it: its ``Health`` (shared, see ``model.HEALTH``) and this
#: node's endpoints in it as one int, ``local``: the ready ones when there are any, else minus
#: the serving terminating ones. Enough to combine slices exactly (``combine``): the fallback
#: applies to the Service's endpoints of a family as a whole, not to each slice.
SliceState = tuple[Health, int]
NOTHING: SliceState = (UNHEALTHY, 0)


def slice_state(endpoint_slice: EndpointSlice, node_name: str) -> SliceState:
    """One slice's health and this node's endpoints in it (see ``SliceState``)."""
    family = SLICE_FAMILIES.get(endpoint_slice.address_type or "")
    if family is None:
        return NOTHING
    anywhere = False
    ready_here = terminating_here = 0
    for endpoint in endpoint_slice.endpoints or ():
        ready = endpoint.ready
        if ready or endpoint.serving_terminating:
            anywhere = True
            if node_name and endpoint.node_name == node_name:
                if ready:
                    ready_here += 1
                else:
                    terminating_here += 1
    if not anywhere:
        return NOTHING
    here = ready_here + terminating_here > 0
    return health_of(family, anywhere, here), ready_here or -terminating_here


def combine(states: Iterable[SliceState]) -> tuple[Health, LocalCounts]:
    """A Service's health and this node's usable endpoints per family, from its slices."""
    bits = 0
    tally: list[int] | None = None  # ready IPv4, ready IPv6, terminating IPv4, IPv6
    for slice_health, local in states:
        bits |= slice_health.bits
        if local:
            tally = tally or [0, 0, 0, 0]
            index = 0 if slice_health.here(Family.IPV4) else 1
            if local > 0:
                tally[index] += local
            else:
                tally[index + 2] -= local
    if tally is None:
        return HEALTH[bits], NO_LOCAL  # the common case: nothing allocated
    return HEALTH[bits], (tally[0] or tally[2], tally[1] or tally[3])


def endpoint_state(slices: Iterable[EndpointSlice], node_name: str) -> tuple[Health, LocalCounts]:
    """A Service's health and this node's usable endpoints per family (IPv4, IPv6)."""
    return combine([slice_state(endpoint_slice, node_name) for endpoint_slice in slices])
