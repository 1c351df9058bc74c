"""The layers of DESIGN.md, enforced: who may import whom, no cycles, small modules.

Each folder of ``shmkernel/`` is one layer; a module may import its own layer
and the layers `ALLOWED` names for it, nothing else (lazy imports inside
functions count too). ``measure`` holds pure statistics, records and plots,
so it reaches the machines only through the workload layer's set-up; the
kernel code sees only the ``ctx`` door and the layout; ``workloads/`` (the
seeds' scenarios) sit on the kernel. The checker runs on the real tree and,
to show it can fail, on a small fake tree with a forbidden arrow and a cycle.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: layer -> the layers it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "hw": {"errors"},
    "memory": {"errors", "hw"},
    "runtime": {"errors", "hw", "memory"},
    "workload": {"errors", "memory", "runtime"},
    "kernel": {"errors", "memory", "runtime"},
    "schedule": {"errors", "hw", "memory", "runtime", "workload"},
    "litmus": {"errors", "memory", "runtime", "workload", "schedule"},
    "explain": {"errors", "memory", "workload", "schedule", "litmus"},
    "measure": {"errors", "workload"},
    "cli": {"errors", "hw", "memory", "runtime", "workload", "kernel", "schedule", "litmus", "explain", "measure"},
    "facade": {"errors", "memory", "workload", "schedule", "measure"},  # shmkernel.explore, the pytest plugin
    "workloads": {"errors", "memory", "runtime", "workload", "kernel"},
}
FACADES = {"explore", "pytest_plugin"}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "workloads":
        return "workloads"
    if parts[0] != "shmkernel" or len(parts) < 2:
        return None
    return "facade" if parts[1] in FACADES else parts[1]


def module_name(root: Path, path: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, module: str) -> set[str]:
    """Every shmkernel/workloads module ``path`` imports, anywhere in it."""
    out = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import submodule`
    return {m for m in out if m.split(".")[0] in ("shmkernel", "workloads")}


def check_tree(root: Path) -> list[str]:
    """Forbidden arrows and import cycles in the tree under ``root``."""
    files = [p for d in ("shmkernel", "workloads") if (root / d).is_dir() for p in (root / d).rglob("*.py")]
    modules = {module_name(root, p): p for p in files}
    graph: dict[str, set[str]] = {}
    problems = []
    for mod, path in sorted(modules.items()):
        src = layer_of(mod)
        deps = set()
        for target in imports_of(path, mod):
            while target not in modules and "." in target:
                target = target.rpartition(".")[0]  # `from pkg import name`: the module is pkg
            if target in modules and target != mod:
                deps.add(target)
        for target in sorted(deps):
            dst = layer_of(target)
            if src is None or dst is None or dst == src:
                continue
            if dst not in ALLOWED.get(src, set()):
                problems.append(f"{mod} ({src}) imports {target} ({dst})")
        graph[mod] = deps
    problems += [f"import cycle: {' -> '.join(c)}" for c in _cycles(graph)]
    return problems


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module
    (a package importing its own submodules, and they it, is a cycle too)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 and not _package_and_its_children(comp):
                out.append(sorted(comp) + [sorted(comp)[0]])

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _package_and_its_children(comp: list[str]) -> bool:
    """``pkg/__init__`` importing its submodules, which import helpers from ``pkg.x``, is
    how a package exposes its parts; only that shape is exempt."""
    heads = [m for m in comp if all(o == m or o.startswith(m + ".") for o in comp)]
    return bool(heads)


def test_the_tree_keeps_its_layers_and_has_no_cycle():
    assert check_tree(ROOT) == []


def test_the_checker_catches_a_forbidden_arrow_and_a_cycle(tmp_path):
    def write(rel: str, text: str = "") -> None:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    write("shmkernel/__init__.py")
    write("shmkernel/runtime/__init__.py")
    write("shmkernel/runtime/machine.py", "import os\n")
    write("shmkernel/measure/__init__.py")
    write("shmkernel/measure/stats.py", "def f():\n    from shmkernel.runtime.machine import Machine\n")
    write("shmkernel/memory/__init__.py")
    write("shmkernel/memory/a.py", "from shmkernel.memory import b\n")
    write("shmkernel/memory/b.py", "from shmkernel.memory.a import x\n")
    problems = check_tree(tmp_path)
    assert "shmkernel.measure.stats (measure) imports shmkernel.runtime.machine (runtime)" in problems
    assert "import cycle: shmkernel.memory.a -> shmkernel.memory.b -> shmkernel.memory.a" in problems
    assert len(problems) == 2


def _sources() -> list[Path]:
    return sorted((ROOT / "shmkernel").rglob("*.py"))


@pytest.mark.parametrize("path", _sources(), ids=lambda p: os.path.relpath(p, ROOT))
def test_modules_and_functions_stay_small(path):
    text = path.read_text()
    assert text.count("\n") <= MAX_MODULE_LINES, f"{path.name}: {text.count(chr(10))} lines"
    long = [
        f"{n.name} ({n.end_lineno - n.lineno + 1} lines)"
        for n in ast.walk(ast.parse(text))
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
        and n.end_lineno is not None
        and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{path.name}: {', '.join(long)}"
