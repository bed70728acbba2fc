"""The lab API server over HTTPS with bearer tokens and the chart's own RBAC, driven with the
official client the way a pod does (CA file, service account token): the in-cluster path, and
that the rendered ClusterRole allows exactly what the agent needs."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.config import incluster_config

from cosmolet.config.schema import validate
from cosmolet.engine.builder import PlanBuilder
from cosmolet.kube.events import EventRecorder, ServiceEvent
from cosmolet.sources.kube import KubeSource
from cosmolet.sources.state import ClusterState
from lab.apiserver import Secured, serving_tls
from lab.kube_client import request_body
from lab.netns import wait_for
from tests.factories import config_dict, node, service, slice_

HELM = shutil.which("helm", path=str(Path(sys.executable).parent)) or shutil.which("helm")
CHART = Path(__file__).resolve().parents[2] / "charts" / "cosmolet"
ACCOUNT = "kube-system/cosmolet"
USER = "system:serviceaccount:kube-system:cosmolet"
pytestmark = pytest.mark.skipif(HELM is None, reason="helm not installed (make setup installs it)")


def render(directory: Path, *settings: str) -> Path:
    """The chart as ``helm template`` renders it, release cosmolet in kube-system."""
    assert HELM is not None
    args = [HELM, "template", "cosmolet", str(CHART), "-n", "kube-system"]
    for setting in settings:
        args += ["--set", setting]
    rendered = directory / f"rendered-{len(settings)}.yaml"
    rendered.write_text(subprocess.run(args, capture_output=True, text=True, check=True).stdout)
    return rendered


@pytest.fixture(scope="module")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(tmp_path_factory.mktemp("chart"))


@pytest.fixture
def server(tmp_path: Path, chart: Path) -> Iterator[Secured]:
    with serving_tls(
        tmp_path / "tls", service_account=ACCOUNT, rbac=chart, bookmark_seconds=0.2
    ) as secured:
        yield secured


def api(secured: Secured, token: str | None, ca: Path | None = None) -> client.ApiClient:
    """A client as the in-cluster loader builds one: host, CA file, bearer token."""
    configuration = client.Configuration()
    configuration.host = secured.url
    configuration.ssl_ca_cert = str(ca or secured.ca)
    if token is not None:
        configuration.api_key = {"authorization": f"Bearer {token}"}
    configuration.retries = False
    return client.ApiClient(configuration)


def admin(secured: Secured) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(secured.kubeconfig))


def status_of(error: client.ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(error.body or "null")
    return body


def body(obj: dict[str, Any]) -> Any:
    """A request body as a dict, which the client accepts for its typed models."""
    return request_body(obj)


def names(items: list[Any]) -> list[str]:
    return [item.metadata.name for item in items]


def populate(secured: Secured) -> None:
    core = client.CoreV1Api(admin(secured))
    core.create_namespaced_service("default", body(service("web")))
    core.create_node(body(node("node1")))
    client.DiscoveryV1Api(admin(secured)).create_namespaced_endpoint_slice(
        "default", body(slice_("web"))
    )


def test_the_service_account_reads_what_the_agent_reads(server: Secured) -> None:
    populate(server)
    sa = api(server, server.token)
    core, discovery = client.CoreV1Api(sa), client.DiscoveryV1Api(sa)
    assert names(core.list_service_for_all_namespaces().items) == ["web"]
    assert len(discovery.list_endpoint_slice_for_all_namespaces().items) == 1
    assert names(core.list_node(field_selector="metadata.name=node1").items) == ["node1"]
    web: Any = core.read_namespaced_service("web", "default")
    assert web.spec.cluster_ip == "10.96.0.10"
    events = [
        (e["type"], e["object"].metadata.name)
        for e in watch.Watch().stream(core.list_service_for_all_namespaces, timeout_seconds=1)
    ]
    assert events == [("ADDED", "web")]


def test_what_the_role_lacks_is_403_with_the_real_status(server: Secured) -> None:
    populate(server)
    sa = api(server, server.token)
    core, discovery = client.CoreV1Api(sa), client.DiscoveryV1Api(sa)
    with pytest.raises(client.ApiException) as deleted:
        core.delete_namespaced_service("web", "default")
    assert deleted.value.status == 403
    assert status_of(deleted.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'services "web" is forbidden: User "{USER}" cannot delete resource'
        ' "services" in API group "" in the namespace "default"',
        "reason": "Forbidden",
        "details": {"name": "web", "kind": "services"},
        "code": 403,
    }
    with pytest.raises(client.ApiException) as listed:
        core.list_namespace()
    assert status_of(listed.value)["message"] == (
        f'namespaces is forbidden: User "{USER}" cannot list resource "namespaces"'
        ' in API group "" at the cluster scope'
    )
    with pytest.raises(client.ApiException) as patched:
        discovery.patch_namespaced_endpoint_slice("web-abcde", "default", {"endpoints": []})
    assert status_of(patched.value)["details"] == {
        "name": "web-abcde",
        "group": "discovery.k8s.io",
        "kind": "endpointslices",
    }
    for write in (
        lambda: core.create_namespaced_service("default", body(service("x"))),
        lambda: core.patch_namespaced_service_status("web", "default", {"status": {}}),
        lambda: core.patch_node("node1", {"spec": {"unschedulable": True}}),
    ):
        with pytest.raises(client.ApiException) as refused:
            write()
        assert refused.value.status == 403
    # Nothing was written: the refusals came before the handlers.
    admin_core = client.CoreV1Api(admin(server))
    node1: Any = admin_core.read_node("node1")
    assert node1.spec.unschedulable is None
    assert len(admin_core.list_service_for_all_namespaces().items) == 1


def test_no_token_or_a_wrong_one_is_401(server: Secured) -> None:
    for token in (None, "wrong", server.admin_token + "x"):
        with pytest.raises(client.ApiException) as refused:
            client.CoreV1Api(api(server, token)).list_service_for_all_namespaces()
        assert refused.value.status == 401
        assert status_of(refused.value)["reason"] == "Unauthorized"
    # Authentication comes first: a path that does not exist is 401 too, not 404.
    context = ssl.create_default_context(cafile=str(server.ca))
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{server.url}/no/such/path", context=context)
    assert missing.value.code == 401
    assert json.loads(missing.value.read())["code"] == 401


def test_discovery_and_openapi_for_any_authenticated_user(server: Secured) -> None:
    context = ssl.create_default_context(cafile=str(server.ca))
    for path in ("/api", "/apis", "/api/v1", "/version", "/openapi/v3", "/openapi/v2"):
        request = urllib.request.Request(
            server.url + path, headers={"Authorization": f"Bearer {server.token}"}
        )
        with urllib.request.urlopen(request, context=context) as response:
            assert response.status == 200, path
    lab_action = urllib.request.Request(
        f"{server.url}/lab/compact",
        method="POST",
        headers={"Authorization": f"Bearer {server.token}"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(lab_action, context=context)
    assert json.loads(refused.value.read())["message"] == (
        f'forbidden: User "{USER}" cannot post path "/lab/compact"'
    )


def test_the_admin_kubeconfig_may_do_everything(server: Secured) -> None:
    core = client.CoreV1Api(admin(server))
    core.create_namespaced_service("default", body(service("web")))
    core.patch_namespaced_service_status("web", "default", {"status": {"loadBalancer": {}}})
    core.create_namespace(body({"metadata": {"name": "team"}}))
    assert names(core.list_namespace().items) == ["team"]
    core.delete_namespaced_service("web", "default")
    assert core.list_service_for_all_namespaces().items == []
    kubeconfig = json.loads(server.kubeconfig.read_text())
    assert kubeconfig["clusters"][0]["cluster"]["server"].startswith("https://127.0.0.1:")


def test_tls_is_verified_with_the_ca_and_fails_without_it(server: Secured, tmp_path: Path) -> None:
    configuration = client.Configuration()  # the system's CAs only
    configuration.host = server.url
    configuration.api_key = {"authorization": f"Bearer {server.token}"}
    configuration.retries = False
    with pytest.raises(client.ApiException) as untrusted:
        client.CoreV1Api(client.ApiClient(configuration)).list_node()
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.value.reason
    with serving_tls(tmp_path / "other") as other:  # another CA does not vouch for this server
        with pytest.raises(client.ApiException) as foreign:
            client.CoreV1Api(api(server, server.token, ca=other.ca)).list_node()
        assert "CERTIFICATE_VERIFY_FAILED" in foreign.value.reason
        # The server survived the refused handshakes.
        assert client.CoreV1Api(api(server, server.token)).list_node().items == []


def test_certificate_names_and_reuse(tmp_path: Path) -> None:
    directory = tmp_path / "tls"
    with serving_tls(directory, service_account=ACCOUNT, host="::1") as first:
        assert first.url.startswith("https://[::1]:")
        assert client.CoreV1Api(api(first, first.token)).list_node().items == []
        ca, token, cert = (
            first.ca.read_bytes(),
            first.token,
            (directory / "server.crt").read_bytes(),
        )
    assert (directory / "namespace").read_text() == "kube-system"
    for name in ("ca.crt", "token", "namespace"):  # a pod's uid must read what it mounts
        assert (directory / name).stat().st_mode & 0o777 == 0o644
    for name in ("ca.key", "server.key", "admin-token", "kubeconfig"):
        assert (directory / name).stat().st_mode & 0o777 == 0o600
    with serving_tls(directory, service_account=ACCOUNT) as again:
        assert again.ca.read_bytes() == ca and again.token == token
        assert (directory / "server.crt").read_bytes() == cert
    # Another name: a new server certificate from the same CA; the pod's files stay valid.
    with serving_tls(directory, service_account=ACCOUNT, tls_sans=("192.0.2.7", "api.lab")):
        assert (directory / "ca.crt").read_bytes() == ca
        assert (directory / "token").read_text() == token
        assert (directory / "server.crt").read_bytes() != cert
    names = subprocess.run(
        ["openssl", "x509", "-in", str(directory / "server.crt"), "-noout", "-ext",
         "subjectAltName"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    for name in ("IP Address:127.0.0.1", "IP Address:0:0:0:0:0:0:0:1", "DNS:localhost"):
        assert name in names
    assert "IP Address:192.0.2.7" in names and "DNS:api.lab" in names
    # A CA whose key is gone is made again (and with it the server certificate).
    (directory / "ca.key").unlink()
    with serving_tls(directory, service_account=ACCOUNT) as renewed:
        assert renewed.ca.read_bytes() != ca
        assert client.CoreV1Api(api(renewed, renewed.token)).list_node().items == []


def recorder_run(secured: Secured) -> EventRecorder:
    recorder = EventRecorder(lambda: api(secured, secured.token), "node1", 50.0)
    recorder.record(ServiceEvent("default/web", "Advertised", "10.96.0.10/32 advertised"))
    stop = threading.Event()
    thread = threading.Thread(target=recorder.run, args=(stop,))
    thread.start()
    try:
        wait_for(lambda: recorder.sent + recorder.failed >= 1, 10, what="the event's fate")
    finally:
        stop.set()
        thread.join(5)
    return recorder


def test_events_are_created_only_when_the_chart_grants_it(tmp_path: Path, chart: Path) -> None:
    with serving_tls(tmp_path / "off", service_account=ACCOUNT, rbac=chart) as secured:
        refused = recorder_run(secured)
        assert (refused.sent, refused.failed) == (0, 1)
    enabled = render(tmp_path, "config.events.enabled=true")
    with serving_tls(tmp_path / "on", service_account=ACCOUNT, rbac=enabled) as secured:
        posted = recorder_run(secured)
        assert (posted.sent, posted.failed) == (1, 0)
        events = client.CoreV1Api(admin(secured)).list_namespaced_event("default").items
        assert [e.reason for e in events] == ["Advertised"]


@pytest.fixture
def in_cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Point the official in-cluster loader at a server's port and files, as a pod's env and
    mounts do; yields a function that does it for one server."""

    def point(secured: Secured) -> None:
        monkeypatch.delenv("KUBECONFIG", raising=False)
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(secured.port))
        token = str(secured.tls_dir / "token")
        monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", token)
        monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(secured.ca))

    yield point


def sync(secured: Secured, seconds: float) -> tuple[bool, set[str], int]:
    """KubeSource with no kubeconfig (so in-cluster) against ``secured``: whether it synced
    within ``seconds``, the prefixes it then published, and its API errors."""
    cfg = validate(config_dict())
    state = ClusterState(PlanBuilder(cfg, "node1"), lambda _cause: None)
    source = KubeSource(cfg, "node1")
    stop = threading.Event()
    thread = threading.Thread(target=source.run, args=(state, stop))
    thread.start()
    try:
        deadline = time.monotonic() + seconds
        while not state.readiness.synced and time.monotonic() < deadline:
            time.sleep(0.05)
        delta, _ = state.take_delta()
        health = source.health()
        assert health.alive and health.api is not None
        return state.readiness.synced, set(delta), health.api.errors
    finally:
        stop.set()
        thread.join(5)


def test_the_agent_syncs_in_cluster_with_the_charts_rbac(server: Secured, in_cluster: Any) -> None:
    in_cluster(server)
    populate(server)
    assert sync(server, 10) == (True, {"10.96.0.10/32"}, 0)


def test_without_the_charts_rbac_the_agent_cannot_sync(tmp_path: Path, in_cluster: Any) -> None:
    without = render(tmp_path, "rbac.create=false")
    with serving_tls(tmp_path / "tls", service_account=ACCOUNT, rbac=without) as secured:
        in_cluster(secured)
        populate(secured)
        synced, prefixes, errors = sync(secured, 2)
        assert (synced, prefixes) == (False, set()) and errors >= 1


def test_the_command_line(tmp_path: Path, chart: Path) -> None:
    """``python -m lab.apiserver --tls-dir --service-account --rbac``, as the pod runner and
    the fault tests start it: ready once the (admin) kubeconfig exists."""
    directory, kubeconfig = tmp_path / "tls", tmp_path / "kubeconfig"
    command = [
        sys.executable,
        "-m",
        "lab.apiserver",
        "--port",
        "0",
        "--kubeconfig",
        str(kubeconfig),
    ]
    secured = ["--tls-dir", str(directory), "--service-account", ACCOUNT, "--rbac", str(chart)]
    server = subprocess.Popen([*command, *secured], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split()[-1]
        assert url.startswith("https://127.0.0.1:")
        wait_for(kubeconfig.exists, 10, what="the kubeconfig")
        as_admin = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
        as_admin.create_namespaced_service("default", body(service("web")))
        configuration = client.Configuration()
        configuration.host = url
        configuration.ssl_ca_cert = str(directory / "ca.crt")
        token = (directory / "token").read_text()
        configuration.api_key = {"authorization": f"Bearer {token}"}
        as_account = client.CoreV1Api(client.ApiClient(configuration))
        assert names(as_account.list_service_for_all_namespaces().items) == ["web"]
        with pytest.raises(client.ApiException) as refused:
            as_account.delete_namespaced_service("web", "default")
        assert refused.value.status == 403
    finally:
        server.terminate()
        server.wait(10)
    for wrong, message in [
        (["--rbac", str(chart)], "need --tls-dir"),
        (["--tls-dir", str(directory), "--rbac", str(chart)], "name one"),
        (["--tls-dir", str(directory), "--service-account", "cosmolet"], "NAMESPACE/NAME"),
    ]:
        result = subprocess.run([*command, *wrong], capture_output=True, text=True, check=False)
        assert result.returncode == 2 and message in result.stderr, result.stderr


def test_a_watcher_that_vanishes_is_let_go_quietly(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A TLS client that closes without close_notify (as Go's often do) makes the server's next
    write fail with SSLEOFError, not BrokenPipeError: no traceback, and the watch is gone."""
    with serving_tls(tmp_path / "tls", bookmark_seconds=0.05) as secured:
        context = ssl.create_default_context(cafile=str(secured.ca))
        request = (
            "GET /api/v1/services?watch=1&allowWatchBookmarks=true HTTP/1.1\r\nHost: lab\r\n"
            f"Authorization: Bearer {secured.admin_token}\r\n\r\n"
        )
        for _ in range(3):
            with context.wrap_socket(
                socket.create_connection(("127.0.0.1", secured.port)), server_hostname="127.0.0.1"
            ) as tls:
                tls.sendall(request.encode())
                assert tls.recv(64).startswith(b"HTTP/1.1 200")
        wait_for(lambda: not secured.store.watchers, 5, what="the watches to end")
    assert "Traceback" not in capfd.readouterr().err
