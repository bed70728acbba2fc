"""The ExaBGP adjustment: applied to the measured version only, off on request, and ExaBGP's
class really reads it (its reactor's ``ASYNC()`` instances take the class attribute)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from exabgp.bgp.neighbor import Neighbor
from exabgp.logger import log
from exabgp.reactor.asynchronous import ASYNC

from cosmolet.exabgp import launch as exabgp_launch

STOCK_REMOVE_SELF = Neighbor.remove_self


@pytest.fixture(autouse=True)
def _restore() -> object:
    yield
    ASYNC.LIMIT = exabgp_launch.STOCK_LIMIT
    Neighbor.remove_self = STOCK_REMOVE_SELF
    if "debug" in vars(log):
        del log.debug


def _debug_dropped() -> bool:
    return "debug" in vars(log)


def test_applied_to_the_pinned_version() -> None:
    environ: dict[str, str] = {}
    done = exabgp_launch.tune(environ)
    assert "ASYNC.LIMIT 50 -> 1000, reactor speed 5.0" in done
    assert "remove_self without deepcopy" in done
    assert "debug log calls dropped" in done and _debug_dropped()
    assert ASYNC().LIMIT == exabgp_launch.LIMIT
    assert environ["exabgp.reactor.speed"] == "5.0"
    assert Neighbor.remove_self is not STOCK_REMOVE_SELF
    assert "stock ExaBGP" in exabgp_launch.tune({}), "applied twice"


def test_debug_lines_are_dropped_below_the_debug_level() -> None:
    exabgp_launch.tune({"exabgp.log.level": "INFO"})
    log.debug(lambda: 1 / 0, "rib")  # the message is never evaluated
    assert _debug_dropped()


@pytest.mark.parametrize("setting", ["exabgp.log.level", "exabgp_log_level"])
def test_debug_lines_stay_at_the_debug_level(setting: str) -> None:
    done = exabgp_launch.tune({setting: "debug"})
    assert "debug log calls dropped" not in done
    assert not _debug_dropped()


@pytest.mark.parametrize(
    ("setting", "limit", "copy"),
    [("batch", exabgp_launch.LIMIT, False), ("copy", exabgp_launch.STOCK_LIMIT, True)],
)
def test_one_adjustment_alone(setting: str, limit: int, copy: bool) -> None:
    exabgp_launch.tune({"COSMOLET_EXABGP_TUNING": setting})
    assert limit == ASYNC.LIMIT
    assert (Neighbor.remove_self is not STOCK_REMOVE_SELF) is copy


def test_an_operators_reactor_speed_is_kept() -> None:
    environ = {"exabgp.reactor.speed": "1.0"}
    assert "reactor speed 1.0" in exabgp_launch.tune(environ)


def test_off_on_request() -> None:
    environ = {"COSMOLET_EXABGP_TUNING": "off"}
    assert "stock" in exabgp_launch.tune(environ)
    assert ASYNC.LIMIT == exabgp_launch.STOCK_LIMIT
    assert Neighbor.remove_self is STOCK_REMOVE_SELF
    assert not _debug_dropped()
    assert "exabgp.reactor.speed" not in environ


def test_another_version_runs_stock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exabgp_launch, "version", lambda _name: "5.1.0")
    assert "stock ExaBGP 5.1.0" in exabgp_launch.tune({})
    assert ASYNC.LIMIT == exabgp_launch.STOCK_LIMIT


def test_the_pinned_version_is_the_dependency() -> None:
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert "exabgp==5.0.15" in project["project"]["dependencies"]
    assert "5.0.15" in exabgp_launch.TUNED_VERSIONS


def test_the_launcher_runs_exabgp() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cosmolet.exabgp.launch", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "ASYNC.LIMIT 50 -> 1000" in result.stderr
    assert "5.0.15" in result.stdout + result.stderr


def test_an_arbitrary_uid_runs_exabgp_as_nobody_by_name() -> None:
    from cosmolet.exabgp.config import daemon_user

    assert daemon_user(0) == "root"
    assert daemon_user(1000680000) == "nobody"  # no passwd entry (OpenShift)


# --- remove_self without deepcopy: the same routes as the stock copy -------------------------

NEIGHBOR = """
neighbor 10.0.1.0 {
    router-id 10.0.1.1;
    local-address 10.0.1.1;
    local-as 65001;
    peer-as 65101;
    family { ipv4 unicast; }
}
"""


@pytest.fixture(scope="module")
def exabgp() -> tuple[Any, Any]:
    """ExaBGP's configuration with one neighbor, and its API parser."""
    from exabgp.configuration.configuration import Configuration
    from exabgp.environment import getenv
    from exabgp.logger import log
    from exabgp.reactor.api import API

    log.init(getenv())
    configuration = Configuration([NEIGHBOR], text=True)
    assert configuration.reload() is True, configuration.error
    return configuration, API(configuration)


def _parse(exabgp: tuple[Any, Any], attributes: str, prefixes: int = 3) -> tuple[Any, list[Any]]:
    configuration, api = exabgp
    (name,) = configuration.neighbors
    nlri = " ".join(f"10.96.0.{index}/32" for index in range(1, prefixes + 1))
    changes = api.api_attributes(f"announce attributes {attributes} nlri {nlri}", [name])
    assert len(changes) == prefixes
    return configuration.neighbors[name], changes


def _same_route(ours: Any, stock: Any) -> None:
    assert ours.index() == stock.index()
    assert ours.extensive() == stock.extensive()
    assert str(ours.nlri.nexthop) == str(stock.nlri.nexthop)
    assert ours.attributes.index() == stock.attributes.index()
    assert ours.attributes == stock.attributes


def test_next_hop_self_routes_equal_the_stock_copy(exabgp: tuple[Any, Any]) -> None:
    neighbor, changes = _parse(exabgp, "next-hop self med 10 community [65001:1 65001:2]")
    before = [change.extensive() for change in changes]
    stock = [STOCK_REMOVE_SELF(neighbor, change) for change in changes]
    exabgp_launch.share_attributes()
    ours = [neighbor.remove_self(change) for change in changes]
    for mine, theirs in zip(ours, stock, strict=True):
        _same_route(mine, theirs)
        assert "next-hop 10.0.1.1" in mine.extensive()
    # each route its own Change and NLRI; the line's attributes copied once and shared
    assert len({id(change) for change in ours}) == len({id(c.nlri) for c in ours}) == 3
    assert len({id(change.attributes) for change in ours}) == 1
    assert ours[0].attributes is not changes[0].attributes
    # what was parsed is left as it was (ExaBGP injects it into every matching neighbor)
    assert [change.extensive() for change in changes] == before
    assert all(change.nlri.nexthop.SELF for change in changes)


def test_an_explicit_next_hop_shares_the_parsed_attributes(exabgp: tuple[Any, Any]) -> None:
    neighbor, changes = _parse(exabgp, "next-hop 10.0.1.1 community [65001:1]")
    stock = [STOCK_REMOVE_SELF(neighbor, change) for change in changes]
    exabgp_launch.share_attributes()
    ours = [neighbor.remove_self(change) for change in changes]
    for mine, theirs, change in zip(ours, stock, changes, strict=True):
        _same_route(mine, theirs)
        assert mine.attributes is change.attributes
        assert mine is not change and mine.nlri is not change.nlri


def test_the_nlri_of_a_route_is_its_own(exabgp: tuple[Any, Any]) -> None:
    """ExaBGP sets the action on the route it queues: another route must not see it."""
    from exabgp.bgp.message import Action

    neighbor, changes = _parse(exabgp, "next-hop self")
    exabgp_launch.share_attributes()
    first, second = (neighbor.remove_self(change) for change in changes[:2])
    first.nlri.action = Action.WITHDRAW
    assert second.nlri.action != Action.WITHDRAW
    assert changes[0].nlri.action != Action.WITHDRAW


def test_routes_of_other_lines_share_one_attribute_set(exabgp: tuple[Any, Any]) -> None:
    """Routes re-announced one line each (churn) share the set of the first line that had
    those attributes, so they do not drift back to one set per route; others get their own."""
    exabgp_launch.share_attributes()
    neighbor, first = _parse(exabgp, "next-hop self community [65001:1]", prefixes=2)
    _, again = _parse(exabgp, "next-hop self community [65001:1]", prefixes=1)
    _, other = _parse(exabgp, "next-hop self community [65001:2]", prefixes=1)
    routes = [neighbor.remove_self(change) for change in (*first, *again, *other)]
    assert routes[0].attributes is routes[1].attributes is routes[2].attributes
    assert routes[3].attributes is not routes[0].attributes
    assert "65001:2" in routes[3].extensive()


def test_internal_attributes_take_the_stock_copy(exabgp: tuple[Any, Any]) -> None:
    """ExaBGP pops its internal attributes (watchdog, name...) per route: not shared."""
    neighbor, changes = _parse(exabgp, "next-hop self name web")
    exabgp_launch.share_attributes()
    ours = [neighbor.remove_self(change) for change in changes]
    assert len({id(change.attributes) for change in ours}) == 3
    for mine, change in zip(ours, changes, strict=True):
        _same_route(mine, STOCK_REMOVE_SELF(neighbor, change))
