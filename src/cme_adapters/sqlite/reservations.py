"""The reservation repository on SQLAlchemy's engine (the SQLite adapter): a few statements to a
transaction.

Each statement is bound with exactly the parameters it names: SQLAlchemy would read one
named after a column of the table an UPDATE writes as a value to SET.
"""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection

from cme_adapters.sql import reservation_statements as statements
from cme_adapters.sql import stock_statements
from cme_adapters.sql.codecs import line_values, reservation_of, reservation_values, saved_values
from cme_adapters.sqlite.repository import Runner
from cme_domain.ports import Clock
from cme_domain.reservation import Reservation, ReservationStatus


def _only(values: dict[str, Any], *names: str) -> dict[str, Any]:
    return {name: values[name] for name in names}


class SqlReservationRepository:
    def __init__(self, run: Runner, together: Runner, clock: Clock) -> None:
        self._run = run
        self._together = together
        self._clock = clock  # what held_units counts by

    async def add(self, reservation: Reservation) -> None:
        held = {"reservation": reservation.id, "expires_at": reservation.expires_at}

        def add(db: Connection) -> None:
            db.execute(statements.INSERT, reservation_values(reservation))
            db.execute(statements.INSERT_LINE, line_values(reservation))
            db.execute(statements.HOLD_PRODUCTS, held)

        await self._together(add)

    async def get(self, reservation_id: UUID, *, lock: bool = False) -> Reservation | None:
        params = {"reservation": reservation_id}

        def get(db: Connection) -> Reservation | None:
            if lock:
                # The one writer's lock, before the read: what this transaction then writes
                # follows from what it read, as a row lock would ensure on PostgreSQL.
                db.execute(stock_statements.TAKE_WRITE_LOCK)
            return reservation_of(db.execute(statements.GET, params).all())

        return await self._run(get)

    async def save(self, reservation: Reservation) -> None:
        values = saved_values(reservation)

        def save(db: Connection) -> None:
            saved = _only(values, "reservation", "state", "updated_at", "expires_at")
            db.execute(statements.UPDATE, saved)
            db.execute(statements.UPDATE_LINES, _only(values, "reservation", "held_until"))
            if reservation.state is ReservationStatus.HELD:
                held = _only(values, "reservation", "expires_at")
                db.execute(statements.HOLD_PRODUCTS, held)
            else:
                db.execute(statements.LOWER_PRODUCTS, _only(values, "reservation"))

        await self._together(save)

    async def expire(self, now: datetime) -> int:
        def expire(db: Connection) -> int:
            db.execute(statements.EXPIRE_LINES, {"now": now})
            expired: int = db.execute(statements.EXPIRE, {"now": now}).rowcount
            return expired

        return await self._together(expire)

    async def prune(self, before: datetime) -> int:
        def prune(db: Connection) -> int:
            pruned: int = db.execute(statements.PRUNE, {"before": before}).rowcount
            return pruned

        return await self._run(prune)

    async def held_units(self) -> int:
        params = {"now": self._clock.now()}
        units = await self._run(lambda db: db.execute(statements.HELD_UNITS, params).scalar())
        return int(units or 0)
