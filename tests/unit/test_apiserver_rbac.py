"""The lab API server's RBAC, as tables: how a request maps to its verb, resource and name, and
which rules and bindings allow it (Kubernetes' rbac/v1 semantics)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lab.apiserver.auth import ServiceAccount, forbidden, request_attributes
from lab.apiserver.rbac import Attributes, Rbac, User, service_account_user

SA = service_account_user("kube-system", "cosmolet")
OTHER = service_account_user("kube-system", "other")


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/services", {}, ("list", "", "services", "", "", "")),
        ("GET", "/api/v1/services", {"watch": "1"}, ("watch", "", "services", "", "", "")),
        ("GET", "/api/v1/services", {"watch": "true"}, ("watch", "", "services", "", "", "")),
        ("GET", "/api/v1/services", {"watch": "false"}, ("list", "", "services", "", "", "")),
        (
            "GET",
            "/api/v1/nodes",
            {"fieldSelector": "metadata.name=node1"},
            ("list", "", "nodes", "", "", "node1"),
        ),
        (
            "GET",
            "/api/v1/nodes",
            {"fieldSelector": "metadata.name!=node1"},
            ("list", "", "nodes", "", "", ""),
        ),
        (
            "GET",
            "/api/v1/namespaces/default/services/web",
            {},
            ("get", "", "services", "", "default", "web"),
        ),
        (
            "POST",
            "/api/v1/namespaces/default/events",
            {},
            ("create", "", "events", "", "default", ""),
        ),
        (
            "PATCH",
            "/api/v1/namespaces/default/services/web/status",
            {},
            ("patch", "", "services", "status", "default", "web"),
        ),
        (
            "PUT",
            "/apis/discovery.k8s.io/v1/namespaces/ns/endpointslices/s",
            {},
            ("update", "discovery.k8s.io", "endpointslices", "", "ns", "s"),
        ),
        ("DELETE", "/api/v1/nodes/n", {}, ("delete", "", "nodes", "", "", "n")),
        ("DELETE", "/api/v1/nodes", {}, ("deletecollection", "", "nodes", "", "", "")),
        ("GET", "/api/v1/namespaces", {}, ("list", "", "namespaces", "", "", "")),
        ("GET", "/api/v1/namespaces/team", {}, ("get", "", "namespaces", "", "team", "team")),
    ],
)
def test_request_attributes(
    method: str, path: str, query: dict[str, str], expected: tuple[str, ...]
) -> None:
    a = request_attributes(method, path, query)
    assert a.resource_request
    assert (a.verb, a.api_group, a.resource, a.subresource, a.namespace, a.name) == expected


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api"), ("GET", "/api/v1"), ("GET", "/apis/discovery.k8s.io/v1"),
     ("GET", "/openapi/v3/api/v1"), ("POST", "/lab/compact"), ("GET", "/version")],
)  # fmt: skip
def test_discovery_and_other_paths_are_not_resource_requests(method: str, path: str) -> None:
    a = request_attributes(method, path, {})
    assert not a.resource_request and a.verb == method.lower() and a.path == path


def cluster_role(name: str, *rules: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "ClusterRole", "metadata": {"name": name}, "rules": list(rules)}


def binding(
    binding_kind: str,
    role_kind: str,
    role: str,
    namespace: str | None = None,
    subject: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta = {"name": f"{role}-binding", **({"namespace": namespace} if namespace else {})}
    subject = subject or {"kind": "ServiceAccount", "name": "cosmolet", "namespace": "kube-system"}
    return {
        "kind": binding_kind,
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": [subject],
    }


def allowed(documents: list[Any], verb: str, path: str, user: User = SA, **query: str) -> bool:
    method = {"list": "GET", "get": "GET", "watch": "GET", "create": "POST", "patch": "PATCH"}
    if verb == "watch":
        query["watch"] = "1"
    request = request_attributes(method.get(verb, verb.upper()), path, query)
    return Rbac.from_manifests(documents, "kube-system").decide(user, request)[0]


RULE = {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch"]}
BIND = binding("ClusterRoleBinding", "ClusterRole", "reader")


def test_rules_match_groups_resources_and_verbs() -> None:
    docs = [cluster_role("reader", RULE), BIND]
    assert allowed(docs, "list", "/api/v1/services")
    assert allowed(docs, "watch", "/api/v1/namespaces/a/services")
    assert not allowed(docs, "create", "/api/v1/namespaces/a/services")
    assert not allowed(docs, "list", "/api/v1/nodes")
    assert not allowed(docs, "list", "/api/v1/services", user=OTHER)
    # The same resource name in another group is another resource.
    assert not allowed(docs, "list", "/apis/other.io/v1/services")
    # A subresource needs its own entry, or */status.
    assert not allowed(docs, "get", "/api/v1/namespaces/a/services/web/status")
    status = {"apiGroups": [""], "resources": ["*/status"], "verbs": ["get"]}
    assert allowed([cluster_role("reader", status), BIND], "get", "/api/v1/nodes/n/status")


def test_wildcards() -> None:
    everything = {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}
    docs = [cluster_role("reader", everything), BIND]
    assert allowed(docs, "create", "/apis/discovery.k8s.io/v1/namespaces/a/endpointslices")
    assert allowed(docs, "delete", "/api/v1/nodes/n")


def test_resource_names_limit_gets_and_name_selected_lists() -> None:
    own = {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]}
    docs = [cluster_role("reader", {**own, "resourceNames": ["node1"]}), BIND]
    assert allowed(docs, "get", "/api/v1/nodes/node1")
    assert not allowed(docs, "get", "/api/v1/nodes/node2")
    assert not allowed(docs, "list", "/api/v1/nodes")
    assert allowed(docs, "watch", "/api/v1/nodes", fieldSelector="metadata.name=node1")


def test_role_bindings_hold_in_their_namespace_only() -> None:
    role = {"kind": "Role", "metadata": {"name": "reader", "namespace": "apps"}, "rules": [RULE]}
    docs = [role, binding("RoleBinding", "Role", "reader", "apps")]
    assert allowed(docs, "list", "/api/v1/namespaces/apps/services")
    assert not allowed(docs, "list", "/api/v1/namespaces/other/services")
    assert not allowed(docs, "list", "/api/v1/services")  # all namespaces: cluster scope
    # A RoleBinding to a ClusterRole grants it in the binding's namespace only.
    docs = [cluster_role("reader", RULE), binding("RoleBinding", "ClusterRole", "reader", "apps")]
    assert allowed(docs, "get", "/api/v1/namespaces/apps/services/web")
    assert not allowed(docs, "get", "/api/v1/namespaces/other/services/web")
    # Without a namespace (as helm template leaves it), the release namespace is meant.
    role = {"kind": "Role", "metadata": {"name": "reader"}, "rules": [RULE]}
    docs = [role, binding("RoleBinding", "Role", "reader")]
    assert allowed(docs, "list", "/api/v1/namespaces/kube-system/services")


def test_subjects_users_and_groups() -> None:
    role = cluster_role("reader", RULE)

    def bound(**subject: str) -> list[dict[str, Any]]:
        return [role, binding("ClusterRoleBinding", "ClusterRole", "reader", subject=subject)]

    assert allowed(bound(kind="Group", name="system:serviceaccounts"), "list", "/api/v1/services",
                   user=OTHER)  # fmt: skip
    assert allowed(bound(kind="User", name=SA.name), "list", "/api/v1/services")
    assert not allowed(bound(kind="User", name=SA.name), "list", "/api/v1/services", user=OTHER)
    elsewhere = bound(kind="ServiceAccount", name="cosmolet", namespace="default")
    assert not allowed(elsewhere, "list", "/api/v1/services")


def test_non_resource_urls_and_discovery() -> None:
    urls = {"nonResourceURLs": ["/lab/*"], "verbs": ["post"]}
    assert allowed([cluster_role("lab", urls), binding(
        "ClusterRoleBinding", "ClusterRole", "lab")], "post", "/lab/compact")  # fmt: skip
    assert not allowed([], "post", "/lab/compact")
    for path in ("/api", "/apis/discovery.k8s.io/v1", "/openapi/v3/api/v1", "/version"):
        assert allowed([], "get", path), path  # system:discovery, for every authenticated user
    assert not allowed([], "get", "/metrics")


def test_a_missing_role_is_named_in_the_reason() -> None:
    rbac = Rbac.from_manifests([BIND], "kube-system")
    request = request_attributes("GET", "/api/v1/services", {})
    assert rbac.decide(SA, request) == (
        False,
        'RBAC: clusterrole.rbac.authorization.k8s.io "reader" not found',
    )
    assert forbidden(SA, request, rbac.decide(SA, request)[1]).message == (
        'services is forbidden: User "system:serviceaccount:kube-system:cosmolet" cannot list'
        ' resource "services" in API group "" at the cluster scope:'
        ' RBAC: clusterrole.rbac.authorization.k8s.io "reader" not found'
    )


def test_manifests_from_a_file_with_other_kinds(tmp_path: Path) -> None:
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(
        "---\n# Source: a comment-only document\n---\n"
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: cosmolet}\n---\n"
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: reader}\n"
        "rules: [{apiGroups: [''], resources: [services], verbs: [list]}]\n---\n"
        "kind: List\nitems:\n- kind: ClusterRoleBinding\n  metadata: {name: b}\n"
        "  roleRef: {kind: ClusterRole, name: reader}\n"
        "  subjects: [{kind: ServiceAccount, name: cosmolet, namespace: kube-system}]\n"
    )
    rbac = Rbac.load(rendered, "kube-system")
    assert rbac.decide(SA, request_attributes("GET", "/api/v1/services", {}))[0]
    rendered.write_text("kind: ClusterRoleBinding\nmetadata: {name: b}\nroleRef: {kind: Pod}\n")
    with pytest.raises(ValueError, match="roleRef kind 'Pod'"):
        Rbac.load(rendered, "kube-system")
    rendered.write_text("kind: ClusterRole\nmetadata: {name: r}\nrules: [{verbs: get}]\n")
    with pytest.raises(ValueError, match="verbs must be a list"):
        Rbac.load(rendered, "kube-system")


def test_service_account_names() -> None:
    assert ServiceAccount.parse("kube-system/cosmolet") == ServiceAccount("kube-system", "cosmolet")
    for bad in ("cosmolet", "/cosmolet", "kube-system/", "a/b/c"):
        with pytest.raises(ValueError):
            ServiceAccount.parse(bad)


def test_attributes_of_a_forbidden_non_resource_request() -> None:
    request = Attributes(verb="get", path="/metrics", resource_request=False)
    error = forbidden(SA, request, "")
    assert error.status()["message"] == (
        'forbidden: User "system:serviceaccount:kube-system:cosmolet" cannot get path "/metrics"'
    )
    assert error.status()["details"] == {}
