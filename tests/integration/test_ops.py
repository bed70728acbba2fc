"""Health, readiness and metrics of a running agent, with real ExaBGP and a real FRR leaf."""

from __future__ import annotations

import json

from prometheus_client.parser import text_string_to_metric_families

from lab.netns import Namespace, wait_for
from lab.node import http_get
from lab.numbered import NumberedFabric
from tests.integration.conftest import sample
from tests.integration.test_speaker_numbered import BASE


def metric(ns: Namespace, name: str, **labels: str) -> float:
    _, text = http_get(ns, "/metrics")
    for family in text_string_to_metric_families(text):
        for sample_ in family.samples:
            if sample_.name == name and all(sample_.labels.get(k) == v for k, v in labels.items()):
                return float(sample_.value)
    raise KeyError(name)


def test_health_readiness_and_metrics_follow_reality(fabric: NumberedFabric) -> None:
    node = fabric.cosmolet()
    node.objects_path.write_text("{ not yet")  # unreadable: nothing synced
    node.start()
    wait_for(lambda: http_get(fabric.node, "/readyz")[0] == 503, 20, what="readyz 503")
    assert "first complete list" in http_get(fabric.node, "/readyz")[1]
    assert http_get(fabric.node, "/healthz")[0] == 200

    node.set_objects(BASE)
    wait_for(lambda: http_get(fabric.node, "/readyz")[0] == 200, 10, what="readyz 200")
    fabric.wait_rib({"10.96.0.10/32", "10.96.0.11/32"})
    wait_for(lambda: metric(fabric.node, "cosmolet_bgp_session_up", peer=fabric.LEAF_V4) == 1, 10)

    # The route gauge matches what the leaf actually received from us.
    received = fabric.frr.json("show bgp ipv4 unicast summary json")["peers"][fabric.NODE_V4][
        "pfxRcd"
    ]
    advertised = metric(
        fabric.node, "cosmolet_routes_advertised", peer=fabric.LEAF_V4, family="ipv4"
    )
    assert advertised == received == 2

    # The leaf goes away: the session gauge drops to 0, /healthz stays 200 throughout.
    fabric.frr.stop("bgpd")
    wait_for(lambda: metric(fabric.node, "cosmolet_bgp_session_up", peer=fabric.LEAF_V4) == 0, 20)
    assert all(code == 200 for code, _ in sample(lambda: http_get(fabric.node, "/healthz"), 3, 0.5))
    status = json.loads(http_get(fabric.node, "/status")[1])
    assert {p["address"]: p["state"] for p in status["peers"]}[fabric.LEAF_V4] == "down"
