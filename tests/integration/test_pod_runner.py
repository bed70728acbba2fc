"""The pod runner itself (``lab.pod``), on a small pod of shell commands: what each container
sees and may do, shared emptyDirs, fsGroup, probes from the node, a liveness restart, and a
delete that ends with SIGKILL after the grace period."""

from __future__ import annotations

import base64
import itertools
import os
from pathlib import Path
from typing import Any

import pytest

from lab.netns import Lab, wait_for
from lab.pod import Image, LabNode, PodError, PodRunner

NODE_IP = "10.255.255.7"
UID, GID, SUPPLEMENTAL, FS_GROUP = 1234, 1235, 4000, 3000
CAP_NET_ADMIN = 1 << 12

RESTRICTED = {
    "runAsUser": UID,
    "runAsGroup": GID,
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}

POD: dict[str, Any] = {
    "kind": "DaemonSet",
    "metadata": {"name": "probe", "namespace": "lab"},
    "spec": {
        "template": {
            "metadata": {"labels": {"app": "probe"}},
            "spec": {
                "hostNetwork": True,
                "terminationGracePeriodSeconds": 2,
                "securityContext": {"fsGroup": FS_GROUP, "supplementalGroups": [SUPPLEMENTAL]},
                "initContainers": [
                    {
                        "name": "init",
                        "command": ["sh", "-c", "echo from-init > /shared/hello"],
                        "securityContext": RESTRICTED,
                        "volumeMounts": [{"name": "shared", "mountPath": "/shared"}],
                    }
                ],
                "containers": [
                    {
                        # PID 1 of its PID namespace with a SIGTERM handler: exits 0.
                        "name": "app",
                        "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"],
                        "env": [
                            {
                                "name": "NODE_IP",
                                "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}},
                            },
                            {"name": "MSG", "value": "on $(NODE_IP)"},
                        ],
                        "securityContext": RESTRICTED,
                        "volumeMounts": [
                            {"name": "shared", "mountPath": "/shared"},
                            {"name": "pw", "mountPath": "/secret", "readOnly": True},
                        ],
                    },
                    {
                        "name": "web",
                        "command": ["python3", "-m", "http.server", "18080"],
                        "args": ["--bind", "$(NODE_IP)"],
                        "env": [
                            {
                                "name": "NODE_IP",
                                "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                            }
                        ],
                        "ports": [{"name": "http", "containerPort": 18080}],
                        "securityContext": {"runAsUser": 0, "capabilities": {"add": ["NET_ADMIN"]}},
                        "readinessProbe": {
                            "httpGet": {"path": "/", "port": "http"},
                            "periodSeconds": 1,
                        },
                        "livenessProbe": {
                            "exec": {"command": ["test", "!", "-e", "/dead"]},
                            "periodSeconds": 1,
                            "failureThreshold": 1,
                        },
                    },
                    {
                        # Ignores SIGTERM, and has a child: both go at the grace period's end.
                        "name": "stubborn",
                        "command": ["sh", "-c", "trap '' TERM; sleep 1000 & wait; wait"],
                    },
                ],
                "volumes": [
                    {"name": "shared", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
                    {"name": "pw", "secret": {"secretName": "pw", "defaultMode": 0o400}},
                ],
            },
        }
    },
}
SECRET = {
    "kind": "Secret",
    "metadata": {"name": "pw", "namespace": "lab"},
    "data": {"key": base64.b64encode(b"sekrit").decode()},
}


def image() -> Image:
    return Image((), (), 0, 0)


def run(runner: PodRunner, container: str, script: str) -> str:
    result = runner.exec(container, "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    return result.stdout


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_a_pod_as_the_kubelet_runs_it(lab: Lab) -> None:
    ns = lab.namespace("node")
    ns.ip("addr", "add", f"{NODE_IP}/32", "dev", "lo")
    node = LabNode("node", ns.name, (NODE_IP,))
    runner = PodRunner([POD, SECRET], node, lab.workdir / "pod", image())
    with runner:
        runner.wait_ready(30)
        assert runner.states["init"].exit_codes == [0]

        ident = run(
            runner, "app", "id -u; id -g; id -G; grep -E 'CapEff|NoNewPrivs' /proc/self/status"
        )
        lines = ident.split("\n")
        assert (int(lines[0]), int(lines[1])) == (UID, GID)
        assert {int(g) for g in lines[2].split()} == {GID, SUPPLEMENTAL, FS_GROUP}
        assert "CapEff:\t0000000000000000" in ident and "NoNewPrivs:\t1" in ident
        assert run(runner, "app", "cat /shared/hello") == "from-init\n"  # one emptyDir, shared
        assert " /shared tmpfs " in run(runner, "app", "cat /proc/mounts")
        assert run(runner, "app", "cat /secret/key") == "sekrit"  # mode 0400 | fsGroup's g+r
        assert run(runner, "app", "stat -c %a:%g /secret/key") == f"440:{FS_GROUP}\n"
        assert runner.exec("app", "touch", "/x").returncode != 0  # readOnlyRootFilesystem
        assert runner.exec("app", "touch", "/secret/x").returncode != 0  # readOnly
        assert run(runner, "app", "echo $MSG") == f"on {NODE_IP}\n"
        assert run(runner, "app", "echo $HOSTNAME") == "node\n"  # hostNetwork

        web = run(runner, "web", "id -u; grep CapEff /proc/self/status")
        assert web.split()[0] == "0"
        assert int(web.split()[-1], 16) & CAP_NET_ADMIN  # added to the runtime's default set

        # Liveness fails once /dead exists: the container is restarted on a fresh root layer.
        run(runner, "web", "touch /dead")
        wait_for(lambda: runner.states["web"].restarts == 1, 15, what="web restarted")
        wait_for(lambda: runner.ready, 15, what="web ready again")
        assert runner.exec("web", "test", "-e", "/dead").returncode != 0
        assert any("liveness probe failed" in what for _, what in runner.events)

        processes = [
            pid for state in runner.states.values() if state.run for pid in state.run.processes()
        ]
        assert len(processes) >= 5  # sh and sleep, python, sh and sleep
        assert run(runner, "app", "cat /proc/1/comm") == "sh\n"  # its own PID namespace
        took = runner.delete()
    assert 2 <= took < 5  # the grace period, then SIGKILL
    assert runner.states["stubborn"].exit_codes == [137]
    assert runner.states["app"].exit_codes == [0]  # its handler ran
    # python as PID 1 has no SIGTERM handler: the kernel drops the signal (as in a real
    # container), and SIGKILL ends it after the grace period, at the liveness kill and now.
    assert runner.states["web"].exit_codes == [137, 137]
    assert not [pid for pid in processes if alive(pid)]
    assert runner.sandbox is None


def test_a_pod_the_node_cannot_run(lab: Lab) -> None:
    ns = lab.namespace("node")
    tainted = LabNode("node", ns.name, (NODE_IP,), taints=({"key": "x", "effect": "NoExecute"},))
    with pytest.raises(PodError, match="taint x:NoExecute not tolerated"):
        PodRunner([POD, SECRET], tainted, lab.workdir / "pod", image()).start()
    without_secret = PodRunner(
        [POD], LabNode("node", ns.name, (NODE_IP,)), lab.workdir / "p", image()
    )
    with pytest.raises(PodError, match="Secret pw not found"):
        without_secret.start()


def test_a_crashing_container_is_restarted_with_back_off(lab: Lab) -> None:
    ns = lab.namespace("node")
    crashing = {
        "kind": "DaemonSet",
        "metadata": {"name": "crash", "namespace": "lab"},
        "spec": {
            "template": {
                "spec": {
                    "hostNetwork": True,
                    "containers": [
                        {"name": "fails", "command": ["false"]},
                        {"name": "missing", "command": ["/no/such/program"]},
                    ],
                }
            }
        },
    }
    node = LabNode("node", ns.name, (NODE_IP,))
    with PodRunner([crashing], node, lab.workdir / "pod", image(), backoff=0.5) as runner:
        wait_for(lambda: len(runner.states["fails"].exit_codes) >= 4, 10, what="four runs")
        assert set(runner.states["fails"].exit_codes) == {1}
        assert set(runner.states["missing"].exit_codes) == {127}
        assert "No such file or directory" in runner.log("missing", 0)
        assert not runner.ready
        starts = [when for when, what in runner.events if what == "Started container fails"]
        gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
        # The kubelet's back-off: the first restart at once, then 0.5 s, then 1 s after exits.
        assert gaps[0] < 1.0 and gaps[1] >= 0.5 and gaps[2] >= 1.0
