"""Which part imports which, read from the source with ``ast`` (nothing is imported).

The chain's modules form layers: a module imports only modules below it, so no two import
each other; one that needs something from a module above it declares a Protocol in its
``expected_keepers.py`` and is handed the keeper. The ML node imports nothing of the chain
or the API node.
"""

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Bottom to top: each may import those before it, never one after it.
CHAIN_LAYERS = ("auth", "bank", "inference", "epochs", "validation", "gov")


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of everything the file imports, relative imports resolved;
    ``from chain import gov`` yields chain.gov."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else ()
            module = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"


def chain_module(dotted: str) -> str | None:
    parts = dotted.split(".")
    if len(parts) > 1 and parts[0] == "chain" and parts[1] in CHAIN_LAYERS:
        return parts[1]
    return None


def chain_edges() -> dict[tuple[str, str], list[str]]:
    """(importer, imported) chain module → the 'file:line imports x' lines behind it."""
    edges: dict[tuple[str, str], list[str]] = {}
    for name in CHAIN_LAYERS:
        for path in sorted((ROOT / "chain" / name).rglob("*.py")):
            for line, dotted in imports(path):
                target = chain_module(dotted)
                if target is not None and target != name:
                    edges.setdefault((name, target), []).append(
                        f"{path.relative_to(ROOT)}:{line} imports {dotted}")
    return edges


def find_cycle(edges: set[tuple[str, str]]) -> list[str] | None:
    graph: dict[str, list[str]] = {}
    for source, target in sorted(edges):
        graph.setdefault(source, []).append(target)
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node):], node]
        if node in done:
            return None
        for target in graph.get(node, []):
            cycle = visit(target, [*path, node])
            if cycle:
                return cycle
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start, [])
        if cycle:
            return cycle
    return None


def test_chain_modules_import_each_other_without_a_cycle():
    edges = chain_edges()
    cycle = find_cycle(set(edges))
    assert cycle is None, "chain modules import each other in a cycle: " + " → ".join(
        cycle) + "\n" + "\n".join(
        f"  {edges[pair][0]}" for pair in zip(cycle, cycle[1:], strict=False))


def test_chain_modules_import_only_modules_below_them():
    rank = {name: i for i, name in enumerate(CHAIN_LAYERS)}
    upward = [line for (source, target), lines in sorted(chain_edges().items())
              if rank[target] > rank[source] for line in lines]
    assert not upward, ("a chain module imports one above it (layers, bottom to top: "
                        f"{', '.join(CHAIN_LAYERS)}); declare what it needs in its "
                        "expected_keepers.py instead:\n  " + "\n  ".join(upward))


def test_the_ml_node_imports_neither_the_chain_nor_the_api_node():
    found = [f"{path.relative_to(ROOT)}:{line} imports {dotted}"
             for path in sorted((ROOT / "mlnode").rglob("*.py"))
             for line, dotted in imports(path)
             if dotted.split(".")[0] in ("chain", "apinode")]
    assert not found, "mlnode imports:\n  " + "\n  ".join(found)


def test_a_cycle_is_reported_with_the_modules_on_it():
    assert find_cycle({("epochs", "validation"), ("validation", "epochs"),
                       ("gov", "bank")}) == ["epochs", "validation", "epochs"]
    assert find_cycle({("gov", "bank"), ("bank", "auth")}) is None
