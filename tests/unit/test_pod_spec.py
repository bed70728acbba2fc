"""The pod runner's decisions, before anything runs (``lab.pod``): the image's ENTRYPOINT, CMD
and USER from the Dockerfile, the container's command and environment, its identity and
capabilities, scheduling, and volume files."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from lab.pod.env import ApiEndpoint, environment
from lab.pod.image import Image
from lab.pod.launch import host_groups
from lab.pod.spec import RUNTIME_DEFAULT_CAPS, LabNode, Objects, Pod, PodError, expand
from lab.pod.volumes import ServiceAccount, quantity, set_up

ROOT = Path(__file__).parents[2]
NODE = LabNode("node1", "cml-node1", ("10.0.0.5", "fd00::5"), {"role": "bgp"})
IMAGE = Image(("cosmolet",), ("start", "--config", "/etc/c.yaml"), 10001, 10001, {"A": "1"})


def daemonset(spec: dict[str, Any], template_metadata: dict[str, Any] | None = None) -> Any:
    return {
        "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "lab"},
        "spec": {"template": {"metadata": template_metadata or {}, "spec": spec}},
    }


def pod_of(*containers: dict[str, Any], **spec: Any) -> Pod:
    return Pod.from_manifests(
        [daemonset({"hostNetwork": True, "containers": list(containers), **spec})]
    )


def test_the_projects_dockerfile() -> None:
    image = Image.from_dockerfile(ROOT / "Dockerfile")
    assert image.entrypoint == ("cosmolet",)
    assert image.cmd == ("start", "--config", "/etc/cosmolet/config.yaml")
    assert (image.uid, image.gid) == (10001, 10001)  # USER 10001, the cosmolet user's group
    assert image.groups == {10001: "cosmolet", 10002: "frr", 10003: "frrvty"}
    assert image.users[10001].name == "cosmolet"
    assert image.env["PYTHONUNBUFFERED"] == "1"
    assert image.env["COSMOLET_GIT_COMMIT"] == "unknown"  # the ARG's default, substituted
    assert image.rootfs is None


def test_dockerfile_forms(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(
        "FROM a AS build\nUSER 5\nFROM b\n# a comment\nENV K v w\n"
        'ENTRYPOINT run --flag\nCMD ["x"]\nENTRYPOINT ["e"]\nWORKDIR /w\n'
    )
    image = Image.from_dockerfile(tmp_path / "Dockerfile")
    assert image.entrypoint == ("e",) and image.cmd == ()  # ENTRYPOINT resets an earlier CMD
    assert (image.uid, image.gid) == (0, 0)  # the first stage's USER is not the image's
    assert image.env == {"K": "v w"} and image.working_dir == "/w"


@pytest.mark.parametrize(
    ("container", "argv"),
    [
        ({}, ["cosmolet", "start", "--config", "/etc/c.yaml"]),
        ({"args": ["render"]}, ["cosmolet", "render"]),
        ({"command": ["sh", "-c"]}, ["sh", "-c"]),  # command drops the image's CMD too
        (
            {"command": ["echo"], "args": ["$(A)", "$$(A)", "$(NOPE)"]},
            ["echo", "1", "$(A)", "$(NOPE)"],
        ),
    ],
)
def test_command_and_args_against_entrypoint_and_cmd(
    container: dict[str, Any], argv: list[str]
) -> None:
    pod = pod_of({"name": "c", **container})
    assert pod.containers[0].argv(IMAGE, {"A": "1"}) == argv


def test_environment_order_and_the_downward_api() -> None:
    objects = Objects.from_manifests(
        [
            {
                "kind": "ConfigMap",
                "metadata": {"name": "cm", "namespace": "lab"},
                "data": {"K": "cm"},
            },
            {
                "kind": "Secret",
                "metadata": {"name": "s", "namespace": "lab"},
                "data": {"pw": base64.b64encode(b"sekrit").decode()},
            },
        ]
    )
    env_spec = [
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "NODE_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
        {"name": "GREETING", "value": "$(NODE_NAME) says $(K)"},
    ]
    pod = Pod.from_manifests(
        [
            daemonset(
                {
                    "hostNetwork": True,
                    "containers": [
                        {
                            "name": "c",
                            "env": env_spec,
                            "envFrom": [{"configMapRef": {"name": "cm"}}],
                        }
                    ],
                },
                {"labels": {"app": "a"}},
            )
        ]
    )
    env = environment(
        pod.containers[0], pod, NODE, objects, IMAGE, ApiEndpoint("::1", 6443), "/venv/bin"
    )
    assert env["PATH"].startswith("/venv/bin:") and env["A"] == "1"
    assert (env["NODE_NAME"], env["NODE_IP"], env["POD_IP"]) == ("node1", "10.0.0.5", "10.0.0.5")
    assert env["POD_NAME"] == pod.name and pod.name.startswith("agent-") and env["NS"] == "lab"
    assert (env["APP"], env["PW"], env["K"]) == ("a", "sekrit", "cm")
    assert env["GREETING"] == "node1 says cm"
    assert (env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"]) == ("::1", "6443")
    assert env["KUBERNETES_PORT"] == "tcp://[::1]:6443"
    missing = pod_of(
        {
            "name": "c",
            "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}],
        }
    )
    with pytest.raises(PodError, match="nope/k not found"):
        environment(missing.containers[0], missing, NODE, objects, IMAGE, None)


def test_identity_users_groups_and_capabilities() -> None:
    restricted = {
        "runAsUser": 10001,
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    pod = pod_of(
        {"name": "agent", "securityContext": restricted},
        {
            "name": "frr",
            "securityContext": {"runAsUser": 0, "capabilities": {"add": ["NET_ADMIN"]}},
        },
        {"name": "image-user"},
        securityContext={"supplementalGroups": [10003], "fsGroup": 10001, "runAsGroup": 7},
    )
    agent, frr, image_user = (c.identity(pod, IMAGE) for c in pod.containers)
    assert (agent.uid, agent.gid, agent.groups) == (10001, 7, (10003, 10001))
    assert agent.capabilities == frozenset() and agent.no_new_privs and agent.read_only_root
    assert frr.uid == 0 and frr.capabilities == RUNTIME_DEFAULT_CAPS | {"net_admin"}
    assert not frr.no_new_privs and not frr.read_only_root
    assert (image_user.uid, image_user.gid) == (10001, 7)  # USER from the image
    root = pod_of({"name": "c", "securityContext": {"runAsNonRoot": True, "runAsUser": 0}})
    with pytest.raises(PodError, match="runAsNonRoot"):
        root.containers[0].identity(root, IMAGE)


def test_host_mode_translates_the_images_groups_by_name() -> None:
    pod = pod_of({"name": "c"}, securityContext={"supplementalGroups": [10003, 4242]})
    identity = pod.containers[0].identity(pod, IMAGE)
    translated = host_groups(identity, {10003: "root", 4242: "no-such-group-here"})
    assert translated.groups == (0, 4242)


def test_scheduling_follows_node_selector_and_taints() -> None:
    pod = pod_of({"name": "c"}, nodeSelector={"role": "bgp"})
    assert pod.unschedulable(NODE) is None
    assert "nodeSelector" in str(
        pod_of({"name": "c"}, nodeSelector={"role": "x"}).unschedulable(NODE)
    )
    taint = {"key": "cp", "effect": "NoSchedule"}
    tainted = LabNode("n", "ns", ("10.0.0.1",), {"role": "bgp"}, taints=(taint,))
    assert "taint cp:NoSchedule" in str(pod.unschedulable(tainted))
    tolerant = pod_of(
        {"name": "c"}, nodeSelector={"role": "bgp"}, tolerations=[{"operator": "Exists"}]
    )
    assert tolerant.unschedulable(tainted) is None
    cordon = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
    cordoned = LabNode("n", "ns", ("10.0.0.1",), {"role": "bgp"}, taints=(cordon,))
    assert pod.unschedulable(cordoned) is None  # the DaemonSet controller tolerates it


def test_expand() -> None:
    assert expand("$(A)-$(B)-$$(A)-$(", {"A": "x"}) == "x-$(B)-$(A)-$("


def test_quantity() -> None:
    assert quantity("64Mi") == 64 * 2**20 and quantity("1G") == 10**9 and quantity(5) == 5
    with pytest.raises(PodError):
        quantity("1.5Gi")


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_volume_files_modes_and_fs_group(tmp_path: Path) -> None:
    secret = {
        "kind": "Secret",
        "metadata": {"name": "pw", "namespace": "lab"},
        "data": {"tor": base64.b64encode(b"x").decode()},
    }
    cm = {
        "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": "lab"},
        "data": {"a.yaml": "a: 1\n"},
    }
    volumes = [
        {"name": "pw", "secret": {"secretName": "pw", "defaultMode": 0o400}},
        {
            "name": "cfg",
            "configMap": {"name": "cfg", "items": [{"key": "a.yaml", "path": "sub/b.yaml"}]},
        },
        {"name": "gone", "configMap": {"name": "absent", "optional": True}},
        {"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}},
    ]
    for fs_group, mode, group in ((None, 0o400, 0), (3000, 0o440, 3000)):
        context = {} if fs_group is None else {"fsGroup": fs_group}
        pod = pod_of({"name": "c"}, volumes=volumes, securityContext=context)
        where = tmp_path / str(fs_group)
        made = set_up(
            pod, NODE, Objects.from_manifests([secret, cm]), where, ServiceAccount("t", b"ca")
        )
        assert set(made) == {"pw", "cfg", "scratch", "kube-api-access-lab"}
        info = (where / "pw" / "tor").stat()
        assert (stat.S_IMODE(info.st_mode), info.st_gid) == (mode, group)
        assert (where / "cfg" / "sub" / "b.yaml").read_text() == "a: 1\n"
        assert made["scratch"].tmpfs_size == 2**20
        assert (where / "kube-api-access-lab" / "namespace").read_text() == "lab"
    absent = pod_of({"name": "c"}, volumes=[{"name": "x", "secret": {"secretName": "absent"}}])
    with pytest.raises(PodError, match="Secret absent not found"):
        set_up(absent, NODE, Objects.from_manifests([]), tmp_path / "absent", None)
