"""``make lab-up`` / ``make lab-down``: the reference fabric (``lab/fabric.py``) kept running in
the foreground for exploration, with a few sample Services, and its removal. Split from
``lab/fabric.py`` (which builds the fabric) to keep both short."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from lab.fabric import running, wait_established

UP_PID = Path("/tmp/cosmolet-lab-up.pid")


def sample_services(kubeconfig: Path) -> None:
    """A few Services for exploring by hand (the demo makes its own)."""
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(kubeconfig))
    core, discovery = client.CoreV1Api(api), client.DiscoveryV1Api(api)
    for name, ips in (("web", ["10.96.0.10"]), ("dual", ["10.96.0.11", "fd00:96::11"])):
        core.create_namespaced_service(
            "default",
            {"metadata": {"name": name}, "spec": {"clusterIP": ips[0], "clusterIPs": ips}},
        )
        for family in sorted({"IPv6" if ":" in ip else "IPv4" for ip in ips}):
            v6 = family == "IPv6"
            discovery.create_namespaced_endpoint_slice(
                "default",
                {
                    "metadata": {
                        "name": f"{name}-{family.lower()}",
                        "labels": {"kubernetes.io/service-name": name},
                    },
                    "addressType": family,
                    "endpoints": [
                        {
                            "addresses": ["fd00:244:1::5" if v6 else "10.244.1.5"],
                            "nodeName": "node1",
                        },
                        {
                            "addresses": ["fd00:244:2::5" if v6 else "10.244.2.5"],
                            "nodeName": "node2",
                        },
                    ],
                },
            )


def up() -> int:
    """``make lab-up``: the fabric in the foreground until Ctrl-C, with how to use it."""
    import signal
    import sys
    import threading

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    UP_PID.write_text(f"{os.getpid()}\n")
    with running() as fabric:
        wait_established(fabric)
        assert fabric.kubeconfig is not None
        sample_services(fabric.kubeconfig)
        lab = fabric.lab
        spine_dir = lab.workdir / fabric.spine.name
        print(
            f"""
The lab is up (namespaces {lab.tag}-*). Try, as root, in another shell:

  kubectl --kubeconfig {fabric.kubeconfig} get svc -A        # any kubectl, or the python client
  python -m cosmolet plan --config lab/examples/config.yaml --objects lab/examples/objects.json
  vtysh --vty_socket {spine_dir} -c 'show bgp ipv4 unicast'
  vtysh --vty_socket {lab.workdir / fabric.leaves[0].name} -c 'show bgp summary'
  ip netns exec {fabric.nodes[0].name} curl -s 127.0.0.1:9179/metrics | grep cosmolet_routes
  ip netns exec {fabric.nodes[0].name} python -m cosmolet status
  ip netns exec {fabric.client.name} ping -c1 10.96.0.10

Ctrl-C (or make lab-down from another shell) removes everything.
""",
            flush=True,
        )
        stop.wait()
    UP_PID.unlink(missing_ok=True)
    print("lab removed", file=sys.stderr)
    return 0


def down() -> int:
    """``make lab-down``: remove every lab namespace (prefix ``cml``) and the processes in it."""
    import signal as signals

    from lab.netns import leftovers, run

    with contextlib.suppress(OSError, ValueError):
        up_pid = int(UP_PID.read_text())
        os.kill(up_pid, signals.SIGTERM)  # `make lab-up` cleans up after itself
        for _ in range(100):
            os.kill(up_pid, 0)
            time.sleep(0.1)
    for name in leftovers():
        for pid in run(["ip", "netns", "pids", name], check=False).split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signals.SIGTERM)
        time.sleep(0.5)
        for pid in run(["ip", "netns", "pids", name], check=False).split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signals.SIGKILL)
        run(["ip", "netns", "del", name], check=False)
        print(f"removed {name}")
    return 0


if __name__ == "__main__":
    import sys

    commands = {"up": up, "down": down}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        print("usage: python -m lab.lab_up up|down", file=sys.stderr)
        sys.exit(2)
    sys.exit(commands[sys.argv[1]]())
