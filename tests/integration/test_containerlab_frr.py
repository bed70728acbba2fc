"""FRR itself accepts every switch configuration of lab/containerlab (``vtysh --dryrun``, which
parses a file with FRR's own command tables and fails on any unknown or malformed line)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lab import clab

CONFIGS = sorted(p for p in (clab.DIRECTORY / "configs").glob("*.conf") if p.name != "vtysh.conf")


def test_there_are_switch_configs() -> None:
    assert len(CONFIGS) == 6


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_frr_accepts(path: Path) -> None:
    result = subprocess.run(
        ["vtysh", "--dryrun", "-f", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dryrun_rejects_a_bad_line(tmp_path: Path) -> None:
    """The check above can fail: a misspelt command is refused."""
    bad = tmp_path / "bad.conf"
    bad.write_text(
        CONFIGS[0].read_text().replace("neighbor fabric remote-as", "neighbr fabric remote-as")
    )
    result = subprocess.run(
        ["vtysh", "--dryrun", "-f", str(bad)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
