"""The agent's HTTP endpoints and ``cosmolet status``, against an agent driven in-process:
the two listeners (``/status`` on ``http.statusListen`` only), and ``/metrics`` in both
exposition formats."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from cosmolet.agent import http_api
from cosmolet.agent.journal import Journal
from cosmolet.agent.metrics import agent_metrics
from cosmolet.agent.reconciler import Reconciler
from cosmolet.cli import build_parser, format_status, main
from cosmolet.config.schema import Config, validate
from cosmolet.exabgp.api import PeerEvent, PeerState
from cosmolet.exabgp.config import sessions
from tests.factories import config_dict
from tests.unit.test_agent import cluster

CONFIG = validate(config_dict())
OPENMETRICS = "application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5"
STANDARD_FAMILIES = ("process_", "python_")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def http_config(**http: Any) -> Config:
    """The test config with both listeners on free loopback ports, and ``http`` overrides."""
    data = config_dict()
    data["http"] = {
        "listen": f"127.0.0.1:{free_port()}",
        "statusListen": f"127.0.0.1:{free_port()}",
        **http,
    }
    return validate(data)


class Clock:
    """The reconciler's monotonic clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextlib.contextmanager
def started(
    tmp_path: Path, config: Config, clock: Clock | None = None
) -> Iterator[tuple[Reconciler, http_api.Servers]]:
    """An agent with its metrics, served by ``http_api.start`` as the agent's main does."""
    agent = Reconciler(
        config,
        sessions(config),
        io.StringIO(),
        Journal(tmp_path / "journal"),
        clock=clock or time.monotonic,
    )
    metrics = agent_metrics(agent, config)
    agent.observers.append(metrics.observe)
    servers = http_api.start(agent, metrics.registry, config.http)
    try:
        yield agent, servers
    finally:
        for server in servers:
            if server is not None:
                server.shutdown()
                server.server_close()


def url_of(server: Any, scheme: str = "http") -> str:
    assert server is not None
    return f"{scheme}://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Reconciler, str, str]]:
    """The agent, the URL of ``http.listen`` and that of ``http.statusListen``."""
    with started(tmp_path, http_config()) as (agent, servers):
        yield agent, url_of(servers.public), url_of(servers.status)


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    return fetch(url, headers)[:2]


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Status, body and Content-Type of a GET."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            body = response.read().decode()
            return response.status, body, response.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), error.headers["Content-Type"]


def test_readiness_follows_sync_and_first_plan(served: tuple[Reconciler, str, str]) -> None:
    agent, url, _ = served
    code, body = get(url + "/readyz")
    assert code == 503 and "first complete list" in body
    assert get(url + "/healthz")[0] == 200
    agent.handle_batch(cluster(agent, "10.96.0.1"))
    assert get(url + "/readyz") == (200, "ok\n")


def test_healthz_ignores_peers_but_not_a_stalled_loop(
    served: tuple[Reconciler, str, str],
) -> None:
    agent, url, _ = served
    agent.handle_batch([PeerEvent("192.0.2.0", PeerState.DOWN)])
    assert get(url + "/healthz")[0] == 200
    agent.heartbeat -= 1000
    code, body = get(url + "/healthz")
    assert code == 500 and "no progress" in body


def test_metrics_parse_and_match_the_state(served: tuple[Reconciler, str, str]) -> None:
    agent, url, _ = served
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
    by_policy = "cosmolet_routes_desired_by_policy"
    assert samples[by_policy, (("family", "ipv4"), ("policy", "cluster"))] == 2
    assert samples[by_policy, (("family", "ipv6"), ("policy", "local"))] == 0
    assert samples["cosmolet_route_announcements_total", (("family", "ipv4"),)] == 2
    assert samples["cosmolet_exabgp_commands_total", ()] == 2  # a batch line and the EOR
    assert samples["cosmolet_ready", ()] == 1
    assert samples["cosmolet_event_to_command_seconds_count", ()] >= 1
    assert any(name == "cosmolet_build_info" for name, _ in samples)
    # Every metric is ours (the prefix) or a standard process/python family; no Service name or
    # prefix appears as a label.
    assert all(name.startswith(("cosmolet_", *STANDARD_FAMILIES)) for name, _ in samples)
    assert "10.96.0.1" not in text and "default/" not in text


def test_version_and_status(
    served: tuple[Reconciler, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    agent, url, status_url = served
    agent.handle_batch([PeerEvent("192.0.2.0", PeerState.UP)])
    agent.handle_batch(cluster(agent, "10.96.0.1"))
    version = json.loads(get(url + "/version")[1])
    assert set(version) == {"version", "gitCommit", "exabgp", "python"}
    status = json.loads(get(status_url + "/status")[1])
    assert status["ready"] is True
    assert status["peers"][0]["address"] == "192.0.2.0" and status["peers"][0]["state"] == "up"
    assert status["routes"] == [
        {
            "prefix": "10.96.0.1/32",
            "family": "ipv4",
            "kind": "cluster",
            "services": ["default/s10-96-0-1"],
            "linkBandwidthMbps": None,
            "peers": ["192.0.2.0"],
        }
    ]
    assert status["share"]["cluster"] == {"ipv4": 1, "ipv6": 0}
    assert main(["status", "--url", status_url]) == 0
    table = capsys.readouterr().out
    assert "10.96.0.1/32" in table and "192.0.2.0" in table and "ready" in table
    assert "10.96.0.1/32                 cluster    1      default/s10-96-0-1" in table
    aggregate = {"prefix": "10.96.0.0/24", "kind": "aggregate", "services": [], "peers": []}
    assert "aggregate  0      3 Services inside" in format_status(
        {"ready": True, "node": "n", "routes": [{**aggregate, "serviceCount": 3}]}
    )
    assert main(["status", "--url", status_url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["node"] == "node1"
    assert "NOT READY" in format_status({"ready": False, "reason": "x", "node": "n"})


def test_status_of_an_unreachable_agent_fails_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--url", "http://127.0.0.1:9"]) == 1
    assert "cannot read http://127.0.0.1:9/status" in capsys.readouterr().err


def scrape(url: str, accept: str | None) -> tuple[str, dict[tuple[str, tuple[Any, ...]], float]]:
    """``/metrics`` with an Accept header, parsed by the parser of the format it came in."""
    code, text, content_type = fetch(url + "/metrics", {"Accept": accept} if accept else None)
    assert code == 200
    openmetrics = content_type.startswith("application/openmetrics-text")
    parse = openmetrics_families if openmetrics else text_string_to_metric_families
    if openmetrics:
        assert text.endswith("# EOF\n")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): float(sample.value)
        for family in parse(text)
        for sample in family.samples
    }
    return content_type, samples


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        (OPENMETRICS, "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        ("text/plain", "text/plain; version=0.0.4; charset=utf-8"),
        (None, "text/plain; version=0.0.4; charset=utf-8"),
    ],
)
def test_metrics_in_the_format_the_scraper_asks_for(
    served: tuple[Reconciler, str, str], accept: str | None, content_type: str
) -> None:
    agent, url, _ = served
    agent.handle_batch([PeerEvent("192.0.2.0", PeerState.UP)])
    agent.handle_batch(cluster(agent, "10.96.0.1"))
    served_type, samples = scrape(url, accept)
    assert served_type.startswith(content_type)
    names = {name for name, _ in samples}
    assert samples["cosmolet_route_announcements_total", (("family", "ipv4"),)] == 1
    assert samples["cosmolet_bgp_session_up", (("peer", "192.0.2.0"),)] == 1
    assert "cosmolet_reconcile_duration_seconds_count" in names
    # No _created series, in either format, for our counters and histograms alike.
    assert not [name for name in names if name.endswith("_created")]
    # The standard families, on our registry.
    assert {"process_resident_memory_bytes", "process_start_time_seconds"} <= names
    assert {"python_info", "python_gc_collections_total"} <= names
    assert "cosmolet_bgp_session_uptime_seconds" not in names  # replaced (breaking)


def test_session_established_timestamp_is_unix_time_and_steady(tmp_path: Path) -> None:
    clock = Clock()
    wall_at_start = time.time()
    with started(tmp_path, http_config(), clock) as (agent, servers):
        url = url_of(servers.public)
        key = ("cosmolet_bgp_session_established_timestamp_seconds", (("peer", "192.0.2.0"),))
        assert scrape(url, None)[1][key] == 0  # never established
        clock.now += 30
        agent.handle_batch([PeerEvent("192.0.2.0", PeerState.UP)])
        clock.now += 600
        first = scrape(url, None)[1][key]
        # Established 30 s after the collector's start, whatever the clock says since.
        assert abs(first - (wall_at_start + 30)) < 2
        time.sleep(0.01)
        clock.now += 1
        assert scrape(url, OPENMETRICS)[1][key] == first  # no jitter from scrape to scrape
        agent.handle_batch([PeerEvent("192.0.2.0", PeerState.DOWN)])
        assert scrape(url, None)[1][key] == 0


def test_status_is_served_on_the_status_listener_only(
    served: tuple[Reconciler, str, str],
) -> None:
    agent, url, status_url = served
    agent.handle_batch(cluster(agent, "10.96.0.1"))
    assert get(status_url + "/status")[0] == 200
    code, body = get(url + "/status")
    status_listen = status_url.removeprefix("http://")
    assert code == 404
    assert f"/status is served on http.statusListen ({status_listen})" in body
    assert "10.96.0.1" not in body
    # The status listener serves /status and nothing else.
    for path in ("/metrics", "/healthz", "/readyz", "/version"):
        assert get(status_url + path) == (404, "not found: try /status\n")
        assert get(url + path)[0] in (200, 503)
    assert get(url + "/nothing") == (404, "not found: try /healthz /metrics /readyz /version\n")


def test_status_command_defaults_to_the_status_listener() -> None:
    args = build_parser().parse_args(["status"])
    assert args.url == "http://127.0.0.1:9180"
    assert CONFIG.http.status_listen == "127.0.0.1:9180"
