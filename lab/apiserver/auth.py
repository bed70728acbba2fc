"""Who is asking, and may they: bearer tokens, the request's RBAC attributes, 401 and 403.

Only a server started with a TLS directory checks anything (plain HTTP serves every request, as
the lab always did). Then each request needs ``Authorization: Bearer TOKEN``: the admin token
(group ``system:masters``, allowed everything) or the service account's, whose requests RBAC
decides when manifests were given (without them, any authenticated request is allowed).

As in a real API server, authentication comes first (401 even for a path that does not exist),
then authorization (403 before the route is looked up), and the answers are ``Status`` objects
worded as the real ones, so a client's error handling meets what it would meet in a cluster.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from lab.apiserver.rbac import MASTERS, Attributes, Rbac, User, service_account_user
from lab.apiserver.resources import ApiError

ADMIN = User("lab-admin", (MASTERS, "system:authenticated"))
_VERBS = {
    "POST": "create",
    "GET": "get",
    "HEAD": "get",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}


def request_attributes(method: str, path: str, query: dict[str, str]) -> Attributes:
    """The verb, resource, namespace and name of a request, parsed as Kubernetes'
    ``RequestInfoFactory`` does: GET on a collection is list (watch with ``watch=1``/``true``),
    and a list or watch with ``fieldSelector=metadata.name=X`` names X."""
    parts = [p for p in path.split("/") if p]
    plain = Attributes(verb=method.lower(), path=path, resource_request=False)
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return plain
    rest = parts[1:]
    group = ""
    if parts[0] == "apis":
        if len(rest) < 3:
            return plain
        group, rest = rest[0], rest[1:]
    version, rest = rest[0], rest[1:]
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2:
            rest = rest[2:]
    verb = _VERBS.get(method, "")
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if not name and verb == "get":
        verb = "watch" if query.get("watch") in ("true", "1") else "list"
        name = _name_from_field_selector(query.get("fieldSelector", ""))
    if not name and verb == "delete":
        verb = "deletecollection"
    return Attributes(verb, path, True, group, version, namespace, rest[0], subresource, name)


def _name_from_field_selector(selector: str) -> str:
    """X when the selector requires ``metadata.name`` to equal X (``=`` or ``==``)."""
    for term in selector.split(","):
        key, _, value = term.replace("==", "=").partition("=")
        if key.strip() == "metadata.name":  # "metadata.name!=x" leaves "metadata.name!"
            return value.strip()
    return ""


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden(user: User, request: Attributes, reason: str) -> ApiError:
    """The real server's 403: ``services is forbidden: User "…" cannot list resource "services"
    in API group "" at the cluster scope``, with ``details`` naming the resource."""
    if request.resource_request:
        resource = request.resource
        if request.subresource:
            resource += f"/{request.subresource}"
        scope = (
            f'in the namespace "{request.namespace}"'
            if request.namespace
            else "at the cluster scope"
        )
        why = (
            f'User "{user.name}" cannot {request.verb} resource "{resource}"'
            f' in API group "{request.api_group}" {scope}'
        )
    else:
        why = f'User "{user.name}" cannot {request.verb} path "{request.path}"'
    if reason:
        why += f": {reason}"
    details = {
        key: value
        for key, value in (
            ("name", request.name),
            ("group", request.api_group),
            ("kind", request.resource),
        )
        if value
    }
    qualified = request.resource + (f".{request.api_group}" if request.api_group else "")
    if not request.resource:
        message = f"forbidden: {why}"
    elif request.name:
        message = f'{qualified} "{request.name}" is forbidden: {why}'
    else:
        message = f"{qualified} is forbidden: {why}"
    return ApiError(403, "Forbidden", message, details)


@dataclass(frozen=True)
class ServiceAccount:
    namespace: str
    name: str

    @classmethod
    def parse(cls, text: str) -> ServiceAccount:
        """``NAMESPACE/NAME``."""
        namespace, _, name = text.partition("/")
        if not namespace or not name or "/" in name:
            raise ValueError(f"a service account is NAMESPACE/NAME, not {text!r}")
        return cls(namespace, name)


class Guard:
    """Authenticates by bearer token and authorizes by RBAC; raises ApiError 401 or 403."""

    def __init__(
        self,
        admin_token: str,
        service_account: tuple[ServiceAccount, str] | None = None,
        rbac: Rbac | None = None,
    ) -> None:
        """``service_account``: the account and its token; ``rbac``: None allows it all."""
        self.tokens = [(admin_token, ADMIN)]
        if service_account is not None:
            account, token = service_account
            self.tokens.append((token, service_account_user(account.namespace, account.name)))
        self.rbac = rbac

    def authenticate(self, authorization: str | None) -> User:
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and token:
            for known, user in self.tokens:
                if hmac.compare_digest(known.encode(), token.encode()):
                    return user
        raise unauthorized()

    def check(
        self, method: str, path: str, query: dict[str, str], authorization: str | None
    ) -> None:
        user = self.authenticate(authorization)
        if self.rbac is None:
            return
        request = request_attributes(method, path, query)
        allowed, reason = self.rbac.decide(user, request)
        if not allowed:
            raise forbidden(user, request, reason)
