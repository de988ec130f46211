"""Toxiproxy: a client for any Toxiproxy 2.x API and an embedded, compatible server.

client.py    ToxiproxyClient / AsyncToxiproxyClient (httpx), errors mapped at one boundary
server.py    ToxiproxyServer (asyncio), ThreadedToxiproxyServer, serve()
api.py       the HTTP/1.1 API handler (routes, status codes, Go-compatible error bodies)
pipeline.py  Link, ToxicStub, Channel: the noop-first chain of stream filters
toxics.py    one stream filter per toxic type + registry
"""

from harness.toxiproxy.client import AsyncToxiproxyClient, ToxiproxyClient
from harness.toxiproxy.errors import (
    AlreadyExists,
    BadRequest,
    ProxyNotFound,
    ToxicNotFound,
    ToxiproxyError,
    ToxiproxyServerError,
    ToxiproxyUnreachable,
)
from harness.toxiproxy.models import Proxy, Toxic
from harness.toxiproxy.server import ThreadedToxiproxyServer, ToxiproxyServer, serve

__all__ = [
    "AlreadyExists",
    "AsyncToxiproxyClient",
    "BadRequest",
    "Proxy",
    "ProxyNotFound",
    "ThreadedToxiproxyServer",
    "Toxic",
    "ToxicNotFound",
    "ToxiproxyClient",
    "ToxiproxyError",
    "ToxiproxyServer",
    "ToxiproxyServerError",
    "ToxiproxyUnreachable",
    "serve",
]
