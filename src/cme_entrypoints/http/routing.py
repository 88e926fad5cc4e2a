"""A route that owns its whole path, so a fixed segment is never taken for a product id."""

from starlette.exceptions import HTTPException
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send


class PathOwningRoute(Route):
    """A route that answers every method on its path: 405 for the ones it lacks, rather than
    letting a later pattern (/products/{id} for GET /products/batch) claim the request."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        return (Match.FULL if match is Match.PARTIAL else match), child

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Starlette joins its method set as it iterates: sorted, Allow is the same every time.
        if self.methods and scope["method"] not in self.methods:
            raise HTTPException(405, headers={"Allow": ", ".join(sorted(self.methods))})
        await super().handle(scope, receive, send)
