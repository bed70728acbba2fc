"""The lab API server's watch counters: events and bytes each watch sent, and the totals, read
from the Python ``Store`` and from ``GET /lab/watch-stats`` (the fleet benchmark uses them)."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from lab.apiserver import RESOURCES, Store, serving

SERVICES = next(r for r in RESOURCES if r.plural == "services")


def chunk_size(line: bytes) -> int:
    """What one event costs on the connection: its chunk's size line, the line, the CRLF."""
    return len(f"{len(line):x}\r\n") + len(line) + 2


@pytest.fixture
def server() -> Iterator[tuple[Store, str]]:
    with serving(bookmark_seconds=3600) as (store, port):
        yield store, f"http://127.0.0.1:{port}"


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return json.loads(reply.read())


def settled(store: Store, events: int) -> dict[str, Any]:
    """The stats once ``events`` were counted (an event is counted right after it is written,
    so the client may read it a moment before)."""
    deadline = time.monotonic() + 5
    while store.watch_stats()["total"]["events"] < events and time.monotonic() < deadline:
        time.sleep(0.01)
    return store.watch_stats()


def test_each_watch_counts_what_it_sent_and_the_total_keeps_ended_ones(
    server: tuple[Store, str],
) -> None:
    store, base = server
    store.create(SERVICES, "default", {"metadata": {"name": "web"}, "spec": {}})
    rv = get(f"{base}/api/v1/services")["metadata"]["resourceVersion"]
    query = f"watch=true&resourceVersion={rv}&timeoutSeconds=1"
    everywhere = urllib.request.urlopen(f"{base}/api/v1/services?{query}", timeout=5)
    other_ns = urllib.request.urlopen(f"{base}/api/v1/namespaces/other/services?{query}", timeout=5)
    with everywhere, other_ns:
        opened = get(f"{base}/lab/watch-stats")
        assert opened["total"]["events"] == 0
        assert [w["events"] for w in opened["watches"]] == [0, 0]

        store.patch(SERVICES, "default", "web", {"metadata": {"labels": {"a": "b"}}})
        line = everywhere.readline()
        assert json.loads(line)["type"] == "MODIFIED"
        stats = settled(store, 1)
        assert get(f"{base}/lab/watch-stats") == stats
        by_namespace = {w["namespace"]: w for w in stats["watches"]}
        assert by_namespace[None]["events"] == 1
        assert by_namespace[None]["bytes"] == chunk_size(line)
        assert by_namespace[None]["byType"] == {
            "MODIFIED": {"events": 1, "bytes": chunk_size(line)}
        }
        assert by_namespace["other"]["events"] == 0  # it selects nothing that changed
        assert stats["total"]["events"] == 1
        assert stats["watchesOpened"] == 2
        # Both watches end at their timeout; the server then forgets them.
        assert everywhere.read() == b"" and other_ns.read() == b""
    deadline = time.monotonic() + 5
    while store.watch_stats()["watches"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.watch_stats()["watches"] == []

    # An ended watch leaves the list but not the total.
    store.patch(SERVICES, "default", "web", {"metadata": {"labels": {"a": "c"}}})
    after = get(f"{base}/lab/watch-stats")
    assert after["total"] == stats["total"]


def test_a_refused_watch_counts_its_error_event(server: tuple[Store, str]) -> None:
    store, base = server
    store.create(SERVICES, "default", {"metadata": {"name": "web"}, "spec": {}})
    store.compact()
    with urllib.request.urlopen(
        f"{base}/api/v1/services?watch=true&resourceVersion=1", timeout=5
    ) as reply:
        line = reply.readline()
    assert json.loads(line)["type"] == "ERROR"
    total = settled(store, 1)["total"]
    assert total["byType"] == {"ERROR": {"events": 1, "bytes": chunk_size(line)}}
