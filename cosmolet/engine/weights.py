"""Weighted ECMP (UCMP): the link-bandwidth extended community a Local-policy route carries.

Under a Local traffic policy a node forwards an address's traffic only to its own endpoints, so
a node with three gets as much traffic as a node with one under plain ECMP. The route instead
carries ``count * mbpsPerEndpoint`` as a link bandwidth, and the switch (FRR: ``nexthop ...
weight N`` in the ratio of the values; it uses nothing but the ratios) splits in proportion.

The community holds an IEEE float of bytes per second, but ExaBGP 5.0.15 reads the value as an
integer (a ``.`` makes its parser take it for an IPv4 address) and refuses one above 2**32 - 1:
the value is rounded to whole bytes and capped there. With the default 1 Mbit/s per endpoint
(125,000 bytes/s) that is 34,359 endpoints on one node; past it the node's value saturates,
never fails. A leaf re-advertising the sum (``set extcommunity bandwidth cumulative``) keeps it
in 32 bits too and wraps past it (FRR), so the unit is at most 10 Mbit/s (3,435 endpoints of
one Service behind one leaf).
"""

from __future__ import annotations

import functools
from dataclasses import replace

from cosmolet.engine.model import Attributes

#: The largest value ExaBGP accepts (its parser checks the float's field as 32 bits)
MAX_LINK_BANDWIDTH = 2**32 - 1


def link_bandwidth(count: int, bytes_per_endpoint: float) -> int:
    """The community's value for ``count`` endpoints: at least 1 byte/s, at most the cap."""
    return max(1, min(MAX_LINK_BANDWIDTH, round(count * bytes_per_endpoint)))


def summed_bandwidth(values: list[int | None]) -> int | None:
    """Routes of several Local-policy Services sharing one address: the sum (kube-proxy sends
    the address's traffic to the endpoints of each of them, by port), capped; ``None`` unless
    each carries one."""
    if not values or any(value is None for value in values):
        return None
    return min(MAX_LINK_BANDWIDTH, sum(value for value in values if value is not None))


@functools.lru_cache(maxsize=4096)
def with_bandwidth(
    attributes: Attributes, count: int, bytes_per_endpoint: float | None
) -> Attributes:
    """``attributes`` with the link bandwidth of ``count`` endpoints (``bytes_per_endpoint``
    None: weighted ECMP is off, unchanged). Cached, so routes with the same count share one
    object, as the speaker's batches (one line per distinct attribute set) do."""
    if bytes_per_endpoint is None:
        return attributes
    return replace(attributes, link_bandwidth=link_bandwidth(count, bytes_per_endpoint))
