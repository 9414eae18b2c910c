"""The package's folders show its architecture, and imports flow one way (README, Layout):

    cli, web                      (cli may start the web app; web never imports cli)
    daemon
    service
    registry | literature | mail  (never one another)
    store
    the shared core               (config, model, errors, http, matching)

A module may import its own layer and any layer below it, never one above, and never a sibling
of its own level. Checked on the source with ast, imports inside functions included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "watcher"
RANK = {"core": 0, "store": 1, "registry": 2, "literature": 2, "mail": 2, "service": 3, "daemon": 4}
RANK |= {"web": 5, "cli": 5, "entry": 6}
ALLOWED_SIDEWAYS = {("cli", "web")}
MAX_LINES = 400


def layer_of(module: str) -> str:
    """The layer of a dotted module name inside watcher (watcher.registry.diff -> registry)."""
    parts = module.split(".")
    if len(parts) < 2:
        return "core"
    head = parts[1]
    if head == "__main__":
        return "entry"
    return head if head in RANK else "core"


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, dotted name) of every watcher module imported by `source`, relative ones resolved."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from watcher import x` names the submodule x when x is one
            names = [f"{base}.{alias.name}" for alias in node.names] if base in ("watcher",) else [base]
            found += [(node.lineno, name) for name in names]
    return [(line, name) for line, name in found if name == "watcher" or name.startswith("watcher.")]


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    own = layer_of(module)
    problems = []
    for line, target in imported_modules(source, module, is_package):
        theirs = layer_of(target)
        if theirs == own:
            continue
        upward = RANK[theirs] > RANK[own]
        sideways = RANK[theirs] == RANK[own] and (own, theirs) not in ALLOWED_SIDEWAYS
        if upward or sideways:
            problems.append(f"{module}:{line} ({own}) imports {target} ({theirs})")
    return problems


def package_modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_import_flows_down() -> None:
    problems = []
    for path in package_modules():
        problems += violations(path.read_text(), module_name(path), path.name == "__init__.py")
    assert problems == []


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("watcher.store.repo", "from watcher.registry.diff import diff_records", ["registry"]),
        ("watcher.registry.pipeline", "import watcher.literature.items", ["literature"]),
        ("watcher.literature.pipeline", "def f():\n    from watcher.registry import client", ["registry"]),
        ("watcher.matching", "from watcher.registry.normalize import get_path", ["registry"]),
        ("watcher.mail.digest", "from watcher import service", ["service"]),
        ("watcher.service", "from watcher.daemon.lock import leader_lock", ["daemon"]),
        ("watcher.web.app", "from watcher.cli.shared import fail", ["cli"]),
        ("watcher.registry.pipeline", "from ..literature import fetch", ["literature"]),
        ("watcher.cli.operating", "from watcher.web import app", []),
        ("watcher.daemon.scheduler", "from watcher.service import Service", []),
        ("watcher.registry.diff", "from watcher.registry.normalize import prune\nfrom watcher.model import Study", []),
    ],
)
def test_the_checker_flags_what_it_should(module: str, source: str, expected: list[str]) -> None:
    found = violations(source, module)
    assert [problem.rsplit("(", 1)[1].rstrip(")") for problem in found] == expected


def test_each_concern_has_a_folder_that_says_what_it_owns() -> None:
    for concern in ("registry", "literature", "mail", "daemon", "store", "cli", "web"):
        init = PACKAGE / concern / "__init__.py"
        docstring = ast.get_docstring(ast.parse(init.read_text()))
        assert docstring and "import" in docstring, f"{init} needs a docstring saying what it may import"


def test_no_module_over_four_hundred_lines() -> None:
    long = {
        str(p.relative_to(PACKAGE)): n for p in package_modules() if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def module_imports() -> dict[str, set[str]]:
    """Each module of the package -> the modules of the package it imports (any import, typing
    only or inside a function included; `from watcher.web import auth` names watcher.web.auth)."""
    modules = {module_name(path): path for path in package_modules()}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        targets = {target for _line, target in imported_modules(path.read_text(), name, path.name == "__init__.py")}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("watcher"):
                targets |= {f"{node.module}.{alias.name}" for alias in node.names}
        graph[name] = {target for target in targets if target in modules and target != name}
    return graph


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def test_no_import_circles() -> None:
    """#25: config <-> pubmed_config (parse_interval) and web.app <-> web.auth (WebContext) were
    undone; an import circle hides which module owns what."""
    assert import_circles(module_imports()) == []
