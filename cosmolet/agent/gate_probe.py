"""The data-plane gate's edge: asks the service proxy's health endpoint every
``node.dataplaneGate.intervalSeconds`` and feeds the answer to ``cosmolet.agent.gate.Gate``.

kube-proxy's ``/healthz`` (``pkg/proxy/healthcheck``) answers 200 while its rules are in sync
and 503 once an update has stayed queued for longer than its ``healthTimeout`` (2 x
``syncPeriod``, 60 s by default) or when its Node is being deleted, with a JSON body
``{"lastUpdated": T, "currentTime": T, "nodeEligible": B}`` whose times are Go's
``time.Time.String()`` (``2024-05-01 10:00:00.5 +0000 UTC m=+12.3``). Cilium's kube-proxy
replacement serves the same body on ``kubeProxyReplacementHealthzBindAddr``. Current releases send
``lastUpdated`` equal to ``currentTime`` with a 200; older ones sent the time of the last sync
loop, which runs every ``syncPeriod`` (30 s by default). So a 200 whose
``lastUpdated`` lags its own ``currentTime`` by more than ``STALE_SECONDS`` (twice kube-proxy's
own default healthTimeout: only a proxy frozen well past its own threshold) fails too. Both
times come from the proxy's clock: no skew between the nodes' clocks enters. A body without those
fields (kube-router's plain ``ok``) is judged by the status code alone.

Anything else (a refused connection, a timeout, a reset, a body that claims the times but
cannot be read) is a failed probe with a message that says what happened, never an exception.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from cosmolet import logs
from cosmolet.agent.gate import Gate, GateState, Probe

log = logs.get("cosmolet.gate")

STALE_SECONDS = 120.0
MAX_BODY = 65536
_GO_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(\.\d+)? ([+-])(\d{2})(\d{2})\b")


def parse_time(value: object) -> datetime | None:
    """A Go ``time.Time.String()`` (or an RFC 3339 time), or ``None`` if it is neither."""
    if not isinstance(value, str):
        return None
    match = _GO_TIME.match(value)
    if match:
        day, clock, fraction, sign, hours, minutes = match.groups()
        offset = timedelta(hours=int(hours), minutes=int(minutes))
        zone = timezone(-offset if sign == "-" else offset)
        micros = int((fraction or ".0")[1:7].ljust(6, "0"))
        base = datetime.strptime(f"{day} {clock}", "%Y-%m-%d %H:%M:%S")
        return base.replace(microsecond=micros, tzinfo=zone)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def judge(status: int, body: bytes) -> Probe:
    """The verdict on one HTTP answer."""
    fields: dict[str, Any] = {}
    try:
        decoded = json.loads(body.decode("utf-8", "replace")) if body.strip() else None
    except ValueError:
        decoded = None
    if isinstance(decoded, dict):
        fields = decoded
    claims_times = "lastUpdated" in fields or "currentTime" in fields
    last, current = parse_time(fields.get("lastUpdated")), parse_time(fields.get("currentTime"))
    if status != 200:
        detail = f"HTTP {status}"
        if fields.get("nodeEligible") is False:
            detail += ": the proxy says this node is being deleted"
        elif last is not None and last.year > 1:
            detail += f": its rules were last updated at {last.isoformat()}"
        elif last is not None:
            detail += ": it has never synced its rules"
        return Probe(False, detail)
    if not claims_times:
        return Probe(True, "HTTP 200")
    if last is None or current is None:
        shown = body[:120].decode("utf-8", "replace")
        return Probe(False, f"HTTP 200 with unreadable lastUpdated/currentTime: {shown!r}")
    lag = (current - last).total_seconds()
    if lag > STALE_SECONDS:
        return Probe(
            False,
            f"HTTP 200, but its rules were last updated {lag:.0f} s before its own clock "
            f"(over {STALE_SECONDS:g} s: stale)",
        )
    return Probe(True, "HTTP 200" if lag < 1 else f"HTTP 200, rules updated {lag:.0f} s ago")


#: No proxy, whatever ``http_proxy``/``HTTP_PROXY`` say: a pod given a proxy for its egress
#: must still ask its own node's service proxy, not the HTTP proxy, how its rules are.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(url: str, timeout: float) -> Probe:
    """GET ``url`` and judge the answer; every failure becomes a failed ``Probe``."""
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            return judge(response.status, response.read(MAX_BODY))
    except urllib.error.HTTPError as error:
        try:
            body = error.read(MAX_BODY)
        except OSError:
            body = b""
        return judge(error.code, body)
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, ConnectionRefusedError):
            return Probe(False, "connection refused: is the service proxy running on this node?")
        if isinstance(reason, TimeoutError):
            return Probe(False, f"no answer within {timeout:g} s")
        return Probe(False, f"cannot connect: {reason}")
    except TimeoutError:
        return Probe(False, f"no answer within {timeout:g} s")
    except (OSError, ValueError, http.client.HTTPException) as error:  # a reset, not HTTP
        said = "".join(c if c.isprintable() else "?" for c in str(error)).strip()
        return Probe(False, f"bad answer: {type(error).__name__}: {said}"[:200])


def probe_timeout(interval: float) -> float:
    """At least a second (a busy node), at most five, never longer than the gate's interval
    unless that is under a second."""
    return min(5.0, max(1.0, interval))


def poll(
    gate: Gate,
    interval: float,
    on_change: Callable[[bool], None],
    stop: threading.Event,
    clock: Callable[[], float] = time.monotonic,
    get: Callable[[str, float], Probe] = fetch,
) -> None:
    """Probe every ``interval`` seconds until ``stop``; ``on_change(allows)`` on each change."""
    timeout = probe_timeout(interval)
    while not stop.is_set():
        started = clock()
        probe = get(gate.url, timeout)
        before = gate.view().state
        changed = gate.observe(probe, clock())
        state = gate.view().state
        if state is not before:
            method = log.info if state is GateState.OPEN else log.warning
            method("data-plane gate " + str(state), url=gate.url, detail=probe.detail)
        if changed is not None:
            on_change(changed)
        stop.wait(max(0.0, interval - (clock() - started)))
