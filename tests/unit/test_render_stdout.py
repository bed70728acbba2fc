"""``cosmolet render`` as its consumers run it: a separate process whose stdout becomes the file
(the chart's init container writes it into ``frr.conf``), so the whole of stdout must pass
ExaBGP's and FRR's own checks. Hybrid discovery logs while rendering (an interface that is not
there): those lines belong on stderr, never on stdout."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parents[2]
MISSING = "cosmo-absent0"  # no such interface here: discovery warns about it
CONFIGS: dict[str, dict[str, Any]] = {
    "numbered": {
        "bgp": {
            "asn": 65001,
            "routerId": "192.0.2.1",
            "peers": [{"address": "10.0.1.0", "asn": 65101, "localAddress": "10.0.1.1"}],
        },
        "logging": {"level": "debug", "format": "console"},
    },
    "hybrid": {
        "mode": "hybrid",
        "bgp": {"asn": 65001, "routerId": "192.0.2.1", "interfaces": [MISSING, "swp*"]},
        "logging": {"level": "debug"},
    },
}


def render(what: str, mode: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIGS[mode]))
    command = ["render", what, "--config", str(config), "--node", "n1"]
    result = subprocess.run(
        [sys.executable, "-m", "cosmolet", *command],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.parametrize("mode", sorted(CONFIGS))
def test_render_exabgp_stdout_is_a_file_exabgp_accepts(mode: str, tmp_path: Path) -> None:
    result = render("exabgp", mode, tmp_path)
    conf = tmp_path / "exabgp.conf"
    conf.write_text(result.stdout)
    check = subprocess.run(
        [sys.executable, "-m", "exabgp", "validate", str(conf)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert check.returncode == 0, result.stdout + check.stdout + check.stderr
    assert result.stdout.startswith("# Rendered by cosmolet")


def test_discovery_logs_go_to_stderr(tmp_path: Path) -> None:
    result = render("exabgp", "hybrid", tmp_path)
    assert MISSING in result.stderr  # "fabric interfaces not present": it did log
    assert MISSING not in result.stdout


@pytest.mark.skipif(not shutil.which("vtysh"), reason="needs Debian's frr")
def test_render_frr_stdout_is_a_file_frr_accepts(tmp_path: Path) -> None:
    result = render("frr", "hybrid", tmp_path)
    conf = tmp_path / "frr.conf"
    conf.write_text(result.stdout)
    check = subprocess.run(
        ["vtysh", "--dryrun", "-f", str(conf)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, result.stdout + check.stdout + check.stderr
    assert f"interface {MISSING}\n" in result.stdout
