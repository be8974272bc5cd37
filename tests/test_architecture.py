"""The app graph: which top-level package may import which, as docs/architecture.md draws it.

Fails when an import adds an arrow the document does not draw (or the document draws one no
import needs), when the arrows make a cycle, and when a module imports another app inside a
function (the usual way to hide a cycle)."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
NOT_APPS = {"tests", "bench"}


def apps() -> set[str]:
    return {p.parent.name for p in ROOT.glob("*/__init__.py")} - NOT_APPS


def modules(app: str):
    for path in sorted((ROOT / app).rglob("*.py")):
        if "migrations" not in path.parts:
            yield path, ast.parse(path.read_text(), filename=str(path))


def imported_apps(node: ast.AST, known: set[str]) -> set[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        names = [node.module]
    else:
        return set()
    return {name.split(".")[0] for name in names} & known


def actual_graph() -> dict[str, set[str]]:
    known = apps()
    graph: dict[str, set[str]] = {app: set() for app in known}
    for app in known:
        for _, tree in modules(app):
            for node in ast.walk(tree):
                graph[app] |= imported_apps(node, known) - {app}
    return graph


def documented_graph() -> dict[str, set[str]]:
    """The block of `app -> a, b, c` lines between the markers in docs/architecture.md."""
    block = re.search(r"<!-- app-graph -->\s*```text\n(.*?)```", DOC.read_text(), re.S)
    assert block, "docs/architecture.md has no app graph block"
    graph = {}
    for line in block.group(1).strip().splitlines():
        app, _, targets = line.partition("->")
        graph[app.strip()] = {t.strip() for t in targets.split(",") if t.strip()}
    return graph


def test_the_documented_app_graph_is_the_imports():
    actual, documented = actual_graph(), documented_graph()
    assert set(documented) == set(actual), "every app, and only apps, in the document"
    differences = {
        app: {"undocumented": sorted(actual[app] - documented[app]), "unused": sorted(documented[app] - actual[app])}
        for app in actual
        if actual[app] != documented[app]
    }
    assert not differences


def test_the_arrows_point_down_only():
    graph = documented_graph()
    done: set[str] = set()

    def visit(app: str, path: tuple[str, ...]) -> None:
        assert app not in path, f"cycle: {' -> '.join((*path, app))}"
        if app not in done:
            for target in graph.get(app, ()):
                visit(target, (*path, app))
            done.add(app)

    for app in graph:
        visit(app, ())
    assert not any("gateway" in targets for targets in graph.values()), "no app imports the project package"


def test_no_app_is_imported_inside_a_function():
    known = apps()
    hidden = []
    for app in known:
        for path, tree in modules(app):
            for function in ast.walk(tree):
                if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                    for node in ast.walk(function):
                        if imported_apps(node, known):
                            hidden.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not hidden
