"""Server-side field validation (the ``fieldValidation`` query parameter), against the schemas
the server publishes (``lab.apiserver.openapi``).

A real API server decodes a write into its Go type: a value of the wrong type fails the request
(400), and a field the type does not have is dropped, then refused (``Strict``), reported in a
``Warning`` header (``Warn``) or dropped silently (``Ignore``). kubectl asks for ``Strict`` when
the OpenAPI documents say the server supports the parameter, so ``kubectl apply`` of a manifest
with a misspelt field fails here as it does against a cluster.

A request without the parameter is stored exactly as sent, as the lab always did: fault tests
write mistyped objects on purpose, to see that the agent survives what a buggy writer could send.
"""

from __future__ import annotations

from typing import Any

from lab.apiserver import openapi
from lab.apiserver.resources import JSON, ApiError, Resource

MODES = ("Strict", "Warn", "Ignore")
_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}
_JSON_NAMES = {str: "string", int: "number", float: "number", bool: "bool", dict: "object"}


class _Walk:
    """One object against one schema: the unknown fields (removed) and the type errors."""

    def __init__(self, schemas: JSON, patch: bool) -> None:
        self.schemas = schemas
        self.patch = patch  # strategic merge patch directives ($patch, $setElementOrder/...)
        self.unknown: list[str] = []
        self.wrong: list[str] = []

    def resolve(self, schema: JSON) -> JSON:
        while True:
            ref = schema.get("$ref") or (schema.get("allOf") or [{}])[0].get("$ref")
            if not ref:
                return schema
            schema = self.schemas[ref.rsplit("/", 1)[1]]

    def check(self, value: Any, schema: JSON, path: str) -> None:
        schema = self.resolve(schema)
        if value is None:
            return  # null: unset (and in a merge patch, delete)
        if "oneOf" in schema:  # int-or-string, quantity
            allowed = tuple(t for s in schema["oneOf"] for t in _PYTHON_TYPES[s["type"]])
            self._type(value, allowed, path, schema)
            return
        kind = schema.get("type")
        if kind is None and "properties" in schema:
            kind = "object"
        if kind is None:
            return  # free-form (FieldsV1, RawExtension)
        if not self._type(value, _PYTHON_TYPES[kind], path, schema):
            return
        if kind == "array":
            for index, item in enumerate(value):
                self.check(item, schema.get("items", {}), f"{path}[{index}]")
        elif kind == "object":
            self._object(value, schema, path)

    def _type(self, value: Any, allowed: tuple[type, ...], path: str, schema: JSON) -> bool:
        if isinstance(value, bool) and bool not in allowed:
            ok = False  # JSON true is not a number
        else:
            ok = isinstance(value, allowed)
        if not ok:
            wanted = schema.get("format") or schema.get("type") or "quantity"
            got = _JSON_NAMES.get(type(value), "array")
            self.wrong.append(
                f"json: cannot unmarshal {got} into Go struct field {path.lstrip('.')}"
                f" of type {wanted}"
            )
        return ok

    def _object(self, value: JSON, schema: JSON, path: str) -> None:
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key in list(value):
            if self.patch and key.startswith("$"):
                continue
            if properties is not None and key in properties:
                self.check(value[key], properties[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                self.check(value[key], extra, f"{path}[{key}]")
            elif properties is not None or extra is False:
                self.unknown.append(f"{path}.{key}".lstrip("."))
                del value[key]


def validate(
    resource: Resource, body: Any, mode: str | None, patch: bool = False
) -> tuple[Any, list[str]]:
    """The body to store (unknown fields dropped) and the warnings to send, or ApiError 400.

    ``mode`` None: the body as it came, no questions (see the module docstring).
    """
    if mode is None:
        return body, []
    if mode not in MODES:
        raise ApiError(400, "BadRequest", f"invalid fieldValidation {mode!r}: one of {MODES}")
    document = openapi.v3_document(openapi.gv_path(resource))
    name = openapi.definition_name(resource.group, resource.version, resource.kind)
    schemas = document["components"]["schemas"]
    walk = _Walk(schemas, patch)
    walk.check(body, schemas[name], "")
    failure = f'{resource.kind} in version "{resource.version}" cannot be handled as a '
    failure += f"{resource.kind}: "
    if walk.wrong:
        raise ApiError(400, "BadRequest", failure + walk.wrong[0])
    unknown = [f'unknown field "{field}"' for field in walk.unknown]
    if unknown and mode == "Strict":
        raise ApiError(400, "BadRequest", failure + "strict decoding error: " + ", ".join(unknown))
    return body, unknown if mode == "Warn" else []
