"""Fixtures that build real fabrics in network namespaces: FRR peers and cosmolet nodes.

Integration tests need root, iproute2 and Debian's FRR. Where they are missing the tests are
skipped locally, but fail in CI (``CI=true``), so CI can never go green having run none of them.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.netns import Lab
from lab.numbered import NumberedFabric, build_numbered


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if not Path("/usr/lib/frr/bgpd").exists() or not shutil.which("vtysh"):
        return "needs Debian's frr package"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = _missing()
    for item in items:
        if "integration" not in str(item.path):
            continue
        item.add_marker(pytest.mark.integration)
        if reason and not os.environ.get("CI"):
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def lab() -> Iterator[Lab]:
    instance = Lab()
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture
def fabric(lab: Lab) -> NumberedFabric:
    return build_numbered(lab)


def sample(predicate: Any, seconds: float, interval: float = 0.01) -> list[Any]:
    """Evaluate ``predicate`` every ``interval`` for ``seconds``; return every result."""
    results = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        results.append(predicate())
        time.sleep(interval)
    return results
