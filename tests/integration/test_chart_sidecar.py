"""The Helm chart's hybrid-mode FRR, run here as the pod would run it: the init container's
command renders frr.conf, the sidecar script (from the rendered ConfigMap) starts Debian's FRR
with the chart's daemons file, and a switch on the other end of a veth receives the node's
router advertisements. An unprivileged user in frrvty (the agent's uid in the image) configures
bfdd through the shared socket directory; one without the group cannot. SIGTERM stops FRR.

/etc/frr and /var/run/frr are bind-mounted from the test's own directory in a private mount
namespace, as the pod's emptyDirs would be; the host's FRR files are never touched.
"""

from __future__ import annotations

import grp
import os
import pwd
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.netns import Lab, Namespace, wait_for
from tests.unit.test_chart import CHART, HELM, by_kind, containers, template

pytestmark = pytest.mark.skipif(HELM is None, reason="helm not installed (make setup installs it)")

UNPRIVILEGED = "nobody"


def _pod_mounts(etc: Path, run: Path, command: str) -> list[str]:
    """``sh -c`` in a private mount namespace with the pod's volumes at FRR's paths."""
    script = f"mount --bind {etc} /etc/frr && mount --bind {run} /var/run/frr && {command}"
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]


def _vtysh_as(user: str, groups: str, node: Namespace, etc: Path, run: Path, *commands: str) -> Any:
    account = pwd.getpwnam(user)
    setpriv = f"setpriv --reuid {account.pw_uid} --regid {account.pw_gid} {groups} --inh-caps=-all"
    args = " ".join(f"-c '{c}'" for c in commands)
    return subprocess.run(
        node.cmd(*_pod_mounts(etc, run, f"{setpriv} vtysh --vty_socket {run} {args}")),
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


def test_the_sidecar_runs_zebra_and_bfdd_and_sends_router_advertisements(lab: Lab) -> None:
    documents = template(
        "-f",
        str(CHART / "ci/hybrid-values.yaml"),
        "--set",
        "config.bgp.interfaces={fab0}",
    )
    (configmap,) = by_kind(documents, "ConfigMap")
    pod = lab.workdir / "pod"
    volume, etc, run = pod / "etc-cosmolet", pod / "etc-frr", pod / "run-frr"
    for directory in (volume, etc, run):
        directory.mkdir(parents=True)
        directory.chmod(0o777)  # an emptyDir's mode
    for key, text in configmap["data"].items():
        (volume / key).write_text(text)

    node, switch = lab.namespace("node"), lab.namespace("switch")
    lab.link(node, "fab0", switch, "swp1")

    # The init container's command, with the pod's paths pointing at the test's directories.
    init = containers(documents)["frr-config"]["command"][-1]
    init = init.replace("/etc/cosmolet/", f"{volume}/").replace("/etc/frr/", f"{etc}/")
    env = {**os.environ, "NODE_NAME": "node1"}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    subprocess.run(node.cmd("sh", "-c", init), env=env, check=True, timeout=60)
    frr_conf = (etc / "frr.conf").read_text()
    assert "interface fab0" in frr_conf and "no ipv6 nd suppress-ra" in frr_conf
    assert yaml.safe_load((volume / "config.yaml").read_text())["mode"] == "hybrid"

    sidecar = node.popen(
        *_pod_mounts(etc, run, f"exec bash {volume}/frr-sidecar.sh"), log=pod / "sidecar.log"
    )
    try:
        wait_for(lambda: all((run / f"{d}.pid").exists() for d in ("zebra", "bfdd")), 30)
        for pidfile in run.glob("*.pid"):  # stopped by PID should the test fail
            lab.pids.append(int(pidfile.read_text()))
        assert not (run / "bgpd.pid").exists()

        wait_for(lambda: _has_link_local(node, "fab0"), 10)
        node_ll = node.link_local("fab0")

        def switch_heard_an_advertisement() -> bool:
            for entry in switch.ip_json("-6", "neigh", "show", "dev", "swp1"):
                if entry.get("dst") == node_ll and "router" in entry:
                    return True
            return False

        wait_for(switch_heard_an_advertisement, 20)

        frrvty = grp.getgrnam("frrvty").gr_gid
        granted = _vtysh_as(
            UNPRIVILEGED,
            f"--groups {frrvty}",
            node,
            etc,
            run,
            "configure terminal",
            "bfd",
            f"peer fe80::1 interface fab0 local-address {node_ll}",
            "end",
            "show bfd peers brief",
        )
        assert granted.returncode == 0, granted.stdout + granted.stderr
        assert "fe80::1" in granted.stdout
        refused = _vtysh_as(UNPRIVILEGED, "--clear-groups", node, etc, run, "show bfd peers brief")
        assert refused.returncode != 0

        # A BGP session of the node (ExaBGP's, in the pod) is open: SIGTERM waits for it to
        # close before FRR stops, so bfdd never goes down before the session does.
        wait_for(lambda: _has_link_local(switch, "swp1"), 10)  # past duplicate address detection
        session = _bgp_session(lab, node, switch, f"{switch.link_local('swp1')}%fab0")
        sidecar.send_signal(signal.SIGTERM)
        time_held = 1.5
        with pytest.raises(subprocess.TimeoutExpired):
            sidecar.wait(timeout=time_held)
        assert all(_running(pid) for pid in lab.pids), "FRR stopped before the BGP session"
        session.kill()
        session.wait(5)
        assert sidecar.wait(timeout=30) == 0
        wait_for(lambda: not any(_running(pid) for pid in lab.pids), 10)
    finally:
        if sidecar.poll() is None:
            sidecar.kill()


LISTEN = (
    "import socket,time; s=socket.socket(socket.AF_INET6); "
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('::', 179)); s.listen(); "
    "c, _ = s.accept(); time.sleep(600)"
)
CONNECT = (
    "import socket,sys,time; c=socket.create_connection((sys.argv[1], 179), timeout=5); "
    "print('connected', flush=True); time.sleep(600)"
)


def _bgp_session(lab: Lab, node: Namespace, switch: Namespace, address: str) -> Any:
    """An established TCP connection from the node to the switch's port 179 (ExaBGP's side)."""
    switch.popen(sys.executable, "-c", LISTEN, log=lab.workdir / "listen.log")

    def connect() -> Any:
        client = node.popen(sys.executable, "-c", CONNECT, address, log=lab.workdir / "c.log")
        if wait_for(lambda: "connected" in (lab.workdir / "c.log").read_text(), 3):
            return client
        return None

    client = wait_for(connect, 15, what="a TCP session to the switch's port 179")
    established = node.run("ss", "-Htn", "state", "established", "( dport = :179 )")
    assert established.strip(), "no established session seen by ss in the node's namespace"
    return client


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _has_link_local(node: Namespace, interface: str) -> bool:
    try:
        node.link_local(interface)
    except LookupError:
        return False
    return True
