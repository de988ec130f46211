"""Faults the harness injects; each is a context manager journalled before it acts (see base.py)."""

from harness.faults.base import AllowList, Fault, FaultSet, FaultState
from harness.faults.journal import Journal, recover, recover_leftovers
from harness.faults.process import KillProcess, PauseProcess, RestartRecipe

__all__ = [
    "AllowList",
    "Fault",
    "FaultSet",
    "FaultState",
    "Journal",
    "KillProcess",
    "PauseProcess",
    "RestartRecipe",
    "recover",
    "recover_leftovers",
]
