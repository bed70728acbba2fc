"""The agent's endpoints on IPv6-only nodes: ``http.listen`` on ``[::]`` (the kubelet probes the
node's IPv6 address) and ``http.statusListen`` on ``[::1]``."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from tests.component.test_http_api import free_port, get, http_config, started


def test_listen_on_ipv6_any_and_status_on_ipv6_loopback(tmp_path: Path) -> None:
    port, status_port = free_port(), free_port()
    config = http_config(listen=f"[::]:{port}", statusListen=f"[::1]:{status_port}")
    with started(tmp_path, config) as (_, servers):
        assert servers.public is not None and servers.status is not None
        assert servers.public.address_family == socket.AF_INET6
        assert get(f"http://[::1]:{port}/healthz")[0] == 200
        # [::] takes IPv4 too where the kernel allows it (net.ipv6.bindv6only=0, Linux's default)
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        code, body = get(f"http://[::1]:{status_port}/status")
        assert code == 200 and json.loads(body)["node"]
        assert get(f"http://[::1]:{port}/status")[0] == 404  # /status only on its listener
