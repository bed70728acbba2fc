"""Objects files (``cosmolet plan --objects``, ``agent --objects``): a half-written file is a bad
file, never an empty cluster; deep nesting is refused with the file's name; YAML goes through
libyaml when present and reads unquoted timestamps as Kubernetes writes them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from cosmolet.config.schema import validate
from cosmolet.engine.plan import plan_from_documents
from cosmolet.sources import objects_file
from cosmolet.sources.objects_file import ObjectsFileError, load_documents
from tests.factories import config_dict, endpoint, service, slice_

LIST = {"apiVersion": "v1", "kind": "List", "items": [service("web"), slice_("web")]}
LOADERS = [
    pytest.param(objects_file.PurePythonLoader, id="pure-python"),
    pytest.param(objects_file.YAML_LOADER, id="default"),
]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def kubectl_yaml(document: object) -> str:
    """As ``kubectl get -o yaml`` lays a List out: ``kind`` after ``items``."""
    return yaml.safe_dump(document, sort_keys=True)


def test_libyaml_is_the_default_here() -> None:
    assert yaml.__with_libyaml__, "PyYAML without libyaml: the C loader is not exercised"
    assert issubclass(objects_file.YAML_LOADER, yaml.CSafeLoader)


@pytest.mark.parametrize("text", ["", "   \n\t\n", "---\n# nothing yet\n"])
def test_an_empty_file_is_refused(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "objects.json", text)
    with pytest.raises(ObjectsFileError, match=re.escape(str(path))):
        load_documents(path)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.99])
def test_truncated_json_is_refused(tmp_path: Path, fraction: float) -> None:
    text = json.dumps(LIST, indent=4)
    path = write(tmp_path, "objects.json", text[: int(len(text) * fraction)])
    with pytest.raises(ObjectsFileError, match=re.escape(str(path))):
        load_documents(path)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_truncated_kubectl_yaml_is_refused(tmp_path: Path, fraction: float) -> None:
    text = kubectl_yaml(LIST)
    assert text.index("kind: List") > text.index("items:")
    cut = text[: int(len(text) * fraction)].rpartition("\n")[0]  # whole lines: it still parses
    yaml.safe_load(cut)
    path = write(tmp_path, "objects.yaml", cut)
    with pytest.raises(ObjectsFileError, match="no 'kind'"):
        load_documents(path)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ('"just a string"', "str at the top level: expected a Kubernetes object or List"),
        ("[1, 2]", "list at the top level"),
        ("42", "int at the top level"),
        ("metadata: {name: web}", "no 'kind'"),
        ("kind: List\nitems: null\n", "a List without an 'items' list"),
        ("kind: Service\n---\n- 1\n", "document 2: list at the top level"),
    ],
)
def test_documents_that_are_not_objects_are_refused(
    tmp_path: Path, text: str, complaint: str
) -> None:
    with pytest.raises(ObjectsFileError, match=complaint):
        load_documents(write(tmp_path, "objects", text))


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize(
    "text", ["[" * 100_000, '{"a":' * 100_000, "a:\n" + "- " * 100_000 + "x\n", "[" * 999]
)
def test_deep_nesting_is_refused_with_the_file_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loader: type, text: str
) -> None:
    monkeypatch.setattr(objects_file, "YAML_LOADER", loader)
    path = write(tmp_path, "deep.yaml", text)
    with pytest.raises(ObjectsFileError, match=re.escape(str(path))):
        load_documents(path)


def test_good_files_still_load(tmp_path: Path) -> None:
    assert load_documents(write(tmp_path, "a.json", json.dumps(LIST))) == [LIST]
    assert load_documents(write(tmp_path, "a.yaml", kubectl_yaml(LIST))) == [LIST]
    empty_cluster = {"apiVersion": "v1", "kind": "List", "items": []}
    assert load_documents(write(tmp_path, "b.json", json.dumps(empty_cluster))) == [empty_cluster]


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z"),
        ("2024-01-01T02:30:00+02:30", "2024-01-01T00:00:00Z"),
        ("2024-01-01 00:00:00", "2024-01-01T00:00:00Z"),
        ("2024-01-01T00:00:00.250000Z", "2024-01-01T00:00:00.250000Z"),
        ("2024-01-01", "2024-01-01"),
    ],
)
def test_unquoted_timestamps_read_as_kubernetes_writes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loader: type, written: str, read: str
) -> None:
    monkeypatch.setattr(objects_file, "YAML_LOADER", loader)
    path = write(tmp_path, "a.yaml", f"kind: Service\nmetadata:\n  creationTimestamp: {written}\n")
    assert load_documents(path) == [{"kind": "Service", "metadata": {"creationTimestamp": read}}]


@pytest.mark.parametrize("loader", LOADERS)
def test_plan_from_yaml_with_unquoted_timestamps_equals_plan_from_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loader: type
) -> None:
    monkeypatch.setattr(objects_file, "YAML_LOADER", loader)
    # Created in an order that differs from the names', so maxRoutes (oldest first) shows it.
    created = {
        "a": "2024-03-01T00:00:00Z",
        "b": "2024-01-01T00:00:00Z",
        "c": "2024-02-01T00:00:00Z",
    }
    items = []
    for index, (name, timestamp) in enumerate(created.items()):
        items.append(service(name, cluster_ips=(f"10.96.0.{index + 1}",), created=timestamp))
        items.append(slice_(name, [endpoint(node="node1", ready=True)]))
    objects = {"apiVersion": "v1", "kind": "List", "items": items}
    as_json = write(tmp_path, "objects.json", json.dumps(objects))
    text = kubectl_yaml(objects)
    unquoted = re.sub(r"'(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)'", r"\1", text)
    assert unquoted.count("creationTimestamp: 2024-") == 3  # unquoted, so YAML reads datetimes
    as_yaml = write(tmp_path, "objects.yaml", unquoted)
    config = validate(config_dict(maxRoutes=2))

    from_json = plan_from_documents(config, "node1", load_documents(as_json))
    from_yaml = plan_from_documents(config, "node1", load_documents(as_yaml))
    assert from_yaml.to_json() == from_json.to_json()
    assert [route.prefix for route in from_json.routes] == ["10.96.0.2/32", "10.96.0.3/32"]
