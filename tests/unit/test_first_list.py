"""The first list, streamed: each page's healthy Services are announced before the lists are
complete, and nothing is withdrawn (neither a route nor a journal-restored prefix) and no
End-of-RIB sent until they are."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from cosmolet.agent.inputs import Event
from cosmolet.agent.journal import Journal
from cosmolet.agent.reconciler import Reconciler
from cosmolet.config.schema import validate
from cosmolet.engine.builder import PlanBuilder
from cosmolet.engine.objects import EndpointSlice, Node, Service, decode_object
from cosmolet.exabgp.api import PeerEvent, PeerState
from cosmolet.exabgp.config import sessions
from cosmolet.sources.sinks import NodeSink, ServiceSink, SliceSink
from tests.factories import config_dict, node, service, slice_

CONFIG = validate(config_dict())
ANNOUNCE = "neighbor 192.0.2.0 announce attributes next-hop self nlri"
WITHDRAW = "neighbor 192.0.2.0 withdraw attributes next-hop self nlri"
EOR = "neighbor 192.0.2.0 announce eor ipv4 unicast"


class Lists:
    """An agent fed page by page through the Kubernetes source's sinks."""

    def __init__(self, tmp_path: Path, config: Any = CONFIG) -> None:
        self.out = io.StringIO()
        self.agent = Reconciler(config, sessions(config), self.out, Journal(tmp_path / "j"))
        state = self.agent.state
        self.services, self.slices = ServiceSink(state, False), SliceSink(state)
        self.node = NodeSink(state)

    def node_listed(self, labels: dict[str, str] | None = None) -> None:
        record = decode_object(node(labels=labels))
        assert isinstance(record, Node)
        self.node.upsert([("node1", record)])
        self.node.prune({"node1"})

    def page(self, *ips: str, slices: bool = True) -> None:
        """One page of each list: a Service per address and, with ``slices``, its slice."""
        services, endpoint_slices = [], []
        for ip in ips:
            name = "s" + ip.replace(".", "-")
            record = decode_object(service(name, cluster_ips=(ip,)))
            assert isinstance(record, Service)
            services.append((record.key, record))
            if slices:
                piece = decode_object(slice_(name))
                assert isinstance(piece, EndpointSlice)
                endpoint_slices.append((piece.key, piece))
        self.services.upsert(services)  # type: ignore[arg-type]
        self.slices.upsert(endpoint_slices)  # type: ignore[arg-type]

    def run(self, *extra: Event) -> list[str]:
        """Handle what was queued; the lines written since the last call."""
        events: list[Event] = list(extra)
        while not self.agent.events.empty():
            events.append(self.agent.events.get())
        before = len(self.out.getvalue().splitlines())
        self.agent.handle_batch(events)
        return self.out.getvalue().splitlines()[before:]


def test_pages_go_out_before_the_lists_are_complete(tmp_path: Path) -> None:
    Journal(tmp_path / "j").add(["10.96.9.9/32"])  # a previous agent's prefix
    lists = Lists(tmp_path)
    lists.page("10.96.0.1")
    assert lists.run() == [], "nothing before this node's own state is known"
    lists.node_listed()
    assert lists.run() == [f"{ANNOUNCE} 10.96.0.1/32"]
    lists.page("10.96.0.2", "10.96.0.3", slices=False)  # their slices are on a later page
    assert lists.run() == []
    lists.page("10.96.0.2", "10.96.0.4")
    assert lists.run() == [f"{ANNOUNCE} 10.96.0.2/32 10.96.0.4/32"]
    assert not lists.agent.first_sent, "/readyz waits for the complete list"

    # Gone before the lists end: not withdrawn yet (nothing is, before they are complete).
    lists.services.prune({"default/s10-96-0-1", "default/s10-96-0-2", "default/s10-96-0-3"})
    assert lists.run() == []

    lists.agent.state.mark_synced()
    # The complete plan: only what is left to do; what went out is not sent again.
    assert lists.run() == [f"{WITHDRAW} 10.96.0.4/32 10.96.9.9/32"]
    assert lists.agent.first_sent
    assert Journal(tmp_path / "j").load() == {"10.96.0.1/32", "10.96.0.2/32"}


def test_the_end_of_rib_waits_for_the_complete_list(tmp_path: Path) -> None:
    lists = Lists(tmp_path)
    lists.node_listed()
    assert lists.run(PeerEvent("192.0.2.0", PeerState.UP)) == []
    lists.page("10.96.0.1")
    assert lists.run() == [f"{ANNOUNCE} 10.96.0.1/32"]
    lists.page("10.96.0.2")
    lists.agent.state.mark_synced()
    assert lists.run() == [f"{ANNOUNCE} 10.96.0.2/32", EOR]


def test_a_drained_node_announces_nothing_before_the_list_is_complete(tmp_path: Path) -> None:
    lists = Lists(tmp_path)
    lists.node_listed(labels={"node.kubernetes.io/exclude-from-external-load-balancers": ""})
    lists.page("10.96.0.1")
    assert lists.run() == []
    lists.agent.state.mark_synced()
    assert lists.run() == []


def test_over_max_routes_waits_for_the_complete_list(tmp_path: Path) -> None:
    """Which routes stay under ``maxRoutes`` (the oldest Services') only the whole list tells."""
    lists = Lists(tmp_path, validate(config_dict(maxRoutes=1)))
    lists.node_listed()
    lists.page("10.96.0.1")
    assert lists.run() == [f"{ANNOUNCE} 10.96.0.1/32"]
    lists.page("10.96.0.2")
    assert lists.run() == []


def test_the_builder_hands_over_announcements_only(tmp_path: Path) -> None:
    builder = PlanBuilder(CONFIG, "node1")
    for ip in ("10.96.0.1", "10.96.0.2"):
        name = "s" + ip.replace(".", "-")
        record = decode_object(service(name, cluster_ips=(ip,)))
        piece = decode_object(slice_(name))
        assert isinstance(record, Service) and isinstance(piece, EndpointSlice)
        builder.set_service(record.key, record)
        builder.set_slice(piece.key, piece)
    assert set(builder.take_announcements()) == {"10.96.0.1/32", "10.96.0.2/32"}
    assert builder.take_announcements() == {}
    builder.set_service("default/s10-96-0-1", None)
    assert builder.take_announcements() == {}
    # The first complete delta still compares everything: the withdrawal comes now.
    assert builder.take_delta() == {"10.96.0.1/32": None}
    assert builder.take_announcements() == {}, "only before the first complete delta"
