"""The API server down for 60 s, then back with its history compacted (every rewatch gets 410
Gone and relists): no route is withdrawn while it is down, /readyz stays 200 and says why, and
after the relist the only UPDATE is for the one Service that changed during the outage."""

from __future__ import annotations

import json

from lab.netns import wait_for
from lab.node import http_get
from tests.faults.conftest import Faulty, ip
from tests.integration.conftest import sample

OUTAGE_SECONDS = 60


def test_api_server_down_60_s_then_back_compacted(faulty: Faulty) -> None:
    expected = faulty.expected()
    sample(lambda: None, 1.0, 0.1)  # the last UPDATEs settle
    before = faulty.fabric.updates_received(faulty.fabric.NODE_V4)

    faulty.server.terminate()
    assert faulty.server.wait(10) == 0  # it saved its objects
    samples = sample(faulty.leaf_fib, OUTAGE_SECONDS / 2, 0.02)
    code, body = http_get(faulty.fabric.node, "/readyz")
    assert code == 200 and "API server unreachable" in body, body

    # Meanwhile the cluster moved on: one Service lost its endpoints (as if written by others
    # while this node could not see the API server).
    state = json.loads(faulty.state.read_text())
    for obj in state["objects"]:
        if obj["kind"] == "EndpointSlice" and obj["metadata"]["name"] == "s7-abcde":
            obj["endpoints"][0]["conditions"]["ready"] = False
    faulty.state.write_text(json.dumps(state))
    faulty.ready[ip(7)] = False
    samples += sample(faulty.leaf_fib, OUTAGE_SECONDS / 2, 0.02)

    assert all(fib == expected for fib in samples), "a route changed while the API was down"
    assert faulty.fabric.updates_received(faulty.fabric.NODE_V4) == before

    faulty.start_apiserver()  # same port, same objects, no history: 410 on every rewatch
    faulty.converged()
    wait_for(
        lambda: sum(line.get("event") == "listed" for line in faulty.node.logs()) >= 6,
        40,
        what="every kind relisted after the outage",
    )
    sample(lambda: None, 2.0, 0.1)
    assert faulty.fabric.updates_received(faulty.fabric.NODE_V4) == before + 1
