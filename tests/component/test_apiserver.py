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

from lab.apiserver import RESOURCES, Store, serving, write_kubeconfig


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


def call(
    host: str, method: str, path: str, body: Any = None, **headers: str
) -> tuple[int, Any, Any]:
    """(status, JSON body, headers) of one request, errors included."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(host + path, method=method, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), error.headers


def test_openapi_documents_describe_every_kind_served(
    api: tuple[Store, client.ApiClient],
) -> None:
    host = api[1].configuration.host
    code, index, _ = call(host, "GET", "/openapi/v3")
    assert code == 200 and set(index["paths"]) == {"api/v1", "apis/discovery.k8s.io/v1"}
    documents = {
        name: call(host, "GET", entry["serverRelativeURL"])[1]
        for name, entry in index["paths"].items()
    }
    for resource in RESOURCES:
        document = documents["apis/discovery.k8s.io/v1" if resource.group else "api/v1"]
        gvk = {"group": resource.group, "version": resource.version, "kind": resource.kind}
        # What kubectl looks for before it leaves validation to the server.
        patches = [
            op["patch"]
            for op in document["paths"].values()
            if "patch" in op and op["patch"]["x-kubernetes-group-version-kind"] == gvk
        ]
        assert patches and all(
            "fieldValidation" in {p["name"] for p in patch["parameters"]} for patch in patches
        ), resource.kind
        assert [
            name
            for name, schema in document["components"]["schemas"].items()
            if gvk in schema.get("x-kubernetes-group-version-kind", [])
        ], resource.kind
    schemas = documents["api/v1"]["components"]["schemas"]
    spec = schemas["io.k8s.api.core.v1.ServiceSpec"]["properties"]
    assert spec["clusterIP"]["type"] == "string"
    assert spec["ports"]["items"] == {"$ref": "#/components/schemas/io.k8s.api.core.v1.ServicePort"}

    code, v2, _ = call(host, "GET", "/openapi/v2", Accept="application/json")
    assert code == 200 and v2["swagger"] == "2.0"
    assert v2["definitions"]["io.k8s.api.discovery.v1.EndpointSlice"]["properties"]["endpoints"]
    protobuf = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
    assert call(host, "GET", "/openapi/v2", Accept=protobuf)[0] == 406
    assert call(host, "GET", "/openapi/v3/apis/apps/v1")[0] == 404


def test_field_validation_as_the_real_server(api: tuple[Store, client.ApiClient]) -> None:
    store, api_client = api
    host = api_client.configuration.host
    path = "/api/v1/namespaces/default/services"
    typo = {"metadata": {"name": "web"}, "spec": {"clusterIP": "10.96.0.10", "prots": []}}
    json_type = {"Content-Type": "application/json"}

    code, status, _ = call(host, "POST", path + "?fieldValidation=Strict", typo, **json_type)
    assert (code, status["reason"]) == (400, "BadRequest")
    assert status["message"] == (
        'Service in version "v1" cannot be handled as a Service:'
        ' strict decoding error: unknown field "spec.prots"'
    )
    code, _, headers = call(host, "POST", path + "?fieldValidation=Warn", typo, **json_type)
    assert code == 201 and headers.get_all("Warning") == ['299 - "unknown field \\"spec.prots\\""']
    assert "prots" not in store.objects[("services", "default", "web")]["spec"]

    mistyped = {"metadata": {"name": "bad"}, "spec": {"ports": [{"port": "80"}]}}
    code, status, _ = call(host, "POST", path + "?fieldValidation=Ignore", mistyped, **json_type)
    assert code == 400 and "spec.ports[0].port of type int32" in status["message"]
    # Without the parameter, objects are kept as sent (fault tests write hostile ones).
    code, _, _ = call(host, "POST", path, {**mistyped, "extra": 1}, **json_type)
    assert code == 201 and store.objects[("services", "default", "bad")]["extra"] == 1

    patch_path = path + "/web?fieldValidation=Strict"
    merge = {"Content-Type": "application/strategic-merge-patch+json"}
    directives = {"spec": {"$setElementOrder/ports": [], "type": "ClusterIP"}}
    assert call(host, "PATCH", patch_path, directives, **merge)[0] == 200
    code, status, _ = call(host, "PATCH", patch_path, {"spec": {"tpye": "x"}}, **merge)
    assert code == 400 and 'unknown field "spec.tpye"' in status["message"]
