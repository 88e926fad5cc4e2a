"""The API's paths: which ones are the API, and ids in them.

Product and entry ids in paths: a segment that is not a UUID is no id, so a fixed segment
(/products/batch, /products/changes) can never be taken for one, whatever the routes' order."""

from typing import Final
from uuid import UUID

from starlette.convertors import Convertor, register_url_convertor

ID: Final = "canonical_uuid"


class CanonicalUuid(Convertor[UUID]):
    """Only the form the API writes, in either case; UUID() alone also takes {...}, urn:uuid:,
    bare hex and "+"."""

    regex = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

    def convert(self, value: str) -> UUID:
        return UUID(value)

    def to_string(self, value: UUID) -> str:
        return str(value)


register_url_convertor(ID, CanonicalUuid())

PRODUCT_PATH: Final = f"/products/{{id:{ID}}}"
LEDGER_PATH: Final = f"{PRODUCT_PATH}/stock-adjustments"
ENTRY_PATH: Final = f"{LEDGER_PATH}/{{entry_id:{ID}}}"
RESERVATIONS_PATH: Final = "/reservations"
RESERVATION_PATH: Final = f"{RESERVATIONS_PATH}/{{id:{ID}}}"

WEBHOOKS_PATH: Final = "/webhooks"
WEBHOOK_PATH: Final = f"{WEBHOOKS_PATH}/{{id:{ID}}}"

# The resources behind credentials, the rate limits and the schema check; everything else
# (health, metrics, docs) is the service's own. Beside each root: whether reading it needs
# the write scope too (a webhook's targets and log are the operator's), or only the optional
# read scope.
API_ROOTS: Final = {"/products": False, RESERVATIONS_PATH: False, WEBHOOKS_PATH: True}


def api_root(path: str) -> str | None:
    """The API resource a request path names, or None."""
    for root in API_ROOTS:
        if path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
            return root
    return None


def in_api(path: str) -> bool:
    return api_root(path) is not None


def reads_need_write_scope(path: str) -> bool:
    root = api_root(path)
    return root is not None and API_ROOTS[root]
