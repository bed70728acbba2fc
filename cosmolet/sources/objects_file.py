"""Reading Kubernetes objects from a file, as `kubectl get ... -o json` (or `-o yaml`) writes it.

This is the cluster-state source of ``cosmolet plan`` and of ``cosmolet agent --objects``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import yaml


class ObjectsFileError(Exception):
    """The objects file could not be read or parsed as JSON or YAML at all."""


def load_documents(path: str | Path) -> list[Any]:
    """Return the documents of a JSON file or a YAML stream.

    Raises:
        ObjectsFileError: naming the file and the parser's complaint.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ObjectsFileError(f"{path}: cannot read: {error.strerror}") from None
    try:
        return [msgspec.json.decode(data)]
    except msgspec.DecodeError:
        pass
    try:
        return [doc for doc in yaml.safe_load_all(data) if doc is not None]
    except yaml.YAMLError as error:
        raise ObjectsFileError(f"{path}: neither JSON nor YAML: {error}") from None
