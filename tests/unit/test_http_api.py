"""The agent's HTTP endpoints and ``cosmolet status``, against an agent driven in-process."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cosmolet.agent import http_api
from cosmolet.agent.journal import Journal
from cosmolet.agent.metrics import Metrics, StateCollector
from cosmolet.agent.reconciler import Reconciler
from cosmolet.cli import format_status, main
from cosmolet.config.schema import validate
from cosmolet.exabgp.api import PeerEvent, PeerState
from cosmolet.exabgp.config import sessions
from tests.factories import config_dict
from tests.unit.test_agent import cluster

CONFIG = validate(config_dict())


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Reconciler, str]]:
    agent = Reconciler(CONFIG, sessions(CONFIG), io.StringIO(), Journal(tmp_path / "journal"))
    metrics = Metrics()
    metrics.registry.register(StateCollector(agent))
    agent.observers.append(metrics.observe)
    server = http_api.serve(agent, metrics.registry, "127.0.0.1", 0)
    assert server is not None
    try:
        yield agent, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_readiness_follows_sync_and_first_plan(served: tuple[Reconciler, str]) -> None:
    agent, url = served
    code, body = get(url + "/readyz")
    assert code == 503 and "first complete list" in body
    assert get(url + "/healthz")[0] == 200
    agent.handle_batch(cluster(agent, "10.96.0.1"))
    assert get(url + "/readyz") == (200, "ok\n")


def test_healthz_ignores_peers_but_not_a_stalled_loop(served: tuple[Reconciler, str]) -> None:
    agent, url = served
    agent.handle_batch([PeerEvent("192.0.2.0", PeerState.DOWN)])
    assert get(url + "/healthz")[0] == 200
    agent.heartbeat -= 1000
    code, body = get(url + "/healthz")
    assert code == 500 and "no progress" in body


def test_metrics_parse_and_match_the_state(served: tuple[Reconciler, str]) -> None:
    agent, url = served
    agent.handle_batch([PeerEvent("192.0.2.0", PeerState.UP)])
    agent.handle_batch(cluster(agent, "10.96.0.1", "10.96.0.2"))
    code, text = get(url + "/metrics")
    assert code == 200
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples["cosmolet_bgp_session_up", (("peer", "192.0.2.0"),)] == 1
    assert samples["cosmolet_routes_advertised", (("family", "ipv4"), ("peer", "192.0.2.0"))] == 2
    assert samples["cosmolet_routes_desired", (("family", "ipv4"),)] == 2
    assert samples["cosmolet_route_announcements_total", (("family", "ipv4"),)] == 2
    assert samples["cosmolet_exabgp_commands_total", ()] == 2  # a batch line and the EOR
    assert samples["cosmolet_ready", ()] == 1
    assert samples["cosmolet_event_to_command_seconds_count", ()] >= 1
    assert any(name == "cosmolet_build_info" for name, _ in samples)
    # Every metric is ours (the prefix) or a standard process/python family; no Service name or
    # prefix appears as a label.
    assert all(name.startswith(("cosmolet_", "process_", "python_")) for name, _ in samples)
    assert any(name.startswith("process_") for name, _ in samples)
    assert "10.96.0.1" not in text and "default/" not in text


def test_version_and_status(
    served: tuple[Reconciler, str], capsys: pytest.CaptureFixture[str]
) -> None:
    agent, url = served
    agent.handle_batch([PeerEvent("192.0.2.0", PeerState.UP)])
    agent.handle_batch(cluster(agent, "10.96.0.1"))
    version = json.loads(get(url + "/version")[1])
    assert set(version) == {"version", "gitCommit", "exabgp", "python"}
    status = json.loads(get(url + "/status")[1])
    assert status["ready"] is True
    assert status["peers"][0]["address"] == "192.0.2.0" and status["peers"][0]["state"] == "up"
    assert status["routes"] == [
        {
            "prefix": "10.96.0.1/32",
            "family": "ipv4",
            "services": ["default/s10-96-0-1"],
            "peers": ["192.0.2.0"],
        }
    ]
    assert main(["status", "--url", url]) == 0
    table = capsys.readouterr().out
    assert "10.96.0.1/32" in table and "192.0.2.0" in table and "ready" in table
    assert main(["status", "--url", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["node"] == "node1"
    assert "NOT READY" in format_status({"ready": False, "reason": "x", "node": "n"})


def test_status_of_an_unreachable_agent_fails_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--url", "http://127.0.0.1:9"]) == 1
    assert "cannot read http://127.0.0.1:9/status" in capsys.readouterr().err
