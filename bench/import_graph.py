"""The import graph of fmnist_tui: prints its import circles and the imports that run against the layers.

Every module is parsed (not imported) and every `import` / `from … import` statement counts as an arrow,
wherever it stands: at the top, inside a function (a lazy import) or under `if TYPE_CHECKING:`. Relative
imports are resolved; `from pkg import name` points at the submodule `pkg.name` where there is one, else at
`pkg` itself. Prints each circle (a strongly connected component of the graph, with one shortest cycle through
it), then each arrow from a lower layer into a higher one (training into study or cli), then a one-line tally.
Exit status 1 when it found either, 0 when the graph is clean.

    python bench/import_graph.py               # the fmnist_tui package next to this folder
    python bench/import_graph.py path/to/pkg   # another package folder
"""

from __future__ import annotations

import ast
import sys
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: (importer prefix, prefixes it must not import): the layers run core → training → study → cli/tui
FORBIDDEN = (("fmnist_tui.training", ("fmnist_tui.study", "fmnist_tui.cli")),)


def module_names(package: Path) -> dict[str, Path]:
    """Dotted module name → file, for every .py file under the package folder (`pkg/__init__.py` is `pkg`)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _base(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a `from` statement names, its leading dots resolved against the importer."""
    if not node.level:
        return node.module or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join([*parts, *([node.module] if node.module else [])])


def imports_of(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules this module imports, in any statement anywhere in its file."""
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _base(module, path.name == "__init__.py", node)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in known else base)
    return {t for t in targets if t in known and t != module}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components of more than one module, each sorted, in sorted order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def shortest_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """A shortest cycle through the component's first module, by breadth-first search inside the component."""
    start, inside = component[0], set(component)
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in sorted(graph[v] & inside):
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if w not in parent:
                parent[w] = v
                queue.append(w)
    return [start]


def layer_violations(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Every (importer, imported) arrow that FORBIDDEN rules out."""
    bad = []
    for importer, prefixes in FORBIDDEN:
        for v in sorted(graph):
            if v == importer or v.startswith(importer + "."):
                bad += [(v, w) for w in sorted(graph[v]) if any(w == p or w.startswith(p + ".") for p in prefixes)]
    return bad


def main(argv: list[str]) -> int:
    """Print the circles and the layer violations of the package folder (argv[0], default fmnist_tui)."""
    package = Path(argv[0]) if argv else ROOT / "fmnist_tui"
    known = module_names(package)
    graph = {m: imports_of(m, p, known) for m, p in known.items()}
    circles = strongly_connected(graph)
    for component in circles:
        print(f"circle of {len(component)}: {', '.join(component)}")
        print(f"  e.g. {' → '.join(shortest_cycle(graph, component))}")
    violations = layer_violations(graph)
    for importer, imported in violations:
        print(f"layer: {importer} imports {imported}")
    arrows = sum(len(t) for t in graph.values())
    print(f"{len(known)} modules, {arrows} arrows: {len(circles)} circles, {len(violations)} layer violations")
    return 1 if circles or violations else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
