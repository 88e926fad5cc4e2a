"""The in-memory reservations: every write undoable, as the products' are."""

from datetime import datetime
from uuid import UUID

import attrs

from cme_adapters.memory.store import InMemoryStore, Undo
from cme_domain.ports import Clock
from cme_domain.reservation import Reservation, ReservationStatus


@attrs.define
class InMemoryReservationRepository:
    store: InMemoryStore
    undo: list[Undo]
    clock: Clock

    async def add(self, reservation: Reservation) -> None:
        self.store.reservations[reservation.id] = reservation
        self.undo.append(lambda: self.store.reservations.__delitem__(reservation.id))

    async def get(self, reservation_id: UUID, *, lock: bool = False) -> Reservation | None:
        return self.store.reservations.get(reservation_id)

    async def save(self, reservation: Reservation) -> None:
        earlier = self.store.reservations[reservation.id]
        self.store.reservations[reservation.id] = reservation
        self.undo.append(lambda: self.store.reservations.__setitem__(reservation.id, earlier))

    async def expire(self, now: datetime) -> int:
        ran_out = [
            r
            for r in self.store.reservations.values()
            if r.state is ReservationStatus.HELD and r.expires_at <= now
        ]
        for r in ran_out:
            await self.save(r.moved_to(ReservationStatus.EXPIRED, now))
        return len(ran_out)

    async def prune(self, before: datetime) -> int:
        ended = [
            r.id
            for r in self.store.reservations.values()
            if r.state is not ReservationStatus.HELD and r.updated_at < before
        ]
        for reservation_id in ended:
            del self.store.reservations[reservation_id]
        return len(ended)

    async def held_units(self) -> int:
        now = self.clock.now()
        return sum(
            r.units
            for r in self.store.reservations.values()
            if r.state is ReservationStatus.HELD and now < r.expires_at
        )
