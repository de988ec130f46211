"""The import graph of `harness/` has no cycle between `harness.env` and `harness.faults`.

`harness.faults` may import `harness.env` (process helpers, the recorded environments' allow-list);
`harness.env` never imports `harness.faults`: what both need (AllowList, RestartRecipe) lives in
`harness.scope`, which imports neither package's faults. Every import counts — top-level, inside a
function, `import x.y`, `from x import y`, relative, and `importlib.import_module("...")` literals.
"""

from __future__ import annotations

import ast
from pathlib import Path

import harness

ROOT = Path(harness.__file__).parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, source: str | None = None) -> set[str]:
    """Every module `path` (or `source` read as that file) imports anywhere, as absolute dotted names."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text() if source is None else source, filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{alias.name}" for alias in node.names)  # `from harness import faults`
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            found.add(str(node.args[0].value))
    return found


def in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def imports_of(package: str) -> dict[str, set[str]]:
    folder = ROOT.parent.joinpath(*package.split("."))
    return {module_name(p): imported_modules(p) for p in sorted(folder.rglob("*.py"))}


def test_env_never_imports_faults() -> None:
    offenders = {mod: sorted(m for m in deps if in_package(m, "harness.faults"))
                 for mod, deps in imports_of("harness.env").items()}
    assert not {k: v for k, v in offenders.items() if v}, "harness.env must not import harness.faults"


def test_shared_module_imports_no_fault() -> None:
    """harness.scope sits below both packages, so it must not import harness.faults either."""
    deps = imported_modules(ROOT / "scope.py")
    assert not [m for m in deps if in_package(m, "harness.faults")]


def test_the_checker_sees_local_and_relative_imports() -> None:
    """The parser itself: function-local, relative and import_module imports of faults are all found."""
    source = ("def f():\n    from harness.faults.process import RestartRecipe\n"
              "def g():\n    from ..faults import base\n"
              "def h():\n    import importlib\n    importlib.import_module('harness.faults.journal')\n")
    deps = imported_modules(ROOT / "env" / "probe.py", source)
    assert {"harness.faults.process", "harness.faults", "harness.faults.base", "harness.faults.journal"} <= deps


def test_faults_still_import_env_only_one_way() -> None:
    """The direction kept: faults may use env (sanity check that the walk sees real imports)."""
    deps = set().union(*imports_of("harness.faults").values())
    assert any(in_package(m, "harness.env") for m in deps)
    assert any(in_package(m, "harness.scope") for m in deps)
