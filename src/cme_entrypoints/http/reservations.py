"""The /reservations routes: hold a cart's stock, then confirm, release or extend the hold."""

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

import attrs
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cme_domain.changes import ChangeType
from cme_domain.errors import ShortOfStock
from cme_domain.reservation import Reservation, ReservationRequest, parse_extension
from cme_domain.reservation_use_cases import (
    ConfirmReservation,
    ExtendReservation,
    GetReservation,
    ReleaseReservation,
    Reserve,
)
from cme_entrypoints.http.auth import RequestAuthenticator
from cme_entrypoints.http.body import read_json_object
from cme_entrypoints.http.products import JSON, by_method, idempotency_key
from cme_entrypoints.http.representation import json_response
from cme_entrypoints.http.routing import RESERVATION_PATH, RESERVATIONS_PATH


def reservation_json(reservation: Reservation, now: datetime) -> dict[str, Any]:
    return {
        "id": reservation.id,
        "status": reservation.status(now),
        "lines": [
            {"product_id": line.product_id, "quantity": line.quantity} for line in reservation.lines
        ],
        "reference": reservation.reference,
        "expires_at": reservation.expires_at,
        "created_at": reservation.created_at,
        "updated_at": reservation.updated_at,
    }


@attrs.frozen
class ReservationRoutes:
    authenticate: RequestAuthenticator
    now: Callable[[], datetime]
    reserve: Reserve
    get_reservation: GetReservation
    confirm_reservation: ConfirmReservation
    release_reservation: ReleaseReservation
    extend_reservation: ExtendReservation
    # Reservations by outcome (held, refused, confirmed, released), and change events written.
    counted: Callable[[str], None]
    changed: Callable[[str, int], None]

    def routes(self) -> list[Route]:
        return [
            by_method(RESERVATIONS_PATH, POST=self.create),
            by_method(RESERVATION_PATH, GET=self.get),
            by_method(f"{RESERVATION_PATH}/confirm", POST=self.confirm),
            by_method(f"{RESERVATION_PATH}/release", POST=self.release),
            by_method(f"{RESERVATION_PATH}/extend", POST=self.extend),
        ]

    async def create(self, request: Request) -> Response:
        principal = self.authenticate(request)
        wanted = ReservationRequest.parse(await read_json_object(request, JSON))
        try:
            reservation, new = await self.reserve(principal, wanted, idempotency_key(request))
        except ShortOfStock:
            self.counted("refused")
            raise
        headers = {"Location": f"{RESERVATIONS_PATH}/{reservation.id}"}
        if new:
            self.counted("held")
        else:
            headers["Idempotent-Replayed"] = "true"
        return json_response(reservation_json(reservation, self.now()), 201, headers)

    async def get(self, request: Request) -> Response:
        reservation = await self.get_reservation(_id(request))
        return self._answer(reservation)

    async def confirm(self, request: Request) -> Response:
        principal = self.authenticate(request)
        reservation, confirmed = await self.confirm_reservation(principal, _id(request))
        if confirmed:
            self.counted("confirmed")
            self.changed(ChangeType.STOCK_ADJUSTED, len(reservation.lines))
        return self._answer(reservation)

    async def release(self, request: Request) -> Response:
        principal = self.authenticate(request)
        reservation, released = await self.release_reservation(principal, _id(request))
        if released:
            self.counted("released")
        return self._answer(reservation)

    async def extend(self, request: Request) -> Response:
        principal = self.authenticate(request)
        reservation_id = _id(request)
        ttl = parse_extension(await read_json_object(request, JSON))
        return self._answer(await self.extend_reservation(principal, reservation_id, ttl))

    def _answer(self, reservation: Reservation) -> Response:
        return json_response(reservation_json(reservation, self.now()))


def _id(request: Request) -> UUID:
    reservation_id: UUID = request.path_params["id"]
    return reservation_id
