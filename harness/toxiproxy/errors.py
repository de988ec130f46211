"""One exception tree for everything that can go wrong talking to a Toxiproxy API.

    ToxiproxyError                 any failure; `.status` and `.message` carry the server's answer
    ├── ToxiproxyUnreachable       no HTTP answer at all: refused, reset, timed out
    ├── BadRequest (400)           bad JSON, wrong type, missing field, invalid toxic type or stream
    ├── ProxyNotFound (404)        "proxy not found"
    ├── ToxicNotFound (404)        "toxic not found"
    ├── AlreadyExists (409)        "proxy already exists" / "toxic already exists"
    └── ToxiproxyServerError (5xx) listen errors and anything else the server failed at

httpx errors and HTTP status codes are mapped to this tree in one place (`client._raise_for`),
so callers never see httpx types (one boundary that translates foreign errors, as httpx itself does).
"""

from __future__ import annotations

from typing import Any

from harness.errors import HarnessError


class ToxiproxyError(HarnessError):
    """A Toxiproxy API call failed; `message` is the server's error text, verbatim."""

    def __init__(self, message: str, status: int | None = None, *, body: Any = None) -> None:
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.message = message
        self.status = status
        self.body = body
        # /populate errors also list the proxies created before the failure.
        self.proxies: list[Any] = []


class ToxiproxyUnreachable(ToxiproxyError):
    """The server gave no HTTP answer (connection refused, reset or timed out); may be retried."""

    retryable = True


class BadRequest(ToxiproxyError):
    """400: the request body or a field was rejected."""


class ProxyNotFound(ToxiproxyError):
    """404: no proxy has that name."""


class ToxicNotFound(ToxiproxyError):
    """404: the proxy has no toxic of that name."""


class AlreadyExists(ToxiproxyError):
    """409: a proxy or toxic with that name already exists."""


class ToxiproxyServerError(ToxiproxyError):
    """5xx (or any unexpected status): e.g. `listen tcp ...: bind: address already in use`."""
