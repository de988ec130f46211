"""A restartable asyncpg pool: the thing ``database_connection`` recovery restarts.

After a PostgreSQL restart every pooled connection is dead; asyncpg notices only when a
query fails. ``restart()`` throws the old pool away (terminate: no goodbye to a server
that may be gone) and builds a new one; ``validate()`` runs the test queries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from resilience.recovery import RecoveryStrategy, database_connection

__all__ = ["AsyncpgPool"]

log = logging.getLogger(__name__)


class AsyncpgPool:
    """Holds the current ``asyncpg.Pool``; every connect and query is bounded by ``timeout``."""

    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 1.0,
                 test_queries: tuple[str, ...] = ("SELECT 1",), **pool_kwargs: Any) -> None:
        self.dsn = dsn
        self.timeout = timeout
        self.test_queries = test_queries
        self._kwargs = dict(min_size=min_size, max_size=max_size, timeout=timeout, command_timeout=timeout,
                            **pool_kwargs)
        self._pool = None
        self.restarts = 0

    @property
    def pool(self):
        if self._pool is None:
            raise RuntimeError("AsyncpgPool is not started: await start() first")
        return self._pool

    async def start(self) -> None:
        import asyncpg

        self._pool = await asyncio.wait_for(asyncpg.create_pool(self.dsn, **self._kwargs), self.timeout * 2)

    async def restart(self) -> None:
        old, self._pool = self._pool, None
        if old is not None:
            with contextlib.suppress(Exception):
                old.terminate()
        await self.start()
        self.restarts += 1

    async def validate(self) -> None:
        async with self.pool.acquire(timeout=self.timeout) as conn:
            for query in self.test_queries:
                await conn.fetchval(query, timeout=self.timeout)

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self.pool.fetchval(query, *args, timeout=self.timeout)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), self.timeout)
            except Exception:
                pool.terminate()

    def strategy(self, **kwargs: Any) -> RecoveryStrategy:
        """The seed's ``database_connection`` strategy bound to this pool."""
        return database_connection(restart=self.restart, validate=self.validate, **kwargs)
