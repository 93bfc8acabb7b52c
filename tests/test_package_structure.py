"""The package's import graph: no cycles, and each layer imports only what sits below it.

The graph is read from the source with `ast`, so it sees imports inside
functions too (a cycle hidden in a function is still a cycle). An edge goes
from a module to each `keras_rlnas` module it names: `from a.b import c`
points at `a.b.c` when that is a module, else at `a.b`. The implicit import
of a package's `__init__` by its submodules is not an edge; the names the
top-level package loads on first use (its `_LAZY` table) are.
"""

import ast
import pathlib

PACKAGE = "keras_rlnas"
ROOT = pathlib.Path(__file__).resolve().parents[1] / PACKAGE

# What `reporting/` (drawing and summaries) may not import, directly or through others.
ABOVE_REPORTING = ("cli", "tuners", "export", "oracle", "supernet")


def module_name(path):
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules():
    return {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def resolve(name, known):
    """The longest prefix of dotted `name` that is a module of the package, or `None`."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def imported_names(module, path):
    """Absolute dotted names that `module` imports, anywhere in its source."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                yield f"{base}.{alias.name}"


def lazy_names(path):
    """Modules a package's `_LAZY = {name: module or None}` table imports on attribute access."""
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_LAZY" for t in node.targets):
            for key, value in zip(node.value.keys, node.value.values):
                yield value.value if value.value is not None else f"{PACKAGE}.{key.value}"


def import_graph():
    known = modules()
    graph = {}
    for module, path in known.items():
        names = [*imported_names(module, path), *lazy_names(path)]
        targets = {resolve(name, known) for name in names}
        graph[module] = sorted(t for t in targets if t is not None and t != module)
    return graph


def cycles(graph):
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def reachable(graph, start):
    seen, todo = set(), [start]
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def within(module, package):
    return module == package or module.startswith(package + ".")


def edges_into(graph, sources, targets):
    return [
        f"{source} -> {target}"
        for source in graph if any(within(source, s) for s in sources)
        for target in graph[source] if any(within(target, t) for t in targets)
    ]


GRAPH = import_graph()


def test_the_graph_sees_the_package():
    assert f"{PACKAGE}.cli.command" in GRAPH and f"{PACKAGE}.reporting.view" in GRAPH
    assert f"{PACKAGE}.cli.recipes" in GRAPH[f"{PACKAGE}.cli.command"]
    # Imports inside functions count: `cmd_report` imports the report module.
    assert f"{PACKAGE}.reporting.report" in GRAPH[f"{PACKAGE}.cli.command"]
    assert f"{PACKAGE}.tuners" in GRAPH[PACKAGE]


def test_no_import_cycles():
    assert cycles(GRAPH) == []


def test_reporting_imports_nothing_above_it():
    above = [f"{PACKAGE}.{name}" for name in ABOVE_REPORTING]
    assert edges_into(GRAPH, [f"{PACKAGE}.reporting"], above) == []
    for module in GRAPH:
        if within(module, f"{PACKAGE}.reporting"):
            assert not [m for m in reachable(GRAPH, module) if any(within(m, a) for a in above)], module


def test_export_does_not_import_the_command():
    assert edges_into(GRAPH, [f"{PACKAGE}.export"], [f"{PACKAGE}.cli", f"{PACKAGE}.reporting"]) == []


def test_spaces_do_not_import_supernet():
    assert edges_into(GRAPH, [f"{PACKAGE}.spaces"], [f"{PACKAGE}.supernet"]) == []


def test_layers_import_no_space_supernet_or_tuner():
    # Choice layers are what a user's own model is made of: they stand below everything that searches.
    above = [f"{PACKAGE}.{name}" for name in ("spaces", "supernet", "tuners", "oracle", "controller")]
    assert edges_into(GRAPH, [f"{PACKAGE}.layers"], above) == []
