"""Faults the harness injects; each is a context manager journalled before it acts (see base.py)."""

from harness.faults.base import AllowList, Fault, FaultSet, FaultState
from harness.faults.container import KillContainer, PauseContainer, RestartContainer, StopContainer
from harness.faults.firewall import PartitionPort
from harness.faults.journal import Journal, recover, recover_leftovers
from harness.faults.network import (
    BandwidthToxic,
    LatencyToxic,
    LimitDataToxic,
    ProxyDown,
    ResetPeerToxic,
    SlicerToxic,
    SlowCloseToxic,
    TimeoutToxic,
    ToxicFault,
)
from harness.faults.process import KillProcess, PauseProcess, RestartRecipe

__all__ = [
    "AllowList",
    "BandwidthToxic",
    "Fault",
    "FaultSet",
    "FaultState",
    "Journal",
    "KillContainer",
    "KillProcess",
    "LatencyToxic",
    "LimitDataToxic",
    "PartitionPort",
    "PauseContainer",
    "PauseProcess",
    "ProxyDown",
    "ResetPeerToxic",
    "RestartContainer",
    "RestartRecipe",
    "SlicerToxic",
    "SlowCloseToxic",
    "StopContainer",
    "TimeoutToxic",
    "ToxicFault",
    "recover",
    "recover_leftovers",
]
