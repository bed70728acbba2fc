"""The demo is a test: its exit status is the verdict. And the lab leaves nothing behind, even
when a run fails halfway."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from lab import fabric as lab_fabric
from lab.netns import leftovers


def _our_processes(marker: str) -> list[int]:
    """PIDs whose command line mentions ``marker`` (a path inside the run's work directory)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    if marker.encode() in handle.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


@pytest.mark.parametrize(
    "mode", [[], ["--numbered"], ["--ipv6-only"]], ids=["hybrid", "numbered", "ipv6-only"]
)
def test_make_demo_passes_and_cleans_up(mode: list[str]) -> None:
    before = set(leftovers())
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "lab.demo", *mode],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "every check passed" in result.stdout
    # the nodes run the chart's pods, each Ready by its probe
    assert "each node runs the Helm chart's pod" in result.stdout
    assert "node2's pod Ready" in result.stdout
    assert time.monotonic() - started < 90
    assert set(leftovers()) == before


def test_a_run_that_fails_halfway_leaves_nothing() -> None:
    before = set(leftovers())
    workdir = ""
    with pytest.raises(RuntimeError, match="halfway"), lab_fabric.running() as fabric:
        workdir = str(fabric.lab.workdir)
        lab_fabric.wait_established(fabric)
        assert _our_processes(workdir)  # FRR, ExaBGP, agents are running
        raise RuntimeError("halfway")
    assert set(leftovers()) == before
    assert not os.path.exists(workdir)
    time.sleep(0.5)
    assert _our_processes(workdir) == []
