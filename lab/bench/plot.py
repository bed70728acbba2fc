"""``bench-results.png`` from ``bench-results.json``: the withdraw latency distributions of
cosmolet and of the FRR floor side by side, and the cold starts. Needs the optional ``bench``
extra (matplotlib); ``make bench`` skips the picture without it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_png(results: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    withdraw = results.get("withdraw") or {}
    for key, label in (
        ("samples_ms", "cosmolet: API write -> gone from leaf RIB"),
        ("fib_samples_ms", "cosmolet: -> gone from leaf FIB"),
        ("floor_samples_ms", "floor (FRR sender): vtysh -> gone from leaf RIB"),
        ("floor_fib_samples_ms", "floor: -> gone from leaf FIB"),
    ):
        values = sorted(withdraw.get(key) or [])
        if values:
            fractions = [(i + 1) / len(values) for i in range(len(values))]
            left.step(values, fractions, where="post", label=label)
    left.set_xlabel("ms")
    left.set_ylabel("fraction of withdrawals")
    left.set_title(f"withdraw, {withdraw.get('services', '?')} Services")
    left.grid(alpha=0.3)
    left.legend(fontsize=8, loc="lower right")

    cold = results.get("coldstart") or {}
    bars = [
        ("cosmolet", cold.get("cosmolet_s")),
        ("cosmolet,\nstock ExaBGP", cold.get("cosmolet_stock_exabgp_s")),
        ("FRR floor", cold.get("floor_s")),
    ]
    shown = [(name, value) for name, value in bars if value is not None]
    right.bar([n for n, _ in shown], [v for _, v in shown], color=["C0", "C1", "C2"][: len(shown)])
    for index, (_, value) in enumerate(shown):
        right.annotate(f"{value:.2f} s", (index, value), ha="center", va="bottom")
    naive = cold.get("naive_s")
    title = f"cold start, {cold.get('routes', '?')} routes"
    right.set_title(title + (f" (naive vtysh per route: {naive:.0f} s)" if naive else ""))
    right.set_ylabel("seconds to all routes in the peer's RIB")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


if __name__ == "__main__":
    source = Path(sys.argv[1] if len(sys.argv) > 1 else "bench-results.json")
    print(write_png(json.loads(source.read_text()), source.with_suffix(".png")))
