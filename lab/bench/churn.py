"""Churn and soak: EndpointSlices flipping between ready and not ready at a steady rate through
the lab API server, over 10,000 Services, with real ExaBGP and a real FRR leaf.

``churn`` runs for a minute and reports the agent's own event-to-command latency (its
histogram, diffed across the run), commands and route updates sent against changes made, and
whether the leaf ends on exactly the expected set. ``soak`` runs the same churn for as long as
asked and samples the RSS and open file descriptors of the agent and of ExaBGP, reporting the
slope of each (a leak shows as a steady positive slope).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.bench.common import PROCESS_SERIES, cpu_ticks, kube_fabric, process_sample, say
from lab.netns import Lab, wait_for
from lab.node import metric_samples

LATENCY = "cosmolet_event_to_command_seconds"


class Churner:
    """Flips the readiness of random Services' EndpointSlices at ``rate`` per second, from a few
    threads (each with its own API client), and remembers what it last wrote for each."""

    def __init__(self, kubeconfig: Path, objects: list[dict[str, Any]], threads: int = 4) -> None:
        self.kubeconfig = kubeconfig
        self.slices = [o for o in objects if o["kind"] == "EndpointSlice"]
        services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
        self.ip_of = {
            s["metadata"]["name"]: services[s["metadata"]["labels"]["kubernetes.io/service-name"]][
                "spec"
            ]["clusterIP"]
            for s in self.slices
        }
        self.ready = {s["metadata"]["name"]: True for s in self.slices}
        self.locks = {name: threading.Lock() for name in self.ready}
        self.threads = threads
        self.changes = 0
        self.errors = 0
        self.count_lock = threading.Lock()

    def expected(self) -> set[str]:
        return {f"{self.ip_of[name]}/32" for name, ready in self.ready.items() if ready}

    def run(self, rate: float, seconds: float, stop: threading.Event | None = None) -> float:
        """Churn for ``seconds`` (or until ``stop``); return the achieved changes per second."""
        stop = stop or threading.Event()
        before = self.changes
        started = time.monotonic()
        workers = [
            threading.Thread(
                target=self._work, args=(rate / self.threads, started + seconds, stop, seed)
            )
            for seed in range(self.threads)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return (self.changes - before) / max(time.monotonic() - started, 1e-9)

    def _work(self, rate: float, deadline: float, stop: threading.Event, seed: int) -> None:
        from kubernetes import client, config

        api = client.DiscoveryV1Api(config.new_client_from_config(str(self.kubeconfig)))
        rng = random.Random(seed)
        interval, next_at = 1.0 / rate, time.monotonic()
        while not stop.is_set() and time.monotonic() < deadline:
            victim = rng.choice(self.slices)
            name = victim["metadata"]["name"]
            with self.locks[name]:
                ready = not self.ready[name]
                endpoint = {**victim["endpoints"][0], "conditions": {"ready": ready}}
                try:
                    api.patch_namespaced_endpoint_slice(
                        name, victim["metadata"]["namespace"], {"endpoints": [endpoint]}
                    )
                except Exception:
                    with self.count_lock:
                        self.errors += 1
                    continue
                self.ready[name] = ready
            with self.count_lock:
                self.changes += 1
            next_at += interval
            pause = next_at - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            else:
                next_at = time.monotonic()  # behind: do not burst to catch up


def _latency_buckets(samples: dict[Any, float]) -> list[tuple[float, float]]:
    return sorted(
        (float(dict(labels)["le"]), value)
        for (name, labels), value in samples.items()
        if name == f"{LATENCY}_bucket"
    )


def quantile(before: dict[Any, float], after: dict[Any, float], q: float) -> float:
    """``histogram_quantile`` over the run's increase, linear within a bucket (as Prometheus)."""
    low = dict(_latency_buckets(before))
    buckets = [(le, count - low.get(le, 0.0)) for le, count in _latency_buckets(after)]
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return float("nan")
    rank, previous_le, previous_count = q * total, 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return previous_le
            span = count - previous_count
            fraction = (rank - previous_count) / span if span else 1.0
            return previous_le + (le - previous_le) * fraction
        previous_le, previous_count = le, count
    return previous_le


def _counter(samples: dict[Any, float], name: str) -> float:
    return sum(value for (key, _labels), value in samples.items() if key == name)


def _leaf_set(fabric: Any) -> set[str]:
    return set(fabric.rib("ipv4"))


def churn(
    rate: float, seconds: float = 60, services: int = 10_000, quiet: bool = False
) -> dict[str, Any]:
    with Lab() as lab:
        fabric, node, _core, _discovery, objects = kube_fabric(lab, services)
        churner = Churner(node.kubeconfig, objects)
        agent, exabgp = node.agent_pid(), node.exabgp_pid()
        before = metric_samples(fabric.node)
        cpu_before, started = cpu_ticks(agent) + cpu_ticks(exabgp), time.monotonic()
        achieved = churner.run(rate, seconds)
        cpu_s = (cpu_ticks(agent) + cpu_ticks(exabgp) - cpu_before) / os.sysconf("SC_CLK_TCK")
        millicores = cpu_s / (time.monotonic() - started) * 1000
        settled = _settle(fabric, churner)
        after = metric_samples(fabric.node)
        updates = sum(
            _counter(after, name) - _counter(before, name)
            for name in ("cosmolet_route_announcements_total", "cosmolet_route_withdrawals_total")
        )
        result = {
            "rate": rate,
            "achieved_rate": round(achieved, 1),
            "changes": churner.changes,
            "p50_ms": round(quantile(before, after, 0.50) * 1000, 2),
            "p99_ms": round(quantile(before, after, 0.99) * 1000, 2),
            "commands": int(
                _counter(after, "cosmolet_exabgp_commands_total")
                - _counter(before, "cosmolet_exabgp_commands_total")
            ),
            "route_updates": int(updates),
            "final_set_matches": settled is not None,
            "settle_s": settled,
            "api_errors": churner.errors,
            "churn_millicores": round(millicores, 1),
        }
        say(
            quiet,
            f"churn {rate}/s asked, {result['achieved_rate']}/s made ({churner.changes} changes): "
            f"event->command p50 {result['p50_ms']} ms p99 {result['p99_ms']} ms; "
            f"{result['commands']} command lines, {result['route_updates']} route updates; "
            f"final set {'exact' if settled is not None else 'WRONG'}; agent + ExaBGP "
            f"{result['churn_millicores']} millicores meanwhile",
        )
        return result


def _settle(fabric: Any, churner: Churner, timeout: float = 120) -> float | None:
    """Seconds until the leaf holds exactly the expected set, or None."""
    started, expected = time.monotonic(), churner.expected()
    try:
        wait_for(lambda: _leaf_set(fabric) == expected, timeout, 0.2, "the exact set at the leaf")
    except TimeoutError:
        return None
    return round(time.monotonic() - started, 2)


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value), per hour."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * 3600 if var else 0.0


def soak(
    minutes: float,
    rate: float = 100,
    services: int = 10_000,
    every: float = 10,
    quiet: bool = False,
    on_sample: Callable[[dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Churn for ``minutes``; sample RSS and fds every ``every`` seconds; report the slopes."""
    with Lab() as lab:
        fabric, node, _core, _discovery, objects = kube_fabric(lab, services)
        churner = Churner(node.kubeconfig, objects)
        agent = node.agent_pid()
        exabgp = node.exabgp_pid()
        stop = threading.Event()
        worker = threading.Thread(target=churner.run, args=(rate, minutes * 60, stop))
        worker.start()
        series: dict[str, list[tuple[float, float]]] = {k: [] for k in PROCESS_SERIES}
        started = time.monotonic()
        try:
            while worker.is_alive():
                now = time.monotonic() - started
                point = process_sample(agent, exabgp)
                for key, value in point.items():
                    series[key].append((now, value))
                if on_sample:
                    on_sample({"t": now, **point})
                worker.join(every)
        finally:
            stop.set()
            worker.join()
        settled = _settle(fabric, churner)
        same_processes = (node.agent_pid(), node.exabgp_pid()) == (agent, exabgp)
        # The first minute is warm-up (caches, the allocator's arenas): slopes from the rest.
        warm = {k: [(t, v) for t, v in points if t >= 60] or points for k, points in series.items()}
        result: dict[str, Any] = {
            "minutes": minutes,
            "rate": rate,
            "changes": churner.changes,
            "final_set_matches": settled is not None,
            "same_processes": same_processes,
        }
        for key, points in series.items():
            result[f"{key}_start"] = round(points[0][1], 1)
            result[f"{key}_end"] = round(points[-1][1], 1)
            result[f"{key}_max"] = round(max(v for _, v in points), 1)
            result[f"{key}_slope_per_hour"] = round(slope_per_hour(warm[key]), 2)
        say(
            quiet,
            f"soak {minutes} min at {rate}/s ({churner.changes} changes): agent RSS "
            f"{result['agent_rss_mb_start']} -> {result['agent_rss_mb_end']} MB "
            f"({result['agent_rss_mb_slope_per_hour']} MB/h), ExaBGP "
            f"{result['exabgp_rss_mb_start']} -> {result['exabgp_rss_mb_end']} MB "
            f"({result['exabgp_rss_mb_slope_per_hour']} MB/h), fds agent "
            f"{result['agent_fds_start']:.0f} -> {result['agent_fds_end']:.0f}, ExaBGP "
            f"{result['exabgp_fds_start']:.0f} -> {result['exabgp_fds_end']:.0f}; "
            f"final set {'exact' if settled is not None else 'WRONG'}",
        )
        return result
