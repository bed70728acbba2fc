"""Reading Kubernetes objects from a file, as `kubectl get ... -o json` (or `-o yaml`) writes it.

This is the cluster-state source of ``cosmolet plan`` and of ``cosmolet agent --objects``. A file
that is empty or half written (``kubectl get ... > file`` truncates it first) is refused, never
read as an empty cluster: the agent keeps its last good plan instead of withdrawing every route.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import msgspec
import yaml

EXPECTED = "a Kubernetes object or List with a 'kind', as kubectl get -o json/yaml writes it"


class ObjectsFileError(Exception):
    """The objects file is unreadable, empty, not JSON or YAML, or not Kubernetes objects."""


def _rfc3339(loader: yaml.SafeLoader | yaml.CSafeLoader, node: yaml.ScalarNode) -> str:
    """An unquoted YAML timestamp as the string Kubernetes writes (``2024-01-01T00:00:00Z``),
    since the records (``creationTimestamp``) take strings and order by them."""
    value = loader.construct_yaml_timestamp(node)
    if not isinstance(value, datetime.datetime):  # a date alone: as written
        return value.isoformat()
    if value.tzinfo is not None:
        value = value.astimezone(datetime.UTC)
    fraction = f".{value.microsecond:06d}" if value.microsecond else ""
    return value.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


class PurePythonLoader(yaml.SafeLoader):
    """PyYAML's own safe loader, reading timestamps as Kubernetes writes them."""


PurePythonLoader.add_constructor("tag:yaml.org,2002:timestamp", _rfc3339)
YAML_LOADER: type[yaml.SafeLoader | yaml.CSafeLoader] = PurePythonLoader
if yaml.__with_libyaml__:

    class LibyamlLoader(yaml.CSafeLoader):
        """libyaml's parser under the same constructors: ten times faster on a large list."""

    LibyamlLoader.add_constructor("tag:yaml.org,2002:timestamp", _rfc3339)
    YAML_LOADER = LibyamlLoader


def load_documents(path: str | Path) -> list[Any]:
    """Return the documents of a JSON file or a YAML stream, each a Kubernetes object or List.

    Raises:
        ObjectsFileError: naming the file and what is wrong with it.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ObjectsFileError(f"{path}: cannot read: {error.strerror}") from None
    if not data.strip():
        raise ObjectsFileError(f"{path}: empty (still being written?): expected {EXPECTED}")
    documents = _parse(path, data)
    if not documents:
        raise ObjectsFileError(f"{path}: no documents: expected {EXPECTED}")
    for number, document in enumerate(documents, 1):
        _check(f"{path}: document {number}" if len(documents) > 1 else str(path), document)
    return documents


def _parse(path: str | Path, data: bytes) -> list[Any]:
    try:
        return [msgspec.json.decode(data)]
    except msgspec.DecodeError as error:
        not_json = str(error)
    except RecursionError:
        raise ObjectsFileError(f"{path}: nested too deeply to be Kubernetes objects") from None
    try:
        return [doc for doc in yaml.load_all(data, Loader=YAML_LOADER) if doc is not None]
    except yaml.YAMLError as error:
        tried = (
            f"neither JSON ({not_json}) nor YAML"
            if data.lstrip()[:1] in (b"{", b"[")
            else "not YAML"
        )
        problem = " ".join(str(error).split())
        raise ObjectsFileError(f"{path}: {tried} ({problem}); truncated?") from None
    except RecursionError:  # the pure-Python composer recurses per nesting level
        raise ObjectsFileError(f"{path}: nested too deeply to be Kubernetes objects") from None


def _check(where: str, document: Any) -> None:
    """Refuse what no kubectl writes: a scalar or list at the top (partly written JSON can still
    parse as YAML), or a mapping without ``kind`` (``kubectl get -o yaml`` writes a List's
    ``kind`` after its ``items``, so a truncated List has none)."""
    if not isinstance(document, dict):
        found = type(document).__name__
        raise ObjectsFileError(f"{where}: {found} at the top level: expected {EXPECTED}")
    kind = document.get("kind")
    if not isinstance(kind, str) or not kind:
        raise ObjectsFileError(f"{where}: no 'kind' (truncated?): expected {EXPECTED}")
    if kind.endswith("List") and not isinstance(document.get("items"), list):
        raise ObjectsFileError(f"{where}: a {kind} without an 'items' list (truncated?)")
