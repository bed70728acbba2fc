"""Every metric the chart's alerts and Grafana dashboard query is one cosmolet exports: an agent
run in-process (a ``Reconciler`` with its metrics, served by ``http_api`` as the agent's main
does, with the Kubernetes source's API health and ExaBGP's answer counter) is scraped on
``/metrics``, and each PromQL expression is parsed by promql-parser (the Rust ``promql-parser``
crate, Prometheus' grammar, with Python bindings) to find the selectors' metric names, so a
renamed metric or a misspelt query fails here rather than as an empty panel or a silent alert."""

from __future__ import annotations

import io
import json
import re
import threading
import urllib.request
from collections.abc import Iterator

import promql_parser
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cosmolet.agent import http_api
from cosmolet.agent.answers import Answers, AnswersCollector
from cosmolet.agent.journal import Journal
from cosmolet.agent.metrics import agent_metrics
from cosmolet.agent.reconciler import Reconciler
from cosmolet.exabgp.config import sessions
from cosmolet.sources import ApiHealth, SourceHealth
from cosmolet.sources.state import ClusterState
from tests.component.test_http_api import http_config, url_of
from tests.unit.test_chart import CHART, HELM, by_kind, template

pytestmark = pytest.mark.skipif(HELM is None, reason="helm not installed (make setup installs it)")

#: Grafana's variables, as Grafana substitutes them before Prometheus sees a query.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$instance": ".*"}
#: The sample names each metric type exposes (counters' ``_created`` are dropped by cosmolet).
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count", ""),
    "info": ("_info",),
}


class KubeSourceStub:
    """The Kubernetes source as the agent sees it: only its health, so that the API server's
    metrics (``cosmolet_api_*``, ``cosmolet_watch_*``) are exported as they are in a pod."""

    def run(self, state: ClusterState, stop: threading.Event) -> None:
        stop.wait()

    def health(self) -> SourceHealth:
        return SourceHealth(api=ApiHealth(synced=True, connected=True))


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The metric names a scrape of an in-process agent shows."""
    config = http_config()
    tmp_path = tmp_path_factory.mktemp("agent")
    agent = Reconciler(config, sessions(config), io.StringIO(), Journal(tmp_path / "journal"))
    agent.source = KubeSourceStub()
    metrics = agent_metrics(agent, config)
    metrics.registry.register(AnswersCollector(Answers()))
    servers = http_api.start(agent, metrics.registry, config.http)
    try:
        with urllib.request.urlopen(url_of(servers.public) + "/metrics", timeout=5) as response:
            text = response.read().decode()
    finally:
        for server in servers:
            if server is not None:
                server.shutdown()
                server.server_close()
    return set(names_of(text))


def names_of(exposition: str) -> Iterator[str]:
    """Every sample name of the families, even of a family with no sample at this scrape (a
    labelled gauge with no label set yet)."""
    for family in text_string_to_metric_families(exposition):
        yield from (sample.name for sample in family.samples)
        yield from (family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))


def selectors(expression: str) -> set[str]:
    """The metric names an expression selects, from promql-parser's syntax tree."""
    for variable, value in GRAFANA_VARIABLES.items():
        expression = expression.replace(variable, value)
    found: set[str] = set()

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name in {expression!r}"
            found.add(node.name)

    promql_parser.walk(promql_parser.parse(expression), visit)
    return found


def alert_expressions() -> dict[str, str]:
    (rule,) = by_kind(template("--set", "monitoring.prometheusRule.enabled=true"), "PrometheusRule")
    return {r["alert"]: r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]}


def dashboard_expressions() -> dict[str, str]:
    board = json.loads((CHART / "files/dashboard.json").read_text())
    found = {
        f"{panel['title']} {target['refId']}": target["expr"]
        for panel in board["panels"]
        for target in panel["targets"]
    }
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            # label_values(<series>, <label>) is Grafana's, not PromQL: its series is.
            match = re.fullmatch(r"label_values\((.+), *\w+\)", variable["definition"])
            assert match, variable["definition"]
            found[f"${variable['name']}"] = match.group(1)
    return found


def test_the_parser_finds_every_selector_and_refuses_bad_promql() -> None:
    assert selectors(
        'histogram_quantile(0.9, sum by (le) (rate(a_bucket{instance=~"$instance"}[5m])))'
        " / on (job) group_left () b or vector(0)"
    ) == {"a_bucket", "b"}
    with pytest.raises(ValueError):
        selectors("rate(cosmolet_ready[5m]) > ")


def test_the_scrape_holds_the_families_the_queries_need(exported: set[str]) -> None:
    assert {
        "cosmolet_event_to_command_seconds_bucket",
        "cosmolet_reconcile_errors_total",
        "cosmolet_exabgp_command_errors_total",
        "cosmolet_api_connected",
        "cosmolet_bgp_session_up",
    } <= exported
    assert "cosmolet_reconcile_errors" not in exported  # a counter is queried as _total


@pytest.mark.parametrize(
    "source", [alert_expressions, dashboard_expressions], ids=["alerts", "dashboard"]
)
def test_every_queried_metric_is_exported(source: type[dict[str, str]], exported: set[str]) -> None:
    expressions = source()
    assert expressions
    for where, expression in expressions.items():
        names = selectors(expression)
        assert names, f"{where}: {expression!r} selects no metric"
        assert names <= exported, f"{where}: {sorted(names - exported)} not exported"
