"""The speaker end to end: `cosmolet start` -> real ExaBGP -> a real FRR leaf, numbered peering."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from lab.netns import Lab, wait_for
from lab.numbered import NumberedFabric, build_numbered
from tests.factories import family_slices, service
from tests.integration.conftest import sample


def healthy(name: str, *ips: str, ready: bool = True, **kw: Any) -> list[dict[str, Any]]:
    return [service(name, cluster_ips=ips, **kw), *family_slices(name, ips, ready=ready)]


BASE = healthy("web", "10.96.0.10") + healthy("dual", "10.96.0.11", "fd00:96::11")


def test_routes_reach_the_leaf_with_next_hop_and_attributes(fabric: NumberedFabric) -> None:
    node = fabric.cosmolet(
        bgp={"communities": ["65001:100"], "largeCommunities": ["65001:1:1"], "med": 20}
    )
    node.set_objects(
        BASE
        + healthy(
            "tuned",
            "10.96.0.12",
            annotations={
                "cosmolet.io/communities": "65001:200",
                "cosmolet.io/med": "50",
                "cosmolet.io/as-path-prepend": "2",
            },
        )
        + healthy("down", "10.96.0.13", ready=False)
    )
    node.start()
    fabric.wait_rib({"10.96.0.10/32", "10.96.0.11/32", "10.96.0.12/32"})
    fabric.wait_rib({"fd00:96::11/128"}, "ipv6")

    web = fabric.frr.json("show bgp ipv4 unicast 10.96.0.10/32 json")["paths"][0]
    assert web["nexthops"][0]["ip"] == fabric.NODE_V4
    assert web["community"]["list"] == ["65001:100"]
    assert web["largeCommunity"]["list"] == ["65001:1:1"]
    assert web["metric"] == 20
    assert web["aspath"]["string"] == "65001"
    tuned = fabric.frr.json("show bgp ipv4 unicast 10.96.0.12/32 json")["paths"][0]
    assert tuned["community"]["list"] == ["65001:100", "65001:200"]
    assert tuned["metric"] == 50
    assert tuned["aspath"]["string"] == "65001 65001 65001"
    v6 = fabric.frr.json("show bgp ipv6 unicast fd00:96::11/128 json")["paths"][0]
    assert any(nh["ip"] == fabric.NODE_V6 for nh in v6["nexthops"])

    # In the leaf's kernel, via the node.
    wait_for(lambda: fabric.fib(4) == {"10.96.0.10/32", "10.96.0.11/32", "10.96.0.12/32"}, 10)
    wait_for(lambda: "fd00:96::11/128" in fabric.fib(6), 10)
    route = fabric.leaf.ip_json("route", "show", "10.96.0.10/32")[0]
    assert route["gateway"] == fabric.NODE_V4


def test_peers_without_local_address_unreachable_at_start_cause_no_error_in_exabgp(
    fabric: NumberedFabric,
) -> None:
    """Without ``local-address`` ExaBGP learns its own address at its first connection and,
    until then, fails with an AttributeError on every ``next-hop self`` the agent sends: the
    first plan, when the leaf does not answer at start. ``start`` renders the kernel's source
    address toward each such peer, so nothing fails and the routes arrive with it as next hop."""
    node = fabric.cosmolet()
    node.config["bgp"]["peers"] = [
        {key: value for key, value in peer.items() if key != "localAddress"}
        for peer in node.config["bgp"]["peers"]
    ]
    node.__post_init__()
    node.set_objects(BASE)
    leaf_addresses = [("-4", f"{fabric.LEAF_V4}/31"), ("-6", f"{fabric.LEAF_V6}/127")]
    for family, address in leaf_addresses:  # the leaf does not answer: connections hang
        fabric.leaf.ip(family, "addr", "del", address, "dev", "eth1")
    node.start()
    wait_for(lambda: any(line.get("event") == "first plan" for line in node.logs()), 30)
    time.sleep(1)
    for family, address in leaf_addresses:
        fabric.leaf.ip(family, "addr", "add", address, "dev", "eth1", "nodad")
    fabric.wait_rib({"10.96.0.10/32", "10.96.0.11/32"}, timeout=40)
    fabric.wait_rib({"fd00:96::11/128"}, "ipv6")
    assert fabric.next_hops("10.96.0.10/32") == {fabric.NODE_V4}
    assert fabric.NODE_V6 in fabric.next_hops("fd00:96::11/128", "ipv6")
    rendered = (node.directory / "run" / "exabgp.conf").read_text()
    assert f"local-address {fabric.NODE_V4};" in rendered
    assert f"local-address {fabric.NODE_V6};" in rendered
    log = node.log.read_text()
    assert "problem with function" not in log and "has no attribute" not in log


def test_local_preference_on_an_ibgp_session(lab: Lab) -> None:
    fabric = build_numbered(lab, ibgp=True)
    node = fabric.cosmolet(bgp={"localPreference": 150})
    node.config["bgp"]["peers"] = [{**peer, "asn": 65001} for peer in node.config["bgp"]["peers"]]
    node.__post_init__()
    node.set_objects(
        healthy("web", "10.96.0.10")
        + healthy("pref", "10.96.0.20", annotations={"cosmolet.io/local-preference": "300"})
    )
    node.start()
    fabric.wait_rib({"10.96.0.10/32", "10.96.0.20/32"})
    paths = {
        prefix: fabric.frr.json(f"show bgp ipv4 unicast {prefix} json")["paths"][0]
        for prefix in ("10.96.0.10/32", "10.96.0.20/32")
    }
    assert paths["10.96.0.10/32"]["locPrf"] == 150
    assert paths["10.96.0.20/32"]["locPrf"] == 300


def test_unhealthy_is_withdrawn_and_healthy_again_comes_back(fabric: NumberedFabric) -> None:
    node = fabric.cosmolet()
    node.set_objects(BASE)
    node.start()
    fabric.wait_rib({"10.96.0.10/32", "10.96.0.11/32"})
    fabric.wait_rib({"fd00:96::11/128"}, "ipv6")

    node.set_objects(
        healthy("web", "10.96.0.10") + healthy("dual", "10.96.0.11", "fd00:96::11", ready=False)
    )
    fabric.wait_rib({"10.96.0.10/32"}, timeout=10)
    fabric.wait_rib(set(), "ipv6", timeout=10)
    wait_for(lambda: fabric.fib(4) == {"10.96.0.10/32"}, 10)

    node.set_objects(BASE)
    fabric.wait_rib({"10.96.0.10/32", "10.96.0.11/32"}, timeout=10)
    fabric.wait_rib({"fd00:96::11/128"}, "ipv6", timeout=10)


def test_leaf_restart_relearns_every_route(fabric: NumberedFabric) -> None:
    node = fabric.cosmolet()
    node.set_objects(BASE)
    node.start()
    fabric.wait_rib({"10.96.0.10/32", "10.96.0.11/32"})
    fabric.frr.restart("bgpd")
    fabric.wait_rib({"10.96.0.10/32", "10.96.0.11/32"}, timeout=40)
    fabric.wait_rib({"fd00:96::11/128"}, "ipv6", timeout=40)


def test_restart_of_exabgp_and_agent_under_graceful_restart_keeps_the_fib(
    fabric: NumberedFabric,
) -> None:
    node = fabric.cosmolet()
    node.set_objects(BASE)
    node.start()
    expected = {"10.96.0.10/32", "10.96.0.11/32"}
    wait_for(lambda: fabric.fib(4) == expected, 30)

    assert node.stop(signal.SIGTERM) is not None  # graceful: no withdraw, sessions just close
    node.start()
    seen = sample(lambda: fabric.fib(4), 12, 0.01)
    assert all(fib == expected for fib in seen), [fib for fib in seen if fib != expected][:3]
    wait_for(lambda: fabric.established(fabric.NODE_V4), 20)
    fabric.wait_rib(expected)


def test_kill_9_of_the_agent_respawns_and_converges_without_withdrawing(
    fabric: NumberedFabric,
) -> None:
    node = fabric.cosmolet()
    node.set_objects(BASE + healthy("going", "10.96.0.30"))
    node.start()
    expected = {"10.96.0.10/32", "10.96.0.11/32", "10.96.0.30/32"}
    fabric.wait_rib(expected)
    first = node.agent_pid()

    # While no agent runs, one Service goes unhealthy: the respawned agent must withdraw it
    # (it learns from the journal that it was announced) and nothing else.
    os.kill(first, signal.SIGKILL)
    node.set_objects(BASE + healthy("going", "10.96.0.30", ready=False))
    seen = sample(lambda: set(fabric.rib()), 6, 0.02)
    assert all({"10.96.0.10/32", "10.96.0.11/32"} <= rib for rib in seen)
    assert node.agent_pid() != first
    fabric.wait_rib({"10.96.0.10/32", "10.96.0.11/32"}, timeout=10)


def test_tcp_md5_password(lab: Lab) -> None:
    fabric = build_numbered(lab, passwords={NumberedFabric.NODE_V4: "s3cret-pass"})
    password = lab.workdir / "md5"
    password.write_text("s3cret-pass\n")
    node = fabric.cosmolet()
    node.config["bgp"]["peers"] = [
        {**node.config["bgp"]["peers"][0], "passwordFile": str(password)}
    ]
    node.__post_init__()
    node.set_objects(healthy("web", "10.96.0.10"))
    node.start()
    fabric.wait_rib({"10.96.0.10/32"})
    assert "s3cret" not in node.log.read_text()
    node.stop()

    password.write_text("wrong-pass\n")
    node.start()
    seen = sample(lambda: fabric.established(fabric.NODE_V4), 8, 0.5)
    assert not any(seen)
    wait_for(
        lambda: any(line.get("event") == "peer not established" for line in node.logs()),
        30,
        what="a log line about the peer that stays down",
    )
    line = next(line for line in node.logs() if line.get("event") == "peer not established")
    assert line["peer"] == fabric.LEAF_V4
    assert "password" in line["hint"]
    assert "wrong-pass" not in node.log.read_text()


def test_withdraw_shutdown_mode_drains_before_stopping(fabric: NumberedFabric) -> None:
    node = fabric.cosmolet(shutdown={"mode": "withdraw", "drainSeconds": 3})
    node.set_objects(BASE)
    node.start()
    fabric.wait_rib({"10.96.0.10/32", "10.96.0.11/32"})
    assert node.process is not None
    node.process.send_signal(signal.SIGTERM)
    fabric.wait_rib(set(), timeout=2)  # withdrawn well before the drain ends...
    assert fabric.established(fabric.NODE_V4)  # ...while the session is still up
    assert node.process.wait(15) == 0
    wait_for(lambda: not fabric.established(fabric.NODE_V4), 15)


def test_bgp_disabled_is_a_dry_run(fabric: NumberedFabric) -> None:
    node = fabric.cosmolet(bgp={"enabled": False})
    node.set_objects(BASE)
    node.start()
    wait_for(lambda: fabric.established(fabric.NODE_V4), 30)
    wait_for(lambda: any(line.get("event") == "announce" for line in node.logs()), 10)
    assert all(line.get("dry_run") for line in node.logs() if line.get("event") == "announce")
    assert all(rib == {} for rib in sample(fabric.rib, 2, 0.2))


def test_each_family_is_healthy_from_its_own_slices(fabric: NumberedFabric) -> None:
    """A dual-stack Service whose IPv6 EndpointSlice has no ready endpoint keeps its IPv4
    address at the leaf and withdraws its IPv6 one (kube-proxy runs one proxier per family);
    an ETP Local LB IP follows the node's local endpoints of that family only."""
    node = fabric.cosmolet(
        services={
            "advertise": {
                "loadBalancerIPs": {
                    "enabled": True,
                    "allowedCIDRs": ["198.51.100.0/24", "2001:db8:100::/64"],
                }
            }
        }
    )
    v4_ready, v6_unready = (
        family_slices("dual", ("10.96.0.11",)),
        family_slices("dual", ("fd00:96::11",), ready=False),
    )
    lb = service(
        "lb",
        cluster_ips=("10.96.0.12", "fd00:96::12"),
        lb_ips=["198.51.100.12", "2001:db8:100::12"],
        type="LoadBalancer",
        external_policy="Local",
    )
    here_v4 = family_slices("lb", ("10.96.0.12",), node="node1")
    elsewhere_v6 = family_slices("lb", ("fd00:96::12",), node="node2")
    node.set_objects(
        [
            service("dual", cluster_ips=("10.96.0.11", "fd00:96::11")),
            *v4_ready,
            *v6_unready,
            lb,
            *here_v4,
            *elsewhere_v6,
        ]
    )
    node.start()
    fabric.wait_rib({"10.96.0.11/32", "10.96.0.12/32", "198.51.100.12/32"}, timeout=40)
    fabric.wait_rib({"fd00:96::12/128"}, "ipv6")  # a Cluster-policy ClusterIP: ready elsewhere
    assert "fd00:96::11/128" not in fabric.rib("ipv6")
    assert "2001:db8:100::12/128" not in fabric.rib("ipv6")  # Local, and no local IPv6 endpoint

    # The IPv6 endpoint becomes ready: only the IPv6 address is announced.
    node.set_objects(
        [
            service("dual", cluster_ips=("10.96.0.11", "fd00:96::11")),
            *v4_ready,
            *family_slices("dual", ("fd00:96::11",)),
            lb,
            *here_v4,
            *elsewhere_v6,
        ]
    )
    fabric.wait_rib({"fd00:96::11/128", "fd00:96::12/128"}, "ipv6", timeout=10)
    assert set(fabric.rib()) == {"10.96.0.11/32", "10.96.0.12/32", "198.51.100.12/32"}
