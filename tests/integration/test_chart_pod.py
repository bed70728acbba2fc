"""The Helm chart's pod, run the way the kubelet runs it (``lab.pod``), against the lab API server
over TLS with the chart's own RBAC enforced for the pod's ServiceAccount token.

Each case renders with the real ``helm``, exactly as written: the README's install command, and
each values file in ``charts/cosmolet/ci``. Nothing is overridden: the fabric is built with the
addresses, AS numbers and interface names those values name (the ToRs at 10.0.0.1/10.0.0.3 and
fd00::1, the fabric ports ``swp*`` and ``eth1``). The node's own address (its InternalIP,
``status.hostIP``) is on its loopback; readiness is probed there, as the kubelet does.

Each case runs twice: in host mode (the host's install, the Dockerfile's ENTRYPOINT, CMD and
USER) and in image mode, on the built image's own filesystem (``make image`` saves it to
``build/cosmolet-VERSION.tar``; skipped without it).
"""

from __future__ import annotations

import os
import threading
import time
import tomllib
from pathlib import Path

import pytest

from lab import demo_ipv6
from lab.netns import Lab
from lab.pod import Image, LabNode, PodError, PodRunner
from tests.integration.chart_pod import (
    NODE,
    NODE_IP,
    PASSWORD,
    ROOT,
    WEB_LB,
    WEB_V4,
    WEB_V6,
    agent_log,
    bfd_up,
    ci_values,
    cluster,
    commands,
    config_of,
    daemonset_volumes,
    in_cluster_get,
    kept_as_stale,
    leaf,
    mode,
    node_namespace,
    pod,
    readiness_at_node_address,
    readme_install,
    render,
    report,
    routes,
    secret,
    status,
    timed,
    tor,
)
from tests.unit.test_chart import HELM, by_kind

pytestmark = pytest.mark.skipif(HELM is None, reason="helm not installed (make setup installs it)")


def image_archive() -> Path:
    """The built image, as ``make image`` saves it (or ``COSMOLET_IMAGE_ARCHIVE``)."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    default = ROOT / "build" / f"cosmolet-{version}.tar"
    return Path(os.environ.get("COSMOLET_IMAGE_ARCHIVE", default))


@pytest.fixture(params=["host", "image"])
def image(request: pytest.FixtureRequest) -> Image:
    """Host mode: the host's install with the Dockerfile's ENTRYPOINT, CMD and USER. Image
    mode: the built image's own filesystem and config, when an archive of it is here."""
    if request.param == "host":
        return Image.from_dockerfile(ROOT / "Dockerfile")
    archive = image_archive()
    if not archive.exists():
        pytest.skip(f"image mode: no {archive} (make image saves it)")
    return Image.from_archive(archive)


def test_readme_install_advertises_and_a_graceful_delete_keeps_the_routes(
    lab: Lab, image: Image
) -> None:
    documents = render(*readme_install())
    (peer,) = config_of(documents)["bgp"]["peers"]
    assert (peer["address"], peer["asn"]) == ("10.0.0.1", 65000)  # as the README writes it
    node = node_namespace(lab)
    tor1 = tor(lab, node, "tor1", "eth1", [(peer["address"], "10.0.0.0", 31)], peer["asn"])
    with cluster(lab, documents, node) as api:
        api.web()
        with pod(lab, documents, node, api, image) as runner:
            timed(lambda: routes(tor1) == {f"{WEB_V4}/32"}, 60, "tor1 learns web", runner.describe)
            learned = time.monotonic() - runner.created
            ready = runner.wait_ready(60)
            assert readiness_at_node_address(node) == 200
            report("README install", image, ready, learned)
            assert status(runner)["ready"] is True
            # The pod's token is the ServiceAccount's, held to the chart's ClusterRole.
            allowed, denied = "/api/v1/services", "/api/v1/namespaces/cosmolet-system/secrets"
            assert in_cluster_get(runner, allowed, denied) == [200, 403]
            took = runner.delete()
        # graceful: ExaBGP closed its session without a NOTIFICATION; the ToR keeps the
        # routes as stale for the restart time.
        assert took < runner.pod.grace_seconds
        timed(lambda: kept_as_stale(tor1, f"{WEB_V4}/32"), 10, "web kept as stale")
        time.sleep(3)
        assert routes(tor1) == {f"{WEB_V4}/32"} and kept_as_stale(tor1, f"{WEB_V4}/32")


def test_numbered_values_md5_from_the_secret_and_a_withdraw_on_delete(
    lab: Lab, image: Image
) -> None:
    documents = ci_values("numbered")
    config = config_of(documents)
    # One config for every node: the ToRs at the other end of eth1 and eth2 (this node's /31s
    # and /127 below), and a collector for rack r1's nodes only (not this one).
    tors, collector = config["bgp"]["peers"][:2], config["bgp"]["peers"][2]
    assert [(p["interface"], p["asn"]) for p in tors] == [("eth1", 65100), ("eth2", 65100)]
    assert collector["nodeSelector"] == {"matchLabels": {"topology.cosmolet.io/rack": "r1"}}
    node = node_namespace(lab)
    # The MD5 Secret the values name, as the cluster's admin would create it; both ToRs hold the
    # same password, for every session the node derives toward them.
    (volume,) = [v for v in daemonset_volumes(documents) if "secret" in v]
    password_secret = secret(volume["secret"]["secretName"], "cosmolet-system", {"tor": PASSWORD})
    tor1 = tor(
        lab,
        node,
        "tor1",
        "eth1",
        [("10.0.0.1", "10.0.0.0", 31), ("fd00::1", "fd00::", 127)],
        65100,
        PASSWORD,
    )
    tor2 = tor(lab, node, "tor2", "eth2", [("10.0.0.3", "10.0.0.2", 31)], 65100, PASSWORD)
    v4 = {f"{WEB_V4}/32", f"{WEB_LB}/32"}
    with cluster(lab, documents, node) as api:
        api.web()
        runner = pod(lab, documents, node, api, image, extra=(password_secret,))
        with runner:
            timed(
                lambda: (
                    routes(tor1) == v4 == routes(tor2) and routes(tor1, "ipv6") == {f"{WEB_V6}/128"}
                ),
                60,
                "both ToRs learn web",
                runner.describe,
                lambda: tor1.vtysh("show bgp summary", "show bgp ipv6 unicast"),
                lambda: tor2.vtysh("show bgp summary"),
            )
            learned = time.monotonic() - runner.created
            ready = runner.wait_ready(60)
            assert readiness_at_node_address(node) == 200
            report("numbered values", image, ready, learned)
            # withdraw: the routes leave both ToRs at once, well within the grace period, and
            # the pod ends after its drain.
            began = time.monotonic()
            deleting = threading.Thread(target=runner.delete)
            deleting.start()
            withdrawn = timed(
                lambda: not routes(tor1) and not routes(tor2) and not routes(tor1, "ipv6"),
                runner.pod.grace_seconds,
                "the routes withdrawn",
            )
            deleting.join()
            took = time.monotonic() - began
    drain = config["shutdown"]["drainSeconds"]
    print(f"{mode(image)}: withdrawn {withdrawn:.2f}s after the delete, pod ended {took:.1f}s")
    assert withdrawn < drain <= took < runner.pod.grace_seconds
    assert runner.states["cosmolet"].exit_codes == [0]


def test_ipv6_only_values_the_ipv6_only_demo_story(image: Image) -> None:
    """``ci/ipv6-only-values.yaml``: the IPv6-only demo's whole story (``lab.demo_ipv6``, its
    own fabric), here in image mode too; its checks print as it goes."""
    with demo_ipv6.running(image) as fabric:
        assert demo_ipv6.Ipv6Demo(fabric.fabric, fabric.pods).run() == 0


def test_hybrid_values_sidecar_unnumbered_and_bfd(lab: Lab, image: Image) -> None:
    documents = ci_values("hybrid")
    config = config_of(documents)
    assert config["bgp"]["interfaces"] == ["swp*", "eth1"] and config["bgp"]["bfd"]["enabled"]
    node = node_namespace(lab)
    # One fabric port for each of the values' names: swp1 (by the glob) and eth1.
    leaves = [leaf(lab, node, "leaf1", "swp1", 65101), leaf(lab, node, "leaf2", "eth1", 65102)]
    v4 = {f"{WEB_V4}/32", f"{WEB_LB}/32"}
    with cluster(lab, documents, node) as api:
        api.web()
        with pod(lab, documents, node, api, image) as runner:
            timed(
                lambda: {"zebra", "bfdd", "watchfrr"} <= commands(runner, "frr"),
                30,
                "the sidecar runs zebra and bfdd",
                lambda: commands(runner, "frr"),
                lambda: runner.log("frr"),
                lambda: runner.log("frr-config"),
            )
            assert "bgpd" not in commands(runner, "frr")
            timed(
                lambda: all(
                    routes(r) == v4 and routes(r, "ipv6") == {f"{WEB_V6}/128"} for r in leaves
                ),
                60,
                "both leaves learn web over BGP unnumbered",
                runner.describe,
                lambda: [r.vtysh("show bgp summary") for r in leaves],
            )
            learned = time.monotonic() - runner.created
            ready = runner.wait_ready(60)
            assert readiness_at_node_address(node) == 200
            report("hybrid values", image, ready, learned)
            for index, router in enumerate(leaves, 1):
                hops = {
                    hop["ip"]
                    for path in router.received_routes()[f"{WEB_V4}/32"]
                    for hop in path["nexthops"]
                }
                port = ("swp1", "eth1")[index - 1]
                assert node.link_local(port) in hops  # RFC 8950: the node's link-local there
            # The agent configured the sidecar's bfdd through vtysh (group frrvty).
            bfd = timed(
                lambda: all(bfd_up(r) for r in leaves),
                30,
                "BFD up at both leaves",
                runner.describe,
                lambda: [r.vtysh("show bfd peers") for r in leaves],
            )
            print(f"hybrid values ({mode(image)}): BFD up at both leaves {bfd:.2f}s after Ready")
            events = [line.get("event") for line in agent_log(runner)]
            assert "BFD peers updated" in events
            assert "vtysh refused the BFD peers" not in events
        assert runner.states["frr"].exit_codes == [0]  # the sidecar stopped FRR on SIGTERM
        assert runner.states["cosmolet"].exit_codes == [0]
        assert runner.states["frr-config"].exit_codes == [0]
        # graceful (the values' default): both leaves keep the routes as stale; BFD going down
        # with the pod must not drop them (the sidecar stops bfdd after the BGP sessions).
        timed(
            lambda: all(kept_as_stale(r, f"{WEB_V4}/32") for r in leaves),
            10,
            "web kept as stale at both leaves",
            lambda: [r.received_routes() for r in leaves],
        )
        time.sleep(3)
        assert all(kept_as_stale(r, f"{WEB_V4}/32") for r in leaves)


def test_announcement_values_start_ready_and_advertise_nothing(lab: Lab, image: Image) -> None:
    documents = ci_values("announcement")
    config = config_of(documents)
    assert not config["bgp"]["peers"]  # as published: no fabric to peer with
    (daemonset,) = by_kind(documents, "DaemonSet")
    selector = daemonset["spec"]["template"]["spec"]["nodeSelector"]
    node = node_namespace(lab)
    with cluster(lab, documents, node) as api:
        api.web(config["services"]["namespaces"][0])
        unlabelled = LabNode(NODE, node.name, (NODE_IP,))
        refused = PodRunner(
            documents,
            unlabelled,
            lab.workdir / "refused",
            Image.from_dockerfile(ROOT / "Dockerfile"),
        )
        with pytest.raises(PodError, match="nodeSelector"):
            refused.start()
        with pod(lab, documents, node, api, image, labels=selector) as runner:
            ready = runner.wait_ready(60)
            print(f"announcement values ({mode(image)}): Ready after {ready:.2f}s")
            assert readiness_at_node_address(node) == 200
            time.sleep(3)  # it stays up: no exit, no restart
            assert runner.current("cosmolet").poll() is None
            assert runner.states["cosmolet"].restarts == 0
            report = status(runner)
            assert report["ready"] is True and report["peers"] == []
            assert [r["prefix"] for r in report["routes"]] == [f"{WEB_V4}/32", f"{WEB_V6}/128"]
            # Nothing on the wire: no BGP socket in the node's namespace.
            assert node.run("ss", "-Htan", "( sport = :179 or dport = :179 )").strip() == ""
