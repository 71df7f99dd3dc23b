"""The package's shape: layers that import only downwards, no private names across packages,
no module or function too long to read, activation knowledge only in the registry.

These tests read the source with :mod:`ast` (nothing is imported), so they fail on the change
that breaks the rule, with the file and line that break it. docs/development.md explains the
layers and where each kind of change goes.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mftheory"

#: Each top-level module or subpackage of mftheory and its layer, bottom (0) to top. A module
#: may import from its own package and from packages of a strictly lower layer only.
LAYERS: dict[str, int] = {
    "_version": 0,
    "errors": 0,
    "serialize": 0,
    "checks": 1,
    "activations": 2,
    "gaussian": 3,
    "reference": 4,
    "meanfield": 5,
    "cnn": 6,
    "spectrum": 6,
    "montecarlo": 7,
    "__init__": 8,
    "files": 8,
    "plotting": 9,
    "torch": 10,
    "validation": 11,
    "cli": 12,
    "__main__": 13,
}

MAX_MODULE_LINES = 700
MAX_FUNCTION_CODE_LINES = 100


def _modules() -> Iterator[tuple[Path, str]]:
    """Every source file with its dotted module name."""
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield path, ".".join(parts)


def _unit(module: str) -> str:
    """The layer unit of a dotted module name: its top-level package or module below mftheory."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path, module: str) -> Iterator[tuple[int, str, list[str]]]:
    """``(line, imported module, imported names)`` for every mftheory import in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "mftheory":
                    yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if not is_package:
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.split(".")[0] != "mftheory":
                continue
            yield node.lineno, target, [a.name for a in node.names]


def test_every_unit_has_a_layer() -> None:
    units = {_unit(m) for _, m in _modules()}
    assert units <= set(LAYERS), f"give these a layer in LAYERS: {sorted(units - set(LAYERS))}"


def test_imports_point_downwards() -> None:
    bad = []
    for path, module in _modules():
        src = _unit(module)
        for line, target, names in _imports(path, module):
            units = {_unit(target)}
            if target == "mftheory":
                units = {n for n in names if n in LAYERS} or {"__init__"}
            for dst in units:
                if dst == src:
                    continue
                if LAYERS[dst] >= LAYERS[src]:
                    rel = path.relative_to(ROOT)
                    bad.append(f"{rel}:{line} ({src}, layer {LAYERS[src]}) imports {target}")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_no_private_name_crosses_a_package() -> None:
    bad = []
    for path, module in _modules():
        src = _unit(module)
        for line, target, names in _imports(path, module):
            if _unit(target) == src and target != "mftheory":
                continue
            if module == "mftheory" and target == "mftheory._version":
                continue  # the package re-exports its version; everyone else imports that
            private_module = [p for p in target.split(".")[1:] if p.startswith("_")]
            private_names = [
                n
                for n in names
                if n.startswith("_") and not (n.startswith("__") and n.endswith("__"))
            ]
            if (private_module and private_module != ["__init__"]) or private_names:
                rel = path.relative_to(ROOT)
                bad.append(f"{rel}:{line} imports {target} {private_names}")
    assert not bad, "private names imported from another package:\n" + "\n".join(bad)


def test_modules_stay_short() -> None:
    long = []
    for path, _ in _modules():
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > MAX_MODULE_LINES:
            long.append(f"{path.relative_to(ROOT)}: {n} lines")
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them):\n" + "\n".join(long)


def _code_lines(source: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    body = node.body
    first = body[0]
    is_doc = (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    )
    start = (
        (body[1].lineno if len(body) > 1 else first.end_lineno or first.lineno)
        if is_doc
        else (first.lineno)
    )
    lines = source[start - 1 : node.end_lineno]
    return sum(1 for s in lines if s.strip() and not s.strip().startswith("#"))


def test_functions_stay_short() -> None:
    long = []
    for path, _ in _modules():
        text = path.read_text(encoding="utf-8")
        source = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = _code_lines(source, node)
                if n > MAX_FUNCTION_CODE_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {n}")
    assert not long, (
        f"functions over {MAX_FUNCTION_CODE_LINES} lines of code (split them):\n" + "\n".join(long)
    )


def test_top_level_stays_small() -> None:
    modules = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(modules) <= 10, f"mftheory/ has {len(modules)} top-level modules: {modules}"


_CLOSED_FORM_DISPATCH = re.compile(r"closed_form\s*(==|!=|\bin\b|\bnot in\b)\s*[\"'(\[]")


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_no_activation_string_dispatch_outside_the_registry(path: Path) -> None:
    if path.is_relative_to(PACKAGE / "activations"):
        return
    text = path.read_text(encoding="utf-8")
    hits = [
        f"{path.relative_to(ROOT)}:{i}: {line.strip()}"
        for i, line in enumerate(text.splitlines(), 1)
        if _CLOSED_FORM_DISPATCH.search(line)
    ]
    assert not hits, "ask the activation registry instead:\n" + "\n".join(hits)


def test_no_import_cycle_between_packages() -> None:
    # module-level cycles: depth-first search over the module graph (top-level imports only)
    graph: dict[str, set[str]] = {}
    for path, module in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                if node.module.split(".")[0] == "mftheory":
                    graph.setdefault(module, set()).add(node.module)
    seen: set[str] = set()
    stack: list[str] = []

    def visit(m: str) -> None:
        if m in stack:
            cycle = [*stack[stack.index(m) :], m]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if m in seen:
            return
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            visit(n)
        stack.pop()
        seen.add(m)

    for m in sorted(graph):
        visit(m)
