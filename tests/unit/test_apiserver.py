"""The lab API server, driven and checked with the official kubernetes client."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch

from lab.apiserver import Store, serving, write_kubeconfig


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[Store, client.ApiClient]]:
    with serving(bookmark_seconds=0.2) as (store, port):
        kubeconfig = tmp_path / "kubeconfig"
        write_kubeconfig(kubeconfig, f"http://127.0.0.1:{port}")
        yield store, config.new_client_from_config(config_file=str(kubeconfig))


def svc(name: str, ip: str = "10.96.0.10", **labels: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"clusterIP": ip, "clusterIPs": [ip]},
    }


def test_crud_and_resource_versions(api: tuple[Store, client.ApiClient]) -> None:
    _, api_client = api
    core = client.CoreV1Api(api_client)
    created = core.create_namespaced_service("default", svc("web"))
    assert created.metadata.namespace == "default"
    assert created.metadata.uid and created.metadata.creation_timestamp
    rv = int(created.metadata.resource_version)

    patched = core.patch_namespaced_service("web", "default", {"metadata": {"labels": {"a": "b"}}})
    assert patched.metadata.labels == {"a": "b"}
    assert int(patched.metadata.resource_version) > rv

    stale = core.read_namespaced_service("web", "default")
    stale.metadata.resource_version = str(rv)
    with pytest.raises(client.ApiException) as conflict:
        core.replace_namespaced_service("web", "default", stale)
    assert conflict.value.status == 409

    with pytest.raises(client.ApiException) as exists:
        core.create_namespaced_service("default", svc("web"))
    assert exists.value.status == 409

    core.patch_namespaced_service_status(
        "web", "default", {"status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.1"}]}}}
    )
    assert core.read_namespaced_service("web", "default").status.load_balancer.ingress[0].ip == (
        "198.51.100.1"
    )
    # A DELETE with a body (as kubectl sends DeleteOptions), then more requests on the same
    # keep-alive connection: the body must not be parsed as the next request.
    core.delete_namespaced_service("web", "default", body={"propagationPolicy": "Background"})
    assert core.list_namespaced_service("default").items == []
    with pytest.raises(client.ApiException) as missing:
        core.read_namespaced_service("web", "default")
    assert missing.value.status == 404


def test_selectors_paging_and_kinds(api: tuple[Store, client.ApiClient]) -> None:
    _, api_client = api
    core = client.CoreV1Api(api_client)
    discovery = client.DiscoveryV1Api(api_client)
    for index in range(7):
        core.create_namespaced_service(
            "ns1" if index % 2 else "ns2", svc(f"s{index}", f"10.96.0.{index}", tier=str(index % 3))
        )
    assert len(core.list_service_for_all_namespaces().items) == 7
    assert len(core.list_namespaced_service("ns1").items) == 3
    assert {
        s.metadata.name
        for s in core.list_service_for_all_namespaces(label_selector="tier in (0,1),tier!=1").items
    } == {"s0", "s3", "s6"}
    assert [
        s.metadata.name
        for s in core.list_service_for_all_namespaces(field_selector="metadata.name=s4").items
    ] == ["s4"]

    first = core.list_service_for_all_namespaces(limit=3)
    assert len(first.items) == 3 and first.metadata._continue
    rest = core.list_service_for_all_namespaces(limit=10, _continue=first.metadata._continue)
    assert len(rest.items) == 4 and not rest.metadata._continue

    endpoint_slice = discovery.create_namespaced_endpoint_slice(
        "ns1",
        {
            "metadata": {"generateName": "s1-", "labels": {"kubernetes.io/service-name": "s1"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.1.1.1"]}],
        },
    )
    assert endpoint_slice.metadata.name.startswith("s1-")
    core.create_node({"metadata": {"name": "node1"}, "spec": {"unschedulable": True}})
    assert core.read_node("node1").spec.unschedulable is True
    assert [g.name for g in client.ApisApi(api_client).get_api_versions().groups] == [
        "discovery.k8s.io"
    ]
    resources = client.CoreV1Api(api_client).get_api_resources().resources
    assert {"services", "nodes", "namespaces"} <= {r.name for r in resources}


def test_watch_events_bookmarks_and_410(api: tuple[Store, client.ApiClient]) -> None:
    store, api_client = api
    core = client.CoreV1Api(api_client)
    rv = core.list_service_for_all_namespaces().metadata.resource_version
    seen: list[tuple[str, str]] = []

    def follow() -> None:
        for event in watch.Watch().stream(
            core.list_service_for_all_namespaces,
            resource_version=rv,
            timeout_seconds=2,
            allow_watch_bookmarks=True,
        ):
            obj = event["object"]  # a model, or a plain dict for a BOOKMARK
            seen.append(
                (
                    event["type"],
                    obj["metadata"].get("name", "") if isinstance(obj, dict) else obj.metadata.name,
                )
            )

    thread = threading.Thread(target=follow)
    thread.start()
    time.sleep(0.3)
    core.create_namespaced_service("default", svc("a"))
    core.patch_namespaced_service("a", "default", {"metadata": {"labels": {"x": "y"}}})
    core.delete_namespaced_service("a", "default")
    thread.join()
    changes = [item for item in seen if item[0] != "BOOKMARK"]
    assert changes == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    assert ("BOOKMARK", "") in seen

    # A rewatch from an old version replays history...
    replay = [
        (e["type"], e["object"].metadata.name)
        for e in watch.Watch().stream(
            core.list_service_for_all_namespaces, resource_version=rv, timeout_seconds=1
        )
    ]
    assert replay == changes
    # ...until the history is compacted: then 410.
    store.compact()
    with pytest.raises(client.ApiException) as gone:
        for _ in watch.Watch().stream(
            core.list_service_for_all_namespaces, resource_version=rv, timeout_seconds=1
        ):
            pass
    assert gone.value.status == 410


def test_state_survives_a_restart_but_history_does_not(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with serving() as (store, port):
        kubeconfig = tmp_path / "kc"
        write_kubeconfig(kubeconfig, f"http://127.0.0.1:{port}")
        core = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
        core.create_namespaced_service("default", svc("web"))
        rv = core.list_service_for_all_namespaces().metadata.resource_version
        store.save(state)
    restored = Store()
    restored.load(state)
    with serving(store=restored) as (_, port):
        write_kubeconfig(kubeconfig, f"http://127.0.0.1:{port}")
        core = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
        listed = core.list_service_for_all_namespaces()
        assert [s.metadata.name for s in listed.items] == ["web"]
        assert int(listed.metadata.resource_version) > int(rv)
        with pytest.raises(client.ApiException) as gone:
            for _ in watch.Watch().stream(
                core.list_service_for_all_namespaces, resource_version=rv, timeout_seconds=1
            ):
                pass
        assert gone.value.status == 410


def test_bad_requests_get_a_status_not_a_dropped_connection(
    api: tuple[Store, client.ApiClient],
) -> None:
    _, api_client = api
    core = client.CoreV1Api(api_client)
    with pytest.raises(client.ApiException) as bad_selector:
        core.list_service_for_all_namespaces(label_selector="tier in (0")
    assert bad_selector.value.status == 400
    assert "labelSelector" in json.loads(bad_selector.value.body)["message"]

    host = api_client.configuration.host
    for method, path, code in [
        ("GET", "/no/such/path", 404),
        ("GET", "/api/v1/widgets", 404),
        ("POST", "/api/v1/namespaces/default/services/web", 405),
        ("PUT", "/api/v1/services", 405),
        ("GET", "/lab/compact", 405),
    ]:
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(urllib.request.Request(host + path, method=method, data=b""))
        assert failed.value.code == code, (method, path)
        assert json.loads(failed.value.read())["code"] == code
