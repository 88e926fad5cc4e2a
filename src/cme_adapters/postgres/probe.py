"""One direct connection attempt, to say why the pool cannot connect (it only times out)."""

import psycopg

from cme_adapters.postgres.database import conninfo
from cme_adapters.postgres.uow import first_line

PROBE_TIMEOUT_SECONDS = 2  # libpq's smallest connect_timeout


async def connection_error(url: str) -> str | None:
    """The server's or the network's reason, in one line; None when a connection succeeds."""
    try:
        connection = await psycopg.AsyncConnection.connect(
            conninfo(url), connect_timeout=PROBE_TIMEOUT_SECONDS
        )
    except psycopg.Error as error:
        return first_line(error)
    await connection.close()
    return None
