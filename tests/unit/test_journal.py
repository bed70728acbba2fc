"""The write-ahead journal of announced prefixes."""

from __future__ import annotations

from pathlib import Path

from cosmolet.agent.journal import Journal


def test_replay_after_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    journal = Journal(path)
    journal.load()
    journal.add(["10.0.0.1/32", "10.0.0.2/32", "fd00::1/128"])
    journal.discard(["10.0.0.2/32"])
    # No close(): as if the process died here.
    assert Journal(path).load() == {"10.0.0.1/32", "fd00::1/128"}


def test_garbage_lines_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    garbage = "+garbage\nxx\n+10.0.0.1/24\n+010.0.0.2/32\n+FD00::2/128\n"
    path.write_text(f"+10.0.0.1/32\n{garbage}+fd00::1/128\n-fd00::1/128\n")
    assert Journal(path).load() == {"10.0.0.1/32"}


def test_an_aggregate_is_replayed_like_a_host_route(tmp_path: Path) -> None:
    """A previous agent's aggregate (services.advertise.clusterIP.aggregate) must be withdrawn
    by the next one if no longer wanted, so the journal keeps it."""
    path = tmp_path / "journal"
    Journal(path).add(["10.96.0.0/24", "fd00:96::/120", "10.96.7.7/32"])
    assert Journal(path).load() == {"10.96.0.0/24", "fd00:96::/120", "10.96.7.7/32"}


def test_compaction_keeps_the_live_set(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    journal = Journal(path)
    for _ in range(3):
        prefixes = [f"10.0.{i // 256}.{i % 256}/32" for i in range(3000)]
        journal.add(prefixes)
        journal.discard(prefixes[1:])
    assert len(path.read_text().splitlines()) < 9000
    assert Journal(path).load() == {"10.0.0.0/32"}
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_memory_only_journal(tmp_path: Path) -> None:
    journal = Journal(None)
    journal.add(["10.0.0.1/32"])
    assert journal.load() == set()
