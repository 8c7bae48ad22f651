"""The layers of README "Layout", checked on every import statement in retire/.

Every `import` and `from ... import` counts: at module level, inside functions and under
`TYPE_CHECKING` (a type-only import still ties two modules together for a reader). An import
may only go down the ranks below (or stay within a layer), and no set of modules may import
each other in a circle. `from package import name` is an edge to `package.name` when that is a
module, to the package otherwise; a module's own parent packages are not edges (Python
initialises them first anyway).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "retire"

# Lowest first. A module's rank is that of the longest prefix listed. Leaves (no retire imports
# but other leaves) are importable by all; config sits just under the commands because it builds
# the narrow frozen types every layer below takes, so nothing below it imports it.
RANKS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "leaf",
        ("retire", "retire.errors", "retire.durations", "retire.escape", "retire.redact", "retire.deadline"),
    ),
    ("sources", ("retire.sources", "retire.servers")),
    ("advisor", ("retire.advisor",)),
    ("formats", ("retire.formats",)),
    ("delivery", ("retire.delivery",)),
    ("actions", ("retire.actions",)),
    ("config", ("retire.config",)),
    ("run", ("retire.run",)),
    ("cli", ("retire.cli", "retire.__main__")),
    ("lab", ("retire.lab",)),  # the demo and the test servers: they drive everything above
)


def modules(root: Path = ROOT) -> dict[str, Path]:
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def rank(module: str) -> tuple[int, str]:
    best: tuple[int, int, str] | None = None
    for i, (layer, prefixes) in enumerate(RANKS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and (best is None or len(p) > best[0]):
                # the bare package "retire" only names itself, not every module under it
                if p == "retire" and module != "retire":
                    continue
                best = (len(p), i, layer)
    assert best is not None, f"{module} is in no layer: add it to RANKS"
    return best[1], best[2]


def _resolve(target: str, known: dict[str, Path]) -> str | None:
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target or None


def imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import statement in the module, wherever it is."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module for a in node.names]
        else:
            continue
        for t in targets:
            found = _resolve(t, known)
            if found is not None and found != name and not name.startswith(found + "."):
                yield found, node.lineno


def graph(known: dict[str, Path]) -> dict[str, dict[str, int]]:
    return {name: dict(imports(name, path, known)) for name, path in known.items()}


def upward(edges: dict[str, dict[str, int]]) -> list[str]:
    bad = []
    for a, targets in sorted(edges.items()):
        for b, line in sorted(targets.items()):
            (ra, la), (rb, lb) = rank(a), rank(b)
            if rb > ra:
                bad.append(f"{a} ({la}) imports {b} ({lb}) at line {line}")
    return bad


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges.get(w, {})))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_every_module_has_a_layer() -> None:
    for name in modules():
        rank(name)


def test_no_import_goes_up_a_layer() -> None:
    assert upward(graph(modules())) == []


def test_no_import_cycle() -> None:
    assert cycles(graph(modules())) == []


def test_config_is_imported_only_by_the_commands() -> None:
    edges = graph(modules())
    users = sorted(a for a, targets in edges.items() if "retire.config" in targets)
    assert all(rank(a)[0] > rank("retire.config")[0] for a in users), users


def test_the_checks_catch_an_upward_import_and_a_cycle(tmp_path: Path) -> None:
    """The checker itself: a leaf importing the advisor is both up a layer and (here) a cycle."""
    pkg = tmp_path / "retire"
    (pkg / "advisor").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "errors.py").write_text("def f():\n    from retire.advisor import verdicts\n")
    (pkg / "advisor" / "__init__.py").write_text("")
    (pkg / "advisor" / "verdicts.py").write_text("from retire import errors\n")
    edges = graph(modules(pkg))
    assert upward(edges) == ["retire.errors (leaf) imports retire.advisor.verdicts (advisor) at line 2"]
    assert cycles(edges) == [["retire.advisor.verdicts", "retire.errors"]]
