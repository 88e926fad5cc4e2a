"""The use cases of reservations: hold a cart's stock, then confirm, release or extend it."""

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Final, TypeVar
from uuid import UUID

import attrs

from cme_domain.errors import (
    FieldErrors,
    IdempotentProductDeleted,
    ReservationEnded,
    ReservationExpired,
    ReservationNotFound,
    Shortage,
    ShortOfStock,
    WriteContention,
)
from cme_domain.idempotency import fingerprint, same_request
from cme_domain.ports import Clock, IdempotencyRecord, IdGenerator, UnitOfWork, UnitOfWorkFactory
from cme_domain.principal import WRITE_SCOPE, Principal
from cme_domain.reservation import Reservation, ReservationRequest, ReservationStatus
from cme_domain.stock import RESERVATION, StockChange

_ATTEMPTS: Final = 5  # for a deadlock the database broke (_retried)
T = TypeVar("T")


@attrs.frozen
class Reserve:
    """Hold every line's quantity from what is available, or hold nothing."""

    uow: UnitOfWorkFactory
    clock: Clock
    ids: IdGenerator
    idempotency_ttl: timedelta = timedelta(hours=24)

    async def __call__(
        self, principal: Principal, request: ReservationRequest, idempotency_key: str | None = None
    ) -> tuple[Reservation, bool]:
        """The reservation, and whether it is new (False: an idempotent replay)."""
        principal.require(WRITE_SCOPE)
        return await _retried(lambda: self._hold(principal, request, idempotency_key))

    async def _hold(
        self, principal: Principal, request: ReservationRequest, key: str | None
    ) -> tuple[Reservation, bool]:
        product_ids = sorted(line.product_id for line in request.lines)
        async with self.uow() as uow:
            # Locked first: a retry of the same cart waits here, then finds this one's key.
            await uow.products.lock(product_ids)
            now = self.clock.now()
            digest = fingerprint("reservation", request)
            if key is not None:
                earlier = await uow.idempotency.find(principal.subject, key, now)
                if earlier is not None:
                    same_request(earlier, digest, key)
                    replayed = await uow.reservations.get(UUID(earlier.outcome))
                    if replayed is None:
                        raise IdempotentProductDeleted(key)
                    return replayed, False
            found = await uow.products.get_many(product_ids)
            unknown = FieldErrors()
            for index, line in enumerate(request.lines):
                if line.product_id not in found:
                    unknown.add(f"lines[{index}].product_id", "no product has this id")
            unknown.raise_any()
            shortages = [
                Shortage(line.product_id, line.quantity, found[line.product_id].available)
                for line in request.lines
                if found[line.product_id].available < line.quantity
            ]
            if shortages:
                raise ShortOfStock(shortages)
            reservation = Reservation.hold(self.ids.new_id(), request, now)
            if key is not None:
                record = IdempotencyRecord(
                    principal.subject,
                    key,
                    digest,
                    request.lines[0].product_id,
                    now,
                    now + self.idempotency_ttl,
                    outcome=str(reservation.id),
                )
                await uow.idempotency.add(record)
            await uow.reservations.add(reservation)
            await uow.commit()
        return reservation, True


async def _retried(work: Callable[[], Awaitable[T]]) -> T:
    """Run work again when the database ended it to break a deadlock (WriteContention): it
    wrote nothing of it. Reservations lock products in id order, a batch in sku order."""
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            return await work()
        except WriteContention:
            if attempt == _ATTEMPTS:
                raise
    raise AssertionError("unreachable: the last attempt returns or raises")


@attrs.frozen
class GetReservation:
    uow: UnitOfWorkFactory

    async def __call__(self, reservation_id: UUID) -> Reservation:
        async with self.uow(atomic=False) as uow:
            reservation = await uow.reservations.get(reservation_id)
        if reservation is None:
            raise ReservationNotFound(reservation_id)
        return reservation


async def _locked(
    uow: UnitOfWork, reservation_id: UUID, clock: Clock
) -> tuple[Reservation, datetime, ReservationStatus]:
    """The reservation and its products, locked for the rest of the unit of work; the time
    once they are; the reservation's status then.

    The time is read last: read before a wait for a product's lock, a hold that expired during
    the wait would still pass for held, after a new reservation had taken its units.
    """
    reservation = await uow.reservations.get(reservation_id, lock=True)
    if reservation is None:
        raise ReservationNotFound(reservation_id)
    await uow.products.lock(sorted(line.product_id for line in reservation.lines))
    now = clock.now()
    return reservation, now, reservation.status(now)


@attrs.frozen
class ConfirmReservation:
    """Take the held units for good: each line a stock adjustment, all in one step."""

    uow: UnitOfWorkFactory
    clock: Clock
    ids: IdGenerator

    async def __call__(
        self, principal: Principal, reservation_id: UUID
    ) -> tuple[Reservation, bool]:
        """The reservation, and whether this call confirmed it (False: it already was)."""
        principal.require(WRITE_SCOPE)
        return await _retried(lambda: self._confirm(reservation_id))

    async def _confirm(self, reservation_id: UUID) -> tuple[Reservation, bool]:
        async with self.uow() as uow:
            reservation, now, status = await _locked(uow, reservation_id, self.clock)
            if status is ReservationStatus.CONFIRMED:
                return reservation, False
            if status is ReservationStatus.EXPIRED:
                raise ReservationExpired(reservation_id)
            if status is ReservationStatus.RELEASED:
                raise ReservationEnded(reservation_id, status, "confirmed")
            confirmed = reservation.moved_to(ReservationStatus.CONFIRMED, now)
            # Its holds end first: the units it takes are then the ones it held.
            await uow.reservations.save(confirmed)
            for line in reservation.lines:
                change = StockChange(-line.quantity, RESERVATION, str(reservation_id))
                entry = await uow.products.adjust(
                    line.product_id, change, self.ids.new_id(), now, None, holds_locked=True
                )
                if entry is None:  # held units are always there to take: never, but safe
                    raise WriteContention(line.product_id)
            await uow.commit()
        return confirmed, True


@attrs.frozen
class ReleaseReservation:
    """Give the held units back at once."""

    uow: UnitOfWorkFactory
    clock: Clock

    async def __call__(
        self, principal: Principal, reservation_id: UUID
    ) -> tuple[Reservation, bool]:
        """The reservation, and whether this call released it (False: nothing was held)."""
        principal.require(WRITE_SCOPE)
        return await _retried(lambda: self._release(reservation_id))

    async def _release(self, reservation_id: UUID) -> tuple[Reservation, bool]:
        async with self.uow() as uow:
            reservation, now, status = await _locked(uow, reservation_id, self.clock)
            if status is ReservationStatus.CONFIRMED:
                raise ReservationEnded(reservation_id, status, "released")
            if status is not ReservationStatus.HELD:
                return reservation, False
            released = reservation.moved_to(ReservationStatus.RELEASED, now)
            await uow.reservations.save(released)
            await uow.commit()
        return released, True


@attrs.frozen
class ExtendReservation:
    """A held reservation now expires ttl from now (sooner or later than it did)."""

    uow: UnitOfWorkFactory
    clock: Clock

    async def __call__(
        self, principal: Principal, reservation_id: UUID, ttl: timedelta
    ) -> Reservation:
        principal.require(WRITE_SCOPE)
        return await _retried(lambda: self._extend(reservation_id, ttl))

    async def _extend(self, reservation_id: UUID, ttl: timedelta) -> Reservation:
        async with self.uow() as uow:
            reservation, now, status = await _locked(uow, reservation_id, self.clock)
            if status is ReservationStatus.EXPIRED:
                raise ReservationExpired(reservation_id)
            if status is not ReservationStatus.HELD:
                raise ReservationEnded(reservation_id, status, "extended")
            extended = reservation.extended(ttl, now)
            await uow.reservations.save(extended)
            await uow.commit()
        return extended


@attrs.frozen
class Swept:
    expired: int
    pruned: int
    held_units: int


@attrs.frozen
class SweepReservations:
    """Tidying, never correctness: expired holds are marked so, old ended reservations go."""

    uow: UnitOfWorkFactory
    clock: Clock
    retention: timedelta = timedelta(days=7)

    async def __call__(self) -> Swept:
        now = self.clock.now()
        async with self.uow(atomic=False) as uow:
            expired = await uow.reservations.expire(now)
            pruned = await uow.reservations.prune(now - self.retention)
            held = await uow.reservations.held_units()
        return Swept(expired, pruned, held)
