"""The public surface is deliberate: __all__ matches the public names, and no harness import."""

from __future__ import annotations

import ast
import types
from pathlib import Path

import resilience

ROOT = Path(resilience.__file__).parent


def test_all_matches_public_names():
    public = {
        name for name, value in vars(resilience).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert sorted(resilience.__all__) == resilience.__all__, "__all__ must be sorted"
    assert set(resilience.__all__) == public


def test_every_exported_name_resolves():
    for name in resilience.__all__:
        assert getattr(resilience, name) is not None


def test_resilience_never_imports_harness():
    offenders = []
    for path in ROOT.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] == "harness"]
    assert offenders == []


def test_error_tree():
    from resilience.errors import (
        BackupError,
        CircuitOpenError,
        HealthCheckFailed,
        RecoveryExhausted,
        ResilienceError,
    )

    for cls in (CircuitOpenError, RecoveryExhausted, HealthCheckFailed, BackupError):
        assert issubclass(cls, ResilienceError) and cls.__doc__
    err = RecoveryExhausted("db", 3, ValueError("x"))
    assert "after 3 attempt(s)" in str(err) and err.last_error.args == ("x",)
    assert "unhealthy" in str(HealthCheckFailed("pg"))
