"""What the in-memory database holds, and how a write records its change event."""

from collections.abc import Callable
from datetime import datetime
from uuid import UUID

import attrs

from cme_adapters.notices import Notices
from cme_domain.changes import Change, ChangeType
from cme_domain.ports import IdempotencyRecord
from cme_domain.product import Product
from cme_domain.reservation import Reservation, ReservationStatus
from cme_domain.stock import StockEntry
from cme_domain.webhook_ports import Delivery
from cme_domain.webhooks import Webhook

# Puts back what a write changed: the unit of work runs them, newest first, on a rollback.
Undo = Callable[[], None]


@attrs.define
class InMemoryStore:
    products: dict[UUID, Product] = attrs.Factory(dict)
    idempotency: dict[tuple[str, str], IdempotencyRecord] = attrs.Factory(dict)
    ledger: dict[UUID, StockEntry] = attrs.Factory(dict)
    reservations: dict[UUID, Reservation] = attrs.Factory(dict)
    webhooks: dict[UUID, Webhook] = attrs.Factory(dict)
    leases: dict[UUID, tuple[str, datetime]] = attrs.Factory(dict)  # owner, until
    deliveries: list[Delivery] = attrs.Factory(list)  # oldest first
    # A list in commit order: a write and its event happen with no await between them.
    changes: list[Change] = attrs.Factory(list)
    last_position: int = 0
    pruned_through: int = 0
    # Every write tells at once; a rolled-back one only wakes readers to find nothing new.
    notices: Notices = attrs.Factory(lambda: Notices(listening=True))

    def record(
        self,
        kind: ChangeType,
        product_id: UUID,
        version: int,
        at: datetime,
        product: Product | None,
    ) -> Undo:
        self.last_position += 1
        self.changes.append(Change(self.last_position, kind, product_id, version, at, product))
        self.notices.notify()

        def undo() -> None:
            self.changes.pop()
            self.last_position -= 1

        return undo

    def held(self, product_id: UUID, now: datetime) -> int:
        """The units the reservations live at `now` hold of the product."""
        return sum(
            line.quantity
            for r in self.reservations.values()
            if r.state is ReservationStatus.HELD and now < r.expires_at
            for line in r.lines
            if line.product_id == product_id
        )
