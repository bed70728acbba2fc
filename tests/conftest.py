"""Tests with real parts (``tests/integration``, ``tests/faults``: ExaBGP and FRR in network
namespaces) need root, iproute2 and Debian's FRR. Where they are missing the tests are skipped
locally, but fail in CI (``CI=true``), so CI can never go green having run none of them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REAL_PARTS = {"integration", "faults"}
TESTS = Path(__file__).parent


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if not Path("/usr/lib/frr/bgpd").exists() or not shutil.which("vtysh"):
        return "needs Debian's frr package"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = _missing()
    for item in items:
        if item.path.relative_to(TESTS).parts[0] not in REAL_PARTS:
            continue
        item.add_marker(pytest.mark.integration)
        if reason and not os.environ.get("CI"):
            item.add_marker(pytest.mark.skip(reason=reason))
