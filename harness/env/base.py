"""What an environment offers the harness: named services, their endpoints, and fresh copies.

A *service* is something a fault can act on (kill, pause, restart). An *endpoint* is where
clients reach it. Endpoints are separate from services so that a proxy (Toxiproxy) can sit
between them: the app is configured with the proxied endpoint, faults act on the real one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@runtime_checkable
class Service(Protocol):
    """A process-backed service that faults can kill, pause and restart."""

    name: str

    def start(self) -> None: ...
    def kill(self) -> list[int]: ...
    def pause(self) -> list[int]: ...
    def resume(self) -> list[int]: ...
    def running(self) -> bool: ...
