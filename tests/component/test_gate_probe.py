"""The data-plane gate's HTTP probe against real sockets: kube-proxy's answers (the lab's
stand-in), and what must fail with a clear message rather than raise: a refused connection, a
server that never answers, one that answers garbage, one that resets."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cosmolet.agent.gate_probe import fetch
from lab.proxy_health import serve


@contextmanager
def raw_server(reply: Callable[[socket.socket], None]) -> Iterator[int]:
    """A TCP server on a free loopback port that hands each connection to ``reply``."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def loop() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                reply(conn)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join(2)
        listener.close()


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


def test_the_stand_in_answers_as_kube_proxy_and_the_probe_reads_it(tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "state"
    threading.Thread(target=serve, args=(port, state), daemon=True).start()
    from lab.netns import wait_for

    wait_for(state.with_suffix(".listening").exists, 5)
    url = f"http://127.0.0.1:{port}/healthz"
    assert fetch(url, 1.0).ok
    state.write_text("fail")
    failed = fetch(url, 1.0)
    assert not failed.ok and failed.detail.startswith("HTTP 503: its rules were last updated at")


def test_a_refused_connection_fails_with_a_clear_message() -> None:
    probe = fetch(f"http://127.0.0.1:{free_port()}/healthz", 1.0)
    assert not probe.ok and "connection refused" in probe.detail


def test_silence_garbage_and_resets_are_failed_probes_not_exceptions() -> None:
    def silent(conn: socket.socket) -> None:
        conn.recv(4096)
        threading.Event().wait(1.5)

    def garbage(conn: socket.socket) -> None:
        conn.recv(4096)
        conn.sendall(b"\x00\x01 not http at all\r\n\r\n")

    def reset(conn: socket.socket) -> None:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    with raw_server(silent) as port:
        probe = fetch(f"http://127.0.0.1:{port}/healthz", 0.5)
        assert not probe.ok and probe.detail == "no answer within 0.5 s"
    # A reset reaches the client while it sends the request (urllib: "cannot connect") or while
    # it reads the answer ("bad answer"), as the two threads happen to run.
    for reply, said in (
        (garbage, ("bad answer: ",)),
        (reset, ("bad answer: ", "cannot connect: ")),
    ):
        with raw_server(reply) as port:
            probe = fetch(f"http://127.0.0.1:{port}/healthz", 1.0)
            assert not probe.ok and probe.detail.startswith(said), (reply.__name__, probe)
            assert probe.detail.isprintable()


def test_a_proxy_in_the_environment_is_not_used(tmp_path: Path) -> None:
    """A pod with ``http_proxy`` set probes its node's service proxy directly. Run in a fresh
    interpreter: urllib reads the proxy variables once, when its first opener is built."""
    port = free_port()
    state = tmp_path / "state"
    threading.Thread(target=serve, args=(port, state), daemon=True).start()
    from lab.netns import wait_for

    wait_for(state.with_suffix(".listening").exists, 5)
    bogus = f"http://127.0.0.1:{free_port()}"  # nothing listens: a proxied probe is refused
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "http_proxy")}
    env.update(http_proxy=bogus, HTTP_PROXY=bogus, https_proxy=bogus, HTTPS_PROXY=bogus)
    code = (
        "import sys; from cosmolet.agent.gate_probe import fetch; "
        f"probe = fetch('http://127.0.0.1:{port}/healthz', 1.0); "
        "print(probe.detail); sys.exit(0 if probe.ok else 1)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stdout + done.stderr
