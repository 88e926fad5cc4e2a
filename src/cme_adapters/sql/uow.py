"""The SQL unit of work: one connection and one transaction, rolled back unless committed."""

import contextlib
from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cme_adapters.sql.engine import OUTAGE_ERRORS, first_line
from cme_adapters.sql.repository import SqlIdempotencyStore, SqlProductRepository
from cme_domain.errors import StorageUnavailable


class SqlUnitOfWork:
    products: SqlProductRepository
    idempotency: SqlIdempotencyStore

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._connection: AsyncConnection | None = None

    async def __aenter__(self) -> Self:
        # No explicit begin(): the first statement begins the transaction (a separate begin
        # costs SQLAlchemy a greenlet switch per request, and reads run in autocommit anyway).
        try:
            self._connection = await self._engine.connect()
        except OUTAGE_ERRORS as error:
            await self._close()
            raise StorageUnavailable(first_line(error)) from error
        self.products = SqlProductRepository(self._connection)
        self.idempotency = SqlIdempotencyStore(self._connection)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close()
        if isinstance(exc, OUTAGE_ERRORS):
            raise StorageUnavailable(first_line(exc)) from exc

    async def commit(self) -> None:
        assert self._connection is not None
        await self._connection.commit()

    async def _close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            # Closing rolls back whatever was not committed. If the connection is already
            # gone, the pool discards it; there is nothing left to roll back.
            with contextlib.suppress(*OUTAGE_ERRORS):
                await connection.close()
