"""RBAC as the real API server evaluates it, over rendered manifests (``helm template`` output).

The chart's ClusterRole is the agent's whole permission set, so the lab enforces it instead of
trusting it: a request is allowed when some binding whose subjects include the user refers to a
role with a rule that allows it. The rules follow Kubernetes' ``rbac/v1`` semantics:

- ``apiGroups``, ``resources`` and ``verbs`` match exactly or by ``*``; a subresource needs
  ``resource/subresource`` (or ``*/subresource``), never the bare resource;
- ``resourceNames`` limits a rule to those names (a list or watch names one only through a
  ``metadata.name=`` field selector, as the real request parser does);
- ``nonResourceURLs`` match a path exactly or by a trailing ``*``;
- a ClusterRoleBinding applies everywhere; a RoleBinding only to requests in its namespace;
- subjects: ``ServiceAccount`` (name and namespace), ``User`` and ``Group``.

Not modelled: aggregated ClusterRoles (``aggregationRule``), and the default roles a cluster has,
except ``system:discovery`` (discovery and OpenAPI for every authenticated user).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lab.apiserver.resources import JSON

AUTHENTICATED = "system:authenticated"
MASTERS = "system:masters"  # the admin's group: allowed everything, as in a real cluster
ROLE_KINDS = ("ClusterRole", "Role")
BINDING_KINDS = ("ClusterRoleBinding", "RoleBinding")


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]


def service_account_user(namespace: str, name: str) -> User:
    """The user a service account's token authenticates as, with the groups Kubernetes gives."""
    return User(
        f"system:serviceaccount:{namespace}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED),
    )


@dataclass(frozen=True)
class Attributes:
    """What authorization sees of a request (the real server's ``RequestInfo``)."""

    verb: str
    path: str
    resource_request: bool
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""


@dataclass(frozen=True)
class Rule:
    verbs: tuple[str, ...]
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    def allows(self, request: Attributes) -> bool:
        if "*" not in self.verbs and request.verb not in self.verbs:
            return False
        if not request.resource_request:
            return any(
                url in ("*", request.path)
                or (url.endswith("*") and request.path.startswith(url[:-1]))
                for url in self.non_resource_urls
            )
        return (
            ("*" in self.api_groups or request.api_group in self.api_groups)
            and self._resource_matches(request)
            and (not self.resource_names or request.name in self.resource_names)
        )

    def _resource_matches(self, request: Attributes) -> bool:
        combined = request.resource
        if request.subresource:
            combined += f"/{request.subresource}"
        return any(
            resource in ("*", combined)
            or (request.subresource != "" and resource == f"*/{request.subresource}")
            for resource in self.resources
        )


# Granted to every authenticated user by the default ClusterRoleBinding system:discovery.
DISCOVERY = Rule(
    verbs=("get",),
    non_resource_urls=(
        "/api", "/api/*", "/apis", "/apis/*", "/openapi", "/openapi/*",
        "/version", "/version/", "/healthz", "/livez", "/readyz",
    ),
)  # fmt: skip


@dataclass(frozen=True)
class Subject:
    kind: str
    name: str
    namespace: str = ""

    def includes(self, user: User) -> bool:
        if self.kind == "ServiceAccount":
            return bool(self.namespace) and user.name == (
                f"system:serviceaccount:{self.namespace}:{self.name}"
            )
        if self.kind == "User":
            return user.name == self.name
        return self.kind == "Group" and self.name in user.groups


@dataclass(frozen=True)
class Binding:
    name: str
    namespace: str | None  # None: a ClusterRoleBinding
    role_kind: str
    role_name: str
    subjects: tuple[Subject, ...]

    @property
    def role_key(self) -> tuple[str, str, str]:
        """A Role is looked up in the binding's namespace, a ClusterRole cluster-wide."""
        scope = (self.namespace or "") if self.role_kind == "Role" else ""
        return (self.role_kind, scope, self.role_name)

    def applies(self, user: User, request: Attributes) -> bool:
        in_scope = self.namespace is None or (
            request.resource_request and request.namespace == self.namespace
        )
        return in_scope and any(subject.includes(user) for subject in self.subjects)


def _strings(values: Any, what: str) -> tuple[str, ...]:
    if values is None:
        return ()
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError(f"{what} must be a list of strings")
    return tuple(values)


def _rule(raw: Any) -> Rule:
    if not isinstance(raw, dict):
        raise ValueError("a rule must be a mapping")
    return Rule(
        verbs=_strings(raw.get("verbs"), "verbs"),
        api_groups=_strings(raw.get("apiGroups"), "apiGroups"),
        resources=_strings(raw.get("resources"), "resources"),
        resource_names=_strings(raw.get("resourceNames"), "resourceNames"),
        non_resource_urls=_strings(raw.get("nonResourceURLs"), "nonResourceURLs"),
    )


class Rbac:
    """The roles and bindings of a set of manifests; everything else in them is ignored."""

    def __init__(self) -> None:
        self.roles: dict[tuple[str, str, str], list[Rule]] = {}
        self.bindings: list[Binding] = []

    @classmethod
    def from_manifests(cls, documents: Iterable[Any], default_namespace: str) -> Rbac:
        """``default_namespace``: where namespaced objects without one live (``helm template``
        leaves that to the release namespace)."""
        rbac = cls()
        for document in documents:
            if isinstance(document, dict) and document.get("kind") == "List":
                rbac._add_all(document.get("items") or [], default_namespace)
            else:
                rbac._add_all([document], default_namespace)
        return rbac

    @classmethod
    def load(cls, path: Path, default_namespace: str) -> Rbac:
        try:
            with path.open() as stream:
                return cls.from_manifests(yaml.safe_load_all(stream), default_namespace)
        except yaml.YAMLError as error:
            raise ValueError(f"{path}: {error}") from None

    def _add_all(self, documents: Iterable[Any], default_namespace: str) -> None:
        for document in documents:
            if not isinstance(document, dict):
                continue  # empty documents between separators
            kind = document.get("kind")
            if kind not in ROLE_KINDS + BINDING_KINDS:
                continue
            metadata = document.get("metadata") or {}
            name = metadata.get("name")
            if not isinstance(name, str) or not name:
                raise ValueError(f"a {kind} without a name")
            namespace = metadata.get("namespace") or default_namespace
            try:
                if kind in ROLE_KINDS:
                    scope = namespace if kind == "Role" else ""
                    self.roles[(kind, scope, name)] = [
                        _rule(r) for r in document.get("rules") or []
                    ]
                else:
                    self.bindings.append(self._binding(document, kind, name, namespace))
            except (KeyError, TypeError, AttributeError, ValueError) as error:
                raise ValueError(f"{kind} {name}: {error}") from None

    @staticmethod
    def _binding(document: JSON, kind: str, name: str, namespace: str) -> Binding:
        ref = document.get("roleRef") or {}
        if ref.get("kind") not in ROLE_KINDS or (
            kind == "ClusterRoleBinding" and ref["kind"] == "Role"
        ):
            raise ValueError(f"roleRef kind {ref.get('kind')!r}")
        subjects = tuple(
            Subject(s["kind"], s["name"], s.get("namespace") or "")
            for s in document.get("subjects") or []
        )
        scope = None if kind == "ClusterRoleBinding" else namespace
        return Binding(name, scope, ref["kind"], ref["name"], subjects)

    def decide(self, user: User, request: Attributes) -> tuple[bool, str]:
        """(allowed, why not): the reason names roles that bindings refer to but do not exist,
        as the real authorizer appends them to its 403 message."""
        if MASTERS in user.groups:
            return True, ""
        if (
            not request.resource_request
            and AUTHENTICATED in user.groups
            and DISCOVERY.allows(request)
        ):
            return True, ""
        missing = []
        for binding in self.bindings:
            if not binding.applies(user, request):
                continue
            rules = self.roles.get(binding.role_key)
            if rules is None:
                kind = binding.role_kind.lower()
                missing.append(f'{kind}.rbac.authorization.k8s.io "{binding.role_name}" not found')
            elif any(rule.allows(request) for rule in rules):
                return True, ""
        return False, f"RBAC: {', '.join(missing)}" if missing else ""
