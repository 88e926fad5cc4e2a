"""The webhook endpoints' statements, built once with SQLAlchemy Core for both drivers.

Each is one statement, so the lease's conditions and its writes are one atomic step on either
database: whoever's UPDATE matched holds it. Parameters never share a name with a column of
the table an UPDATE writes (SQLAlchemy would take such a parameter as a value to SET).
"""

from typing import Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    Integer,
    and_,
    bindparam,
    case,
    delete,
    insert,
    literal_column,
    null,
    or_,
    select,
    update,
)

from cme_adapters.sql.column_types import UtcDateTime
from cme_adapters.sql.schema import webhook_deliveries, webhooks
from cme_domain.webhooks import WEBHOOKS_MAX, WebhookStatus

_w = webhooks.c
_d = webhook_deliveries.c
_HOOK: Final = bindparam("hook", type_=_w.id.type)
_OWNER: Final = bindparam("owner", type_=_w.lease_owner.type)
_NOW: Final = bindparam("now", type_=UtcDateTime)
_UNTIL: Final = bindparam("until", type_=UtcDateTime)
_ACTIVE: Final = literal_column(f"'{WebhookStatus.ACTIVE.value}'", _w.status.type)
_DISABLED: Final = literal_column(f"'{WebhookStatus.DISABLED.value}'", _w.status.type)
_NO_FAILURES: Final = {
    "attempts": literal_column("0", Integer),
    "failing_since": null(),
    "next_attempt_at": null(),
}
SETTINGS: Final = ("url", "events", "description", "status", "secret", "updated_at")

INSERT: Final = insert(webhooks).values({c.name: bindparam(c.name, type_=c.type) for c in _w})
GET: Final = select(*_w).where(_w.id == _HOOK)
LIST: Final = select(*_w).order_by(_w.created_at, _w.id)
IDS: Final = select(_w.id)
SAVE: Final = (
    update(webhooks)
    .where(_w.id == _HOOK)
    .values({name: bindparam(f"new_{name}", type_=_w[name].type) for name in SETTINGS})
)
SAVE_RESUMED: Final = SAVE.values(_NO_FAILURES)
DELETE: Final = delete(webhooks).where(_w.id == _HOOK)

_free: Final = or_(_w.lease_until.is_(None), _w.lease_until <= _NOW)
_ready: Final = and_(
    _w.status == _ACTIVE, or_(_w.next_attempt_at.is_(None), _w.next_attempt_at <= _NOW)
)
DUE: Final = (
    select(_w.id)
    .where(_ready, _free, _w.position < bindparam("end", type_=BigInteger))
    .order_by(_w.next_attempt_at, _w.created_at)
    .limit(literal_column(str(WEBHOOKS_MAX)))
)
CLAIM: Final = (
    update(webhooks)
    .where(_w.id == _HOOK, _ready, or_(_free, _w.lease_owner == _OWNER))
    .values(lease_owner=_OWNER, lease_until=_UNTIL)
    .returning(*_w)
)
_held: Final = and_(_w.id == _HOOK, _w.lease_owner == _OWNER)
ADVANCE: Final = (
    update(webhooks)
    .where(_held, _w.status == _ACTIVE)
    .values(position=bindparam("to_position", type_=BigInteger), lease_until=_UNTIL)
    .values(_NO_FAILURES)
    .returning(*_w)
)
FAILED: Final = (
    update(webhooks)
    .where(_held)
    .values(
        attempts=bindparam("new_attempts", type_=Integer),
        failing_since=bindparam("new_failing_since", type_=UtcDateTime),
        next_attempt_at=bindparam("new_next_attempt_at", type_=UtcDateTime),
        status=case((bindparam("disable", type_=Boolean), _DISABLED), else_=_w.status),
        lease_owner=null(),
        lease_until=null(),
    )
)
RELEASE: Final = update(webhooks).where(_held).values(lease_owner=null(), lease_until=null())

# Nothing is logged for an endpoint deleted while its attempt was in flight.
RECORD: Final = insert(webhook_deliveries).from_select(
    ["webhook_id", "sequence", "message_id", "attempted_at", "status_code", "error", "duration_us"],
    select(
        _w.id,
        bindparam("event", type_=BigInteger),
        bindparam("message", type_=_d.message_id.type),
        bindparam("at", type_=UtcDateTime),
        bindparam("code", type_=_d.status_code.type),
        bindparam("failure", type_=_d.error.type),
        bindparam("micros", type_=Integer),
    ).where(_w.id == _HOOK),
)
DELIVERIES: Final = (
    select(_d.webhook_id, *[_d[n] for n in ("sequence", "message_id", "attempted_at")])
    .add_columns(_d.status_code, _d.error, _d.duration_us)
    .where(_d.webhook_id == _HOOK)
    .order_by(_d.id.desc())
    .limit(bindparam("limit"))
)
TRIM_OLD: Final = delete(webhook_deliveries).where(
    _d.attempted_at < bindparam("before", type_=UtcDateTime)
)
# All but the endpoint's newest `keep`: below the id of its keep-th newest.
_cutoff: Final = (
    select(_d.id)
    .where(_d.webhook_id == _HOOK)
    .order_by(_d.id.desc())
    .offset(bindparam("keep"))
    .limit(literal_column("1"))
    .scalar_subquery()
)
TRIM_EXCESS: Final = delete(webhook_deliveries).where(_d.webhook_id == _HOOK, _d.id <= _cutoff)

# PostgreSQL's acknowledgement in one round trip: the attempt logged (whoever holds the
# lease) and the position moved, as ADVANCE does.
ACKNOWLEDGED: Final = ADVANCE.add_cte(RECORD.returning(_d.id).cte("logged"))
