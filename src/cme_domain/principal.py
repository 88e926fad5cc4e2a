"""Who is calling, as established by an authentication adapter, and what they may do."""

from typing import Final

import attrs

from cme_domain.errors import DomainError

READ_SCOPE: Final = "products:read"
WRITE_SCOPE: Final = "products:write"


class MissingScope(DomainError):
    def __init__(self, scope: str) -> None:
        super().__init__(f"this action needs the {scope!r} scope")
        self.scope = scope


@attrs.frozen
class Principal:
    subject: str
    scopes: frozenset[str]

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise MissingScope(scope)
