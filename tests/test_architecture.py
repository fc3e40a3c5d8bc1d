"""The packages' shape, read from their source with ``ast``: no import circle between the modules
of r3v_eval / r3v_train (imports at the top of a module and inside functions alike), an import of
the project's own modules inside a function only where a comment says why, one direction of
dependency (r3v_eval never imports r3v_train), and no module a newcomer cannot read in one go."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("r3v_eval", "r3v_train")
#: the longest module (lines); over it a module mixes concerns that want modules of their own
MAX_LINES = 450


def _modules(root: Path = ROOT) -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _type_checking_only(tree: ast.AST) -> set[int]:
    """Line numbers of imports under ``if TYPE_CHECKING:`` (never run)."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                for sub in ast.walk(inner):
                    if isinstance(sub, (ast.Import, ast.ImportFrom)):
                        lines.add(sub.lineno)
    return lines


def _targets(node: ast.Import | ast.ImportFrom, module: str, path: Path,
             modules: dict[str, Path]) -> set[str]:
    """The project modules one import statement loads (``from pkg import sub`` names ``pkg.sub``
    when that is a module, else ``pkg``)."""

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    found = set()
    if isinstance(node, ast.Import):
        found = {resolve(a.name) for a in node.names}
    else:
        base = node.module or ""
        if node.level:
            package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
            package = package[:len(package) - (node.level - 1)]
            base = ".".join(package + ([base] if base else []))
        for alias in node.names:
            full = f"{base}.{alias.name}"
            found.add(full if full in modules else resolve(base))
    return {t for t in found if t and t != module}


def import_graph(root: Path = ROOT) -> tuple[dict[str, set[str]], list[tuple[str, int, str]]]:
    """(module -> the project modules it imports, anywhere in it; the function-level imports
    of project modules as (file, line, source line))."""
    modules = _modules(root)
    edges: dict[str, set[str]] = {}
    in_functions: list[tuple[str, int, str]] = []
    for module, path in modules.items():
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        tree = ast.parse(text)
        skip = _type_checking_only(tree)
        edges[module] = set()
        nested = {id(n) for f in ast.walk(tree)
                  if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                  for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or node.lineno in skip:
                continue
            targets = _targets(node, module, path, modules)
            edges[module] |= targets
            if targets and id(node) in nested:
                rel = path.relative_to(root).as_posix()
                in_functions.append((rel, node.lineno, lines[node.lineno - 1]))
    return edges, in_functions


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def uncommented(in_functions: list[tuple[str, int, str]], root: Path = ROOT) -> list[str]:
    """The function-level imports of project modules with no comment on their line or the
    line above."""
    out = []
    for rel, lineno, line in in_functions:
        above = (root / rel).read_text(encoding="utf-8").splitlines()[lineno - 2].strip()
        if "#" not in line and not above.startswith("#"):
            out.append(f"{rel}:{lineno}: {line.strip()}")
    return out


def test_no_import_circle_between_modules():
    edges, _ = import_graph()
    assert cycles(edges) == []


def test_r3v_eval_never_imports_r3v_train():
    edges, _ = import_graph()
    wrong = sorted(f"{m} -> {t}" for m, ts in edges.items() if m.startswith("r3v_eval")
                   for t in ts if t.startswith("r3v_train"))
    assert wrong == []


def test_a_function_level_import_of_the_project_says_why():
    _, in_functions = import_graph()
    assert uncommented(in_functions) == []


def test_the_checks_bite(tmp_path):
    """A circle hidden inside a function, and an uncommented function-level import, are found."""
    pkg = tmp_path / "r3v_train"
    pkg.mkdir()
    (tmp_path / "r3v_eval").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from r3v_train.b import g\n\n\ndef f():\n    return g()\n")
    (pkg / "b.py").write_text("def g():\n    from r3v_train.a import f\n\n    return f\n")
    (pkg / "c.py").write_text("def h():\n    # heavy: only when h runs\n    from r3v_train.b import g\n")
    edges, in_functions = import_graph(tmp_path)
    assert cycles(edges) == [["r3v_train.a", "r3v_train.b"]]
    assert uncommented(in_functions, tmp_path) == ["r3v_train/b.py:2: from r3v_train.a import f"]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_is_too_long_to_read_in_one_go(package):
    long = {p.relative_to(ROOT).as_posix(): n for p in (ROOT / package).rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}
