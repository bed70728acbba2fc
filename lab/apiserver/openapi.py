"""The OpenAPI documents of the kinds served, built from Kubernetes' own schemas.

``kubectl apply`` reads ``/openapi/v3`` first: when the document of an object's group version
has a PATCH operation for its kind that takes the ``fieldValidation`` query parameter (as every
real server's has), kubectl leaves validation to the server and sends ``fieldValidation=Strict``
(``lab.apiserver.validation`` does it with these same schemas). Without such documents kubectl
falls back to ``/openapi/v2`` as protobuf, which this server does not encode: it answers the v2
document as JSON to clients that accept JSON, and 406 to a protobuf-only request.

The schemas are not written by hand: ``kubernetes-validate`` (a test dependency, used to
validate the rendered chart) ships every release's definitions as JSON Schema; this module takes
the release in ``KUBERNETES_VERSION`` (else the newest shipped), keeps the definitions the served
kinds reach, and turns them back into OpenAPI (``type: [string, "null"]`` to ``string``, ``$ref``
to ``#/components/schemas/`` or ``#/definitions/``, int-or-string and quantity as Kubernetes
publishes them), with the paths and operations of what this server answers.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import json
import re
from typing import Any, Literal

from lab.apiserver.resources import (
    JSON,
    KUBERNETES_VERSION,
    RESOURCES,
    WITH_STATUS,
    ApiError,
    Resource,
)

Dialect = Literal["v2", "v3"]
META = "io.k8s.apimachinery.pkg.apis.meta.v1."
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
_REF = re.compile(r'"#/\$defs/([^"]+)"')


@functools.cache
def definitions() -> dict[str, JSON]:
    """All of one release's definitions, JSON Schema as kubernetes-validate ships them."""
    root = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
    major, minor = KUBERNETES_VERSION
    wanted = root / f"v{major}.{minor}.0-local"
    if not wanted.is_dir():
        shipped = [d.name for d in root.iterdir() if re.fullmatch(r"v\d+\.\d+\.\d+-local", d.name)]
        newest = max(shipped, key=lambda n: tuple(int(x) for x in n[1:-6].split(".")))
        wanted = root / newest
    defs: dict[str, JSON] = json.loads((wanted / "_definitions.json").read_text())["$defs"]
    return defs


def definition_name(group: str, version: str, kind: str) -> str:
    """The definition carrying ``x-kubernetes-group-version-kind`` group/version/kind."""
    for name, schema in definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            if (gvk["group"], gvk["version"], gvk["kind"]) == (group, version, kind):
                return name
    raise KeyError(f"no schema for {group}/{version} {kind}")


def gv_path(resource: Resource) -> str:
    """``api/v1`` or ``apis/GROUP/VERSION``: the document's name in the v3 index."""
    return f"apis/{resource.group}/{resource.version}" if resource.group else "api/v1"


def _closure(roots: list[str]) -> list[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_REF.findall(json.dumps(definitions()[name])))
    return sorted(seen)


def _convert(node: Any, dialect: Dialect) -> Any:
    """One JSON Schema node as OpenAPI."""
    if isinstance(node, list):
        return [_convert(item, dialect) for item in node]
    if not isinstance(node, dict):
        return node
    out: JSON = {}
    for key, value in node.items():
        if key == "type" and isinstance(value, list):
            out[key] = next(t for t in value if t != "null")
        elif key == "properties":
            out[key] = {name: _convert(schema, dialect) for name, schema in value.items()}
        elif key == "$ref":
            prefix = "#/components/schemas/" if dialect == "v3" else "#/definitions/"
            out[key] = value.replace("#/$defs/", prefix)
        else:
            out[key] = _convert(value, dialect)
    if dialect == "v3" and "$ref" in out and len(out) > 1:
        out["allOf"] = [{"$ref": out.pop("$ref")}]  # v3 ignores a $ref's siblings
    return out


def _schema(name: str, dialect: Dialect) -> JSON:
    """One definition as Kubernetes publishes it in that dialect."""
    described = {k: v for k, v in definitions()[name].items() if k == "description"}
    if name == INT_OR_STRING:
        if dialect == "v2":
            return {**described, "type": "string", "format": "int-or-string"}
        types = [{"type": "integer"}, {"type": "string"}]
        return {**described, "format": "int-or-string", "oneOf": types}
    if name == QUANTITY:
        if dialect == "v2":
            return {**described, "type": "string"}
        return {**described, "oneOf": [{"type": "string"}, {"type": "number"}]}
    converted: JSON = _convert(definitions()[name], dialect)
    return converted


def _roots(resources: list[Resource]) -> list[str]:
    names = [f"{META}Status", f"{META}Patch", f"{META}DeleteOptions"]
    for r in resources:
        names += [
            definition_name(r.group, r.version, r.kind),
            definition_name(r.group, r.version, f"{r.kind}List"),
        ]
    return names


def _ref(name: str, dialect: Dialect) -> JSON:
    return {"$ref": ("#/components/schemas/" if dialect == "v3" else "#/definitions/") + name}


def _query(dialect: Dialect, *names: str) -> list[JSON]:
    if dialect == "v3":
        return [{"name": n, "in": "query", "schema": {"type": "string"}} for n in names]
    return [{"name": n, "in": "query", "type": "string", "uniqueItems": True} for n in names]


def _operation(
    dialect: Dialect,
    resource: Resource,
    action: str,
    response: str,
    body: str | None = None,
    query: tuple[str, ...] = (),
) -> JSON:
    """One operation; ``action`` is its ``x-kubernetes-action`` (list, post, get, put, patch,
    delete), ``response`` and ``body`` definition names."""
    patch = action == "patch"
    body_types = (
        ["application/merge-patch+json", "application/strategic-merge-patch+json"]
        if patch
        else ["application/json"]
    )
    op: JSON = {
        "operationId": f"{action}{resource.kind}",
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {
            "group": resource.group,
            "version": resource.version,
            "kind": resource.kind,
        },
        "parameters": _query(dialect, *query),
    }
    if dialect == "v3":
        content = {"application/json": {"schema": _ref(response, dialect)}}
        op["responses"] = {"200": {"description": "OK", "content": content}}
        if body:
            schema = _ref(body, dialect)
            op["requestBody"] = {"content": {t: {"schema": schema} for t in body_types}}
    else:
        op["responses"] = {"200": {"description": "OK", "schema": _ref(response, dialect)}}
        op["produces"] = ["application/json"]
        if body:
            op["consumes"] = body_types
            param = {"name": "body", "in": "body", "required": True, "schema": _ref(body, dialect)}
            op["parameters"].append(param)
    return op


LIST_QUERY = ("labelSelector", "fieldSelector", "limit", "continue", "resourceVersion", "watch")
WRITE_QUERY = ("dryRun", "fieldManager", "fieldValidation")


def _paths(resources: list[Resource], dialect: Dialect) -> JSON:
    paths: JSON = {}
    for r in resources:
        kind = definition_name(r.group, r.version, r.kind)
        kind_list = definition_name(r.group, r.version, f"{r.kind}List")
        status = f"{META}Status"
        prefix = f"/apis/{r.group}/{r.version}" if r.group else "/api/v1"
        scope = "/namespaces/{namespace}" if r.namespaced else ""
        collection = f"{prefix}{scope}/{r.plural}"

        op = functools.partial(_operation, dialect, r)
        paths[collection] = {
            "get": op("list", kind_list, query=LIST_QUERY),
            "post": op("post", kind, kind, query=WRITE_QUERY),
        }
        if r.namespaced:
            paths[f"{prefix}/{r.plural}"] = {"get": op("list", kind_list, query=LIST_QUERY)}
        item = {
            "get": op("get", kind),
            "put": op("put", kind, kind, query=WRITE_QUERY),
            "patch": op("patch", kind, f"{META}Patch", query=WRITE_QUERY),
        }
        paths[f"{collection}/{{name}}"] = {**item, "delete": op("delete", status)}
        if r.plural in WITH_STATUS:
            paths[f"{collection}/{{name}}/status"] = item
    return paths


def _served(path: str) -> list[Resource]:
    served = [r for r in RESOURCES if gv_path(r) == path]
    if not served:
        raise ApiError(404, "NotFound", f"no OpenAPI document {path}")
    return served


@functools.cache
def v3_document(path: str) -> JSON:
    """The document of one group version (``api/v1``, ``apis/discovery.k8s.io/v1``)."""
    served = _served(path)
    major, minor = KUBERNETES_VERSION
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": f"v{major}.{minor}.0"},
        "paths": _paths(served, "v3"),
        "components": {"schemas": {n: _schema(n, "v3") for n in _closure(_roots(served))}},
    }


@functools.cache
def v3_index() -> JSON:
    """Each group version's document, with the hash clients cache it by."""
    paths = {}
    for path in sorted({gv_path(r) for r in RESOURCES}):
        digest = hashlib.sha512(json.dumps(v3_document(path)).encode()).hexdigest().upper()
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}


@functools.cache
def v2_document() -> JSON:
    major, minor = KUBERNETES_VERSION
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": f"v{major}.{minor}.0"},
        "paths": _paths(RESOURCES, "v2"),
        "definitions": {n: _schema(n, "v2") for n in _closure(_roots(RESOURCES))},
    }
