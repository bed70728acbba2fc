"""Least privilege: ``cosmolet start`` (ExaBGP and the agent) runs as an unprivileged user with
no capability at all and still peers and advertises, numbered (with a TCP MD5 password) and
hybrid; the password, read from its file, never shows in the logs, ``/status``, the
metrics, or ``cosmolet render`` (masked), and the rendered ExaBGP config is readable by its
owner only. (The chart's RBAC, read-only, is checked in tests/unit/test_chart.py.)"""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
import sys
from functools import partial
from pathlib import Path

from cosmolet.config.schema import validate
from cosmolet.hybrid import frr_config
from lab.netns import Lab, wait_for
from lab.node import Cosmolet, http_get
from lab.numbered import NumberedFabric, build_numbered
from tests.factories import endpoint, service, slice_
from tests.integration.test_hybrid import SERVICE_V4, build_hybrid, hybrid_config

PASSWORD = "Un1que-md5-s3cret"
NOBODY = pwd.getpwnam("nobody").pw_uid


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if ":" in line)


def test_numbered_mode_runs_unprivileged_with_a_secret_password(lab: Lab) -> None:
    fabric = build_numbered(lab, passwords={NumberedFabric.NODE_V4: PASSWORD})
    node = fabric.cosmolet()
    password = node.directory / "md5"
    password.write_text(PASSWORD + "\n")
    password.chmod(0o400)
    node.config["bgp"]["peers"] = [
        {**node.config["bgp"]["peers"][0], "passwordFile": str(password)}
    ]
    node.__post_init__()
    node.uid = NOBODY
    node.set_objects([service("web", cluster_ips=("10.96.0.10",)), slice_("web", [endpoint()])])
    node.start()
    fabric.wait_rib({"10.96.0.10/32"}, timeout=40)

    for pid in (node.agent_pid(), node.exabgp_pid()):
        status = _status(pid)
        assert status["Uid"].split()[:2] == [str(NOBODY)] * 2, status["Uid"]
        assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0
        assert status["NoNewPrivs"].strip() == "1"

    conf = node.directory / "run" / "exabgp.conf"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert conf.stat().st_uid == NOBODY

    _, status_body = http_get(fabric.node, "/status")
    _, metrics = http_get(fabric.node, "/metrics")
    rendered = subprocess.run(
        [sys.executable, "-m", "cosmolet", "render", "exabgp", "--config", str(node.config_path)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "NODE_NAME": "node1"},
    ).stdout
    assert 'md5-password "<masked>"' in rendered
    for where, text in (
        ("log", node.log.read_text()),
        ("/status", status_body),
        ("/metrics", metrics),
        ("render", rendered),
    ):
        assert PASSWORD not in text, f"the password shows in {where}"
    wait_for(lambda: fabric.established(fabric.NODE_V4), 10)


def test_hybrid_mode_runs_unprivileged_too(lab: Lab) -> None:
    """BGP unnumbered as ``nobody`` with no capability: netlink is read without privilege, and
    binding a session to its fabric interface (source-interface) needs none on Linux >= 5.7.
    zebra (the chart's FRR sidecar) keeps its own NET_ADMIN and NET_RAW."""
    fabric = build_hybrid(lab)
    config = hybrid_config(lab)
    lab.frr(fabric.node, frr_config.render(validate(config), ["eth1", "eth2"]), daemons=("zebra",))
    node = Cosmolet(fabric.node, lab.workdir / "node1-agent", config, uid=NOBODY)
    node.set_objects([service("web", cluster_ips=(SERVICE_V4,)), slice_("web", [endpoint()])])
    node.start()
    for index in (0, 1):
        node_ll = wait_for(partial(fabric.node.link_local, f"eth{index + 1}"), 10)
        wait_for(partial(fabric.via, index, SERVICE_V4, node_ll), 60, what=f"leaf{index + 1}")
    for pid in (node.agent_pid(), node.exabgp_pid()):
        status = _status(pid)
        assert status["Uid"].split()[0] == str(NOBODY)
        assert int(status["CapEff"], 16) == 0


#: A uid with no passwd entry, in group 0, as OpenShift runs a pod that names no runAsUser.
ARBITRARY_UID = 1000680000


def test_any_uid_without_a_passwd_entry_in_group_0(lab: Lab) -> None:
    """The pod must start under any runAsUser: no passwd entry for the uid (so no user name
    for ExaBGP's ``daemon.user``) and group 0, which makes ExaBGP want to drop privileges."""
    import pytest

    with pytest.raises(KeyError):
        pwd.getpwuid(ARBITRARY_UID)
    fabric = build_numbered(lab)
    node = fabric.cosmolet()
    node.uid, node.gid = ARBITRARY_UID, 0
    node.set_objects([service("web", cluster_ips=("10.96.0.10",)), slice_("web", [endpoint()])])
    node.start()
    fabric.wait_rib({"10.96.0.10/32"}, timeout=40)
    for pid in (node.agent_pid(), node.exabgp_pid()):
        status = _status(pid)
        assert status["Uid"].split()[0] == str(ARBITRARY_UID)
        assert status["Gid"].split()[0] == "0"
        assert int(status["CapEff"], 16) == 0
    assert "without a privilege drop" in node.log.read_text()
