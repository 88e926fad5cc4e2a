"""The reservation repository on psycopg: each write one statement (reservation_statements.py)."""

from datetime import datetime
from typing import Final
from uuid import UUID

from cme_adapters.postgres.compiled import compiled
from cme_adapters.postgres.repository import Session
from cme_adapters.sql import reservation_statements as statements
from cme_adapters.sql.codecs import reservation_of, reservation_values, saved_values
from cme_domain.ports import Clock
from cme_domain.reservation import Reservation, ReservationStatus

_ADD: Final = compiled(statements.ADD)
_GET: Final = compiled(statements.GET)
_GET_FOR_UPDATE: Final = compiled(statements.GET_FOR_UPDATE)
_SAVE_HELD: Final = compiled(statements.SAVE_HELD)
_SAVE_ENDED: Final = compiled(statements.SAVE_ENDED)
_EXPIRED: Final = compiled(statements.EXPIRED)
_PRUNE: Final = compiled(statements.PRUNE)
_HELD_UNITS: Final = compiled(statements.HELD_UNITS)


class PostgresReservationRepository:
    def __init__(self, session: Session, clock: Clock) -> None:
        self._session = session
        self._clock = clock  # what held_units counts by

    async def add(self, reservation: Reservation) -> None:
        params = {
            **reservation_values(reservation),
            "product_ids": [line.product_id for line in reservation.lines],
            "quantities": [line.quantity for line in reservation.lines],
        }
        await self._session.execute(_ADD, params)

    async def get(self, reservation_id: UUID, *, lock: bool = False) -> Reservation | None:
        sql = _GET_FOR_UPDATE if lock else _GET
        return reservation_of(await self._session.fetch_all(sql, {"reservation": reservation_id}))

    async def save(self, reservation: Reservation) -> None:
        sql = _SAVE_HELD if reservation.state is ReservationStatus.HELD else _SAVE_ENDED
        await self._session.execute(sql, saved_values(reservation))

    async def expire(self, now: datetime) -> int:
        row = await self._session.fetch_one(_EXPIRED, {"now": now}, writes=True)
        return 0 if row is None else int(row[0])

    async def prune(self, before: datetime) -> int:
        return await self._session.execute(_PRUNE, {"before": before})

    async def held_units(self) -> int:
        params = {"now": self._clock.now()}
        row = await self._session.fetch_one(_HELD_UNITS, params, writes=False)
        return 0 if row is None else int(row[0])
