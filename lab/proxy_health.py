"""A stand-in for kube-proxy's health endpoint in a lab node's namespace, for the data-plane gate
(``node.dataplaneGate``): ``/healthz`` on ``127.0.0.1:10256``, answering as kube-proxy does
(``pkg/proxy/healthcheck``): 200 with ``{"lastUpdated", "currentTime", "nodeEligible"}`` in Go's
time format while healthy, 503 with the time it was last healthy otherwise.

Whether it is healthy is a file the test or the demo writes (``ProxyHealth.set``): ``ok`` (or no
file) or ``fail``; ``stop()`` ends the process, so the gate sees a refused connection, as when
kube-proxy is not running.

    python -m lab.proxy_health --port 10256 --state FILE
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from subprocess import Popen
from typing import Any

from lab.netns import Namespace, wait_for

PORT = 10256


def go_time(epoch: float, monotonic: float) -> str:
    """``time.Time.String()`` of a Go time read from the wall and monotonic clocks."""
    whole = int(epoch)
    nanos = int((epoch - whole) * 1e9)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(whole))
    return f"{stamp}.{nanos:09d} +0000 UTC m=+{monotonic:.9f}"


def serve(port: int, state: Path) -> None:
    last_ok = [time.time(), time.monotonic()]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if self.path != "/healthz":
                self.send_response(404)
                self.end_headers()
                return
            healthy = not state.exists() or state.read_text().strip() != "fail"
            now = [time.time(), time.monotonic()]
            if healthy:
                last_ok[:] = now
            body = (
                f'{{"lastUpdated": "{go_time(*last_ok)}","currentTime": "{go_time(*now)}", '
                f'"nodeEligible": true}}'
            ).encode()
            self.send_response(200 if healthy else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    state.with_suffix(".listening").write_text(str(port))
    server.serve_forever()


@dataclass
class ProxyHealth:
    """The stand-in, run in ``ns``; its state file and marker under ``workdir``."""

    ns: Namespace
    workdir: Path
    port: int = PORT
    process: Popen[bytes] | None = field(default=None, repr=False)

    @property
    def state(self) -> Path:
        return self.workdir / "proxy-health"

    def start(self, healthy: bool = True) -> ProxyHealth:
        import sys

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.set(healthy)
        marker = self.state.with_suffix(".listening")
        marker.unlink(missing_ok=True)
        self.process = self.ns.popen(
            sys.executable,
            "-m",
            "lab.proxy_health",
            "--port",
            str(self.port),
            "--state",
            str(self.state),
            cwd=str(Path(__file__).resolve().parents[1]),
        )
        wait_for(marker.exists, 10, what="the stand-in proxy health endpoint listening")
        return self

    def set(self, healthy: bool) -> None:
        self.state.write_text("ok" if healthy else "fail")

    def stop(self) -> None:
        """End the process: the port refuses connections, as with no kube-proxy."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(5)
        self.process = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=PORT)
    parser.add_argument("--state", type=Path, required=True)
    args = parser.parse_args()
    serve(args.port, args.state)


if __name__ == "__main__":
    main()
