"""The embedded Toxiproxy-compatible server: in-process (async), in a thread (sync), or as a CLI.

    ToxiproxyServer          async start()/stop(), .url — inside your own event loop
    ThreadedToxiproxyServer  .start()/.stop(), context manager — a private uvloop in a thread
    serve(...)               blocks until SIGINT/SIGTERM — `chaosdrill toxiproxy`

Loopback by default: the API binds 127.0.0.1 unless told otherwise, and proxies with an empty
listen host bind 127.0.0.1 too (real Toxiproxy would bind every interface there).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import threading
from pathlib import Path

from harness.errors import ConfigError, EnvironmentStartError
from harness.toxiproxy.api import LINE_LIMIT, ApiHandler
from harness.toxiproxy.metrics import ProxyMetrics
from harness.toxiproxy.proxy import ApiError, ProxyCollection, bind_listener

__all__ = ["ThreadedToxiproxyServer", "ToxiproxyServer", "serve"]

log = logging.getLogger(__name__)


def raise_fd_limit() -> int:
    """Raise the soft descriptor limit to the hard one, as Go's runtime does at start-up.

    Every proxied connection holds two descriptors; with the common soft limit of 1024, ~500
    concurrent connections exhaust it, and the proxy's connect to the upstream fails (EMFILE) so
    the client's connection has to be closed (a reset, as it still holds unread data). Returns
    the soft limit now in force.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Linux/macOS
        return -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            return hard
        except (ValueError, OSError):
            pass
    return soft


class ToxiproxyServer:
    """The API plus every proxy it manages, on the running event loop."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8474,
        metrics: bool = False,
        config_path: str | Path | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.config_path = config_path
        self.metrics = ProxyMetrics() if metrics else None
        self.collection: ProxyCollection | None = None
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[asyncio.Task] = set()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Bind the API (port 0 picks a free one) and load `config_path` if given."""
        limit = raise_fd_limit()
        if 0 < limit < 4096:
            log.warning("toxiproxy: descriptor limit %d allows only ~%d concurrent connections", limit, limit // 2)
        self.collection = ProxyCollection(self.metrics)
        api = ApiHandler(self.collection, self.metrics)
        try:
            sock, resolved = await bind_listener(
                f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
            )
        except ApiError as exc:
            raise EnvironmentStartError(exc.message) from None

        async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            if task is not None:
                self._conns.add(task)
            try:
                await api.serve_connection(reader, writer)
            except asyncio.CancelledError:
                pass  # server stopping
            finally:
                if task is not None:
                    self._conns.discard(task)

        # backlog: asyncio would listen() again with 100, whatever bind_listener asked for
        self._server = await asyncio.start_server(
            on_connection, sock=sock, limit=LINE_LIMIT, backlog=socket.SOMAXCONN
        )
        self.port = int(resolved.rpartition(":")[2])
        if self.config_path is not None:
            await self.load_config(self.config_path)

    async def load_config(self, path: str | Path) -> None:
        """Populate from a JSON file in /populate's format; a bad file is a one-line ConfigError."""
        assert self.collection is not None
        try:
            body = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"toxiproxy config {path}: {exc.strerror}") from None
        try:
            async with self.collection.lock:
                proxies = await self.collection.populate_json(body)
        except ApiError as exc:
            raise ConfigError(f"toxiproxy config {path}: {exc.message}") from None
        log.info("populated %d proxies from %s", len(proxies), path)

    async def stop(self) -> None:
        """Close the API, every proxy listener and every proxied connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._conns):
            task.cancel()
        if self.collection is not None:
            await self.collection.close()

    async def __aenter__(self) -> ToxiproxyServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency; plain asyncio still works
        return asyncio.new_event_loop()


class ThreadedToxiproxyServer:
    """A ToxiproxyServer on its own uvloop in a daemon thread, for synchronous code and tests."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        metrics: bool = False,
        config_path: str | Path | None = None,
    ):
        self.server = ToxiproxyServer(host, port, metrics, config_path)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    def start(self) -> ThreadedToxiproxyServer:
        if self._thread is not None:
            raise RuntimeError("ThreadedToxiproxyServer already started")
        loop = self._loop = _new_loop()
        ready = threading.Event()
        error: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)

            async def boot() -> None:
                try:
                    await self.server.start()
                except BaseException as exc:  # reported to start()'s caller
                    error.append(exc)
                finally:
                    ready.set()

            loop.run_until_complete(boot())
            if not error:
                loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="toxiproxy-server", daemon=True)
        self._thread.start()
        ready.wait()
        if error:
            self._thread.join()
            raise error[0]
        return self

    def call(self, coro, timeout: float = 10.0):  # type: ignore[no-untyped-def]
        """Run a coroutine on the server's loop and wait for its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        with contextlib.suppress(Exception):
            self.call(self.server.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None

    def __enter__(self) -> ThreadedToxiproxyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(
    host: str = "127.0.0.1", port: int = 8474, config_path: str | Path | None = None, metrics: bool = False
) -> None:
    """Run the server until SIGINT or SIGTERM (the `chaosdrill toxiproxy` command)."""

    async def main() -> None:
        server = ToxiproxyServer(host, port, metrics, config_path)
        await server.start()
        log.info("toxiproxy API listening on %s", server.url)
        # Everything loaded so far lives as long as the server: keep it out of the collector's
        # scans, so a full collection during traffic costs µs rather than ms of tail latency.
        gc.collect()
        gc.freeze()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await server.stop()

    loop = _new_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
