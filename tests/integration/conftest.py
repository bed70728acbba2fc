"""Fixtures that build real fabrics in network namespaces: FRR peers and cosmolet nodes.

What they need (root, Debian's FRR) is checked in ``tests/conftest.py``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from lab.netns import Lab
from lab.numbered import NumberedFabric, build_numbered


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
