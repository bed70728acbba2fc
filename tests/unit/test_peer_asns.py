"""Hybrid ``peerAsn: auto``: the AS each switch's OPEN showed survives an agent restart."""

from __future__ import annotations

import io
from pathlib import Path

from cosmolet.agent import peer_asns
from cosmolet.agent.inputs import Event, NeighborsChanged
from cosmolet.agent.journal import Journal
from cosmolet.agent.reconciler import Reconciler
from cosmolet.config.schema import validate
from cosmolet.engine.model import Link
from cosmolet.exabgp.api import PeerEvent, PeerOpen, PeerState
from tests.factories import family_slices, service
from tests.unit.test_agent import cluster

LINK = Link("eth1", "fe80::a", "fe80::1")
PREPENDED = [
    service("web", cluster_ips=("10.96.0.1",), annotations={"cosmolet.io/as-path-prepend": "1"}),
    *family_slices("web", ("10.96.0.1",)),
]


def agent(tmp_path: Path) -> tuple[Reconciler, io.StringIO]:
    config = validate(
        {
            "mode": "hybrid",
            "nodeName": "node1",
            "runtimeDir": str(tmp_path),
            "bgp": {"asn": 65001, "routerId": "192.0.2.1", "interfaces": ["eth1"]},
        }
    )
    out = io.StringIO()
    reconciler = Reconciler(config, [], out, Journal(tmp_path / "journal"))
    reconciler.handle_batch([NeighborsChanged(frozenset({LINK}))])
    return reconciler, out


def announced(reconciler: Reconciler, out: io.StringIO, *events: Event) -> list[str]:
    """The announcements of the first plan (after the first list), then of ``events``."""
    out.truncate(0)
    out.seek(0)
    reconciler.handle_batch(cluster(reconciler, objects=PREPENDED))
    reconciler.handle_batch(events)
    return [line for line in out.getvalue().splitlines() if "announce attributes" in line]


UP = PeerEvent("fe80::1", PeerState.UP, local="fe80::a")


def test_a_restarted_agent_still_knows_what_the_open_said(tmp_path: Path) -> None:
    # The first agent adds the switch to ExaBGP's configuration; its session comes up after
    # the switch's OPEN.
    first, out = agent(tmp_path)
    opened = PeerOpen("fe80::1", "fe80::a", 65100)
    assert announced(first, out, opened, UP) == [
        "neighbor fe80::1 local-ip fe80::a announce attributes next-hop fe80::a "
        "as-path [65001 65001] nlri 10.96.0.1/32"
    ]
    assert peer_asns.load(tmp_path / peer_asns.FILE) == {"fe80::1 local-ip fe80::a": 65100}
    # The agent alone restarts: ExaBGP's session stays up and sends no OPEN again.
    second, out = agent(tmp_path)
    assert announced(second, out) == [
        "neighbor fe80::1 local-ip fe80::a announce attributes next-hop fe80::a "
        "as-path [65001 65001] nlri 10.96.0.1/32"
    ]


def test_without_a_record_the_kind_is_unknown_and_prepends_wait(tmp_path: Path) -> None:
    (tmp_path / peer_asns.FILE).write_text("{not json")
    reconciler, out = agent(tmp_path)
    assert announced(reconciler, out, UP) == [
        "neighbor fe80::1 local-ip fe80::a announce attributes next-hop fe80::a nlri 10.96.0.1/32"
    ]
