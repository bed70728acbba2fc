"""The ExaBGP adjustment: applied to the measured version only, off on request, and ExaBGP's
class really reads it (its reactor's ``ASYNC()`` instances take the class attribute)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from exabgp.reactor.asynchronous import ASYNC

from cosmolet.exabgp import launch as exabgp_launch


@pytest.fixture(autouse=True)
def _restore() -> object:
    yield
    ASYNC.LIMIT = exabgp_launch.STOCK_LIMIT


def test_applied_to_the_pinned_version() -> None:
    environ: dict[str, str] = {}
    assert "ASYNC.LIMIT 50 -> 1000, reactor speed 5.0" in exabgp_launch.tune(environ)
    assert ASYNC().LIMIT == exabgp_launch.LIMIT
    assert environ["exabgp.reactor.speed"] == "5.0"


def test_an_operators_reactor_speed_is_kept() -> None:
    environ = {"exabgp.reactor.speed": "1.0"}
    assert "reactor speed 1.0" in exabgp_launch.tune(environ)


def test_off_on_request() -> None:
    environ = {"COSMOLET_EXABGP_TUNING": "off"}
    assert "stock" in exabgp_launch.tune(environ)
    assert ASYNC.LIMIT == exabgp_launch.STOCK_LIMIT
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
