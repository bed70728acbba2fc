"""``cosmolet_bfd_session_up``: bfdd's sessions (``show bfd peers json``, as FRR 8-10 print it)
exported at scrape time where the agent runs BFD, and nothing that looks like a session state when
bfdd cannot be asked. The real bfdd is in ``tests/integration/test_bfd_metrics.py``."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from cosmolet.agent.journal import Journal
from cosmolet.agent.metrics import BfdCollector, Metrics, agent_metrics
from cosmolet.agent.reconciler import Reconciler
from cosmolet.config.schema import Config, validate
from cosmolet.hybrid.bfd_state import BfdReader, BfdSession, parse_peers
from tests.factories import config_dict

#: Two peers of a real bfdd (trimmed of the timer fields): one up, one never answered.
SHOW_BFD_PEERS = json.dumps(
    [
        {
            "multihop": False,
            "peer": "2001:db8::9",
            "local": "fe80::acc8:41ff:fedf:ab7e",
            "vrf": "default",
            "interface": "eth1",
            "status": "down",
            "downtime": 3,
            "diagnostic": "ok",
        },
        {
            "multihop": False,
            "peer": "fe80:0::3c31:e3ff:fe8f:945f",
            "local": "fe80::acc8:41ff:fedf:ab7e",
            "vrf": "default",
            "interface": "eth1",
            "status": "up",
            "uptime": 2,
            "diagnostic": "ok",
        },
        {"peer": "fe80::1", "interface": "eth2", "status": "init"},
    ]
)


def samples(registry: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("cosmolet_bfd")
    }


def test_parse_peers_reads_state_per_peer_and_link() -> None:
    assert parse_peers(SHOW_BFD_PEERS) == [
        BfdSession("2001:db8::9", "eth1", up=False),
        BfdSession("fe80::3c31:e3ff:fe8f:945f", "eth1", up=True),  # as the BGP session names it
        BfdSession("fe80::1", "eth2", up=False),
    ]
    assert parse_peers("") == parse_peers("[]") == []


@pytest.mark.parametrize("text", ["{}", "[1]", '[{"status": "up"}]', "% Unknown command", "[{"])
def test_parse_peers_refuses_what_is_not_bfdd_s_answer(text: str) -> None:
    with pytest.raises(ValueError):
        parse_peers(text)


def test_the_collector_exports_each_session_or_says_bfdd_did_not_answer() -> None:
    answer: list[BfdSession] | None = parse_peers(SHOW_BFD_PEERS)
    calls = 0

    def read() -> list[BfdSession] | None:
        nonlocal calls
        calls += 1
        return answer

    metrics = Metrics()
    metrics.registry.register(BfdCollector(read))
    assert calls == 0  # registering does not ask bfdd
    assert samples(metrics.registry) == {
        ("cosmolet_bfd_readable", ()): 1,
        ("cosmolet_bfd_session_up", (("interface", "eth1"), ("peer", "2001:db8::9"))): 0,
        (
            "cosmolet_bfd_session_up",
            (("interface", "eth1"), ("peer", "fe80::3c31:e3ff:fe8f:945f")),
        ): 1,
        ("cosmolet_bfd_session_up", (("interface", "eth2"), ("peer", "fe80::1"))): 0,
    }
    answer = None
    assert samples(metrics.registry) == {("cosmolet_bfd_readable", ()): 0}
    assert calls == 2


def test_a_missing_bfdd_reads_as_none_and_is_logged_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reader = BfdReader(tmp_path / "no-frr-here")
    assert reader() is None and reader() is None
    logged = "".join(capsys.readouterr())
    assert logged.count("cannot read bfdd's sessions") == 1
    assert "failed to connect to any daemons" in logged  # vtysh's own words


def hybrid(bfd: bool) -> Config:
    data = config_dict()
    data.update(mode="hybrid")
    data["bgp"] = {"asn": 65001, "interfaces": ["eth1"], "bfd": {"enabled": bfd}}
    return validate(data)


@pytest.mark.parametrize(
    ("config", "expected"),
    [(validate(config_dict()), False), (hybrid(False), False), (hybrid(True), True)],
    ids=["numbered", "hybrid", "hybrid-bfd"],
)
def test_bfd_metrics_where_the_agent_runs_bfd(
    tmp_path: Path, config: Config, expected: bool
) -> None:
    agent = Reconciler(config, [], io.StringIO(), Journal(tmp_path / "journal"))
    names = {metric.name for metric in agent_metrics(agent, config).registry.collect()}
    assert ("cosmolet_bfd_readable" in names) is expected
