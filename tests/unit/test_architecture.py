"""The shape of the house, checked from the source with ``ast`` so that it stays true:

- no import cycle among cosmolet's modules (lazy imports inside functions count too);
- the route engine reaches no I/O: nothing it imports, transitively, touches threads, sockets,
  processes, files, the environment, or the kubernetes / exabgp / pyroute2 / prometheus
  libraries, and of cosmolet it reaches only itself and the config *schema*;
- no module of ``cosmolet/`` over 400 lines.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "cosmolet"
MAX_LINES = 400

#: Standard and third-party modules that do I/O or read the process's environment.
IO_MODULES = frozenset(
    {
        "asyncio",
        "http",
        "io",
        "kubernetes",
        "logging",
        "multiprocessing",
        "os",
        "prometheus_client",
        "pyroute2",
        "exabgp",
        "select",
        "shutil",
        "signal",
        "socket",
        "structlog",
        "subprocess",
        "sys",
        "tempfile",
        "threading",
        "time",
        "urllib",
        "yaml",
    }
)
ENGINE_MAY_REACH = ("cosmolet.engine", "cosmolet.config.schema", "cosmolet.config")
#: Parts of those packages that only compute (the schema checks a URL's form with urllib.parse).
PURE_PARTS = frozenset({"urllib.parse"})


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


@cache
def imports(module: str) -> frozenset[str]:
    """Every module named by an import statement anywhere in ``module`` (resolved to a
    cosmolet module where it is one; the top-level name for other packages)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(_resolve(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in MODULES else _resolve(base))
    found.discard(module)
    return frozenset(found)


def _resolve(name: str) -> str:
    if name.startswith("cosmolet"):
        while name not in MODULES and "." in name:
            name = name.rpartition(".")[0]
        return name
    return name if name in PURE_PARTS else name.partition(".")[0]


def reachable(start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        module = todo.pop()
        for name in imports(module):
            if name not in seen:
                seen.add(name)
                if name in MODULES:
                    todo.append(name)
    return seen


def test_the_checker_sees_the_tree() -> None:
    assert "cosmolet.engine.rules" in MODULES and "cosmolet.agent.reconciler" in MODULES
    assert "cosmolet.engine.model" in imports("cosmolet.engine.rules")
    assert "threading" in reachable("cosmolet.agent.main")


def test_no_import_cycle_among_cosmolet_modules() -> None:
    cycles = []
    for module in MODULES:
        for name in imports(module):
            if name in MODULES and module in reachable(name):
                cycles.append(f"{module} -> {name} -> ... -> {module}")
    assert cycles == []


def test_the_engine_reaches_no_io() -> None:
    engine = [name for name in MODULES if name.startswith("cosmolet.engine")]
    assert len(engine) >= 8
    problems = []
    for module in engine:
        for name in reachable(module):
            io_module = name.partition(".")[0] in IO_MODULES and name not in PURE_PARTS
            outside = name.startswith("cosmolet") and not name.startswith(ENGINE_MAY_REACH)
            if io_module or outside:
                problems.append(f"{module} reaches {name}")
            elif name == "cosmolet.config.loader":
                problems.append(f"{module} reaches the config loader (files, environment)")
    assert problems == []


def test_no_module_over_the_limit() -> None:
    long = {
        name: lines
        for name, path in MODULES.items()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}
