"""The /products routes: parse the request, call one use case, render the result."""

import re
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

import attrs
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cme_domain.changes import ChangeType
from cme_domain.listing import PAGE_DEFAULT, PAGE_MAX, PAGE_MIN, ProductQuery, SortField, SortOrder
from cme_domain.product import PRICE_TEXT, ProductSpec
from cme_domain.use_cases import (
    CreateProduct,
    DeleteProduct,
    GetProduct,
    ListProducts,
    PatchProduct,
    ReplaceProduct,
)
from cme_entrypoints.http.auth import RequestAuthenticator
from cme_entrypoints.http.body import read_json_object
from cme_entrypoints.http.cursor import BadCursor, CursorCodec
from cme_entrypoints.http.problems import Problem
from cme_entrypoints.http.representation import (
    etag,
    json_response,
    parse_etag_version,
    product_json,
    product_response,
)
from cme_entrypoints.http.routing import PRODUCT_PATH

Endpoint = Callable[[Request], Awaitable[Response]]
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
IDEMPOTENCY_KEY_MAX = 255
_ASCII_INTEGER = re.compile(r"[0-9]{1,6}")


def _uncounted(kind: str) -> None:
    return None


@attrs.frozen
class ProductRoutes:
    authenticate: RequestAuthenticator
    cursors: CursorCodec
    get_product: GetProduct
    list_products: ListProducts
    create_product: CreateProduct
    replace_product: ReplaceProduct
    patch_product: PatchProduct
    delete_product: DeleteProduct
    # Told of each change event committed with a write (the events-written metric).
    changed: Callable[[str], None] = _uncounted

    def routes(self) -> list[Route]:
        return [
            by_method("/products", GET=self.list, POST=self.create),
            by_method(
                PRODUCT_PATH,
                GET=self.get,
                PUT=self.replace,
                PATCH=self.patch,
                DELETE=self.delete,
            ),
        ]

    async def list(self, request: Request) -> Response:
        await self.cursors.ready()
        query = self._query(request)
        page = await self.list_products(query)
        cursor = None
        if page.next is not None:
            cursor = self.cursors.encode(page.next, query.sort, query.order)
        return json_response(
            {"items": [product_json(p) for p in page.items], "next_cursor": cursor}
        )

    async def get(self, request: Request) -> Response:
        product = await self.get_product(product_id_of(request))
        tag = etag(product)
        wanted = _tags(request.headers.get("if-none-match"))
        if tag in wanted or "*" in wanted:
            return Response(status_code=304, headers={"ETag": tag})
        return product_response(product)

    async def create(self, request: Request) -> Response:
        principal = self.authenticate(request)
        spec = ProductSpec.parse(await read_json_object(request, JSON))
        key = idempotency_key(request)
        product, created = await self.create_product(principal, spec, key)
        headers = {"Location": f"/products/{product.id}"}
        if created:
            self.changed(ChangeType.CREATED)
        else:
            headers["Idempotent-Replayed"] = "true"
        return product_response(product, 201, **headers)

    async def replace(self, request: Request) -> Response:
        principal = self.authenticate(request)
        product_id = product_id_of(request)
        spec = ProductSpec.parse(await read_json_object(request, JSON))
        product = await self.replace_product(principal, product_id, spec, if_match(request))
        self.changed(ChangeType.UPDATED)
        return product_response(product)

    async def patch(self, request: Request) -> Response:
        principal = self.authenticate(request)
        product_id = product_id_of(request)
        patch = await read_json_object(request, MERGE_PATCH, JSON)
        # A body that is wrong whatever the version is reported as such, before If-Match.
        ProductSpec.check_patch(patch)
        product = await self.patch_product(principal, product_id, patch, if_match(request))
        self.changed(ChangeType.UPDATED)
        return product_response(product)

    async def delete(self, request: Request) -> Response:
        principal = self.authenticate(request)
        await self.delete_product(principal, product_id_of(request), if_match(request))
        self.changed(ChangeType.DELETED)
        return Response(status_code=204)

    def _query(self, request: Request) -> ProductQuery:
        params = request.query_params
        errors: list[dict[str, str]] = []

        def pick(name: str, parse: Any, default: Any = None) -> Any:
            raw = params.get(name)
            if raw is None:
                return default
            try:
                return parse(raw)
            except (ValueError, InvalidOperation) as exc:
                errors.append({"field": name, "message": str(exc) or "is not valid"})
                return default

        query = ProductQuery(
            limit=pick("limit", page_limit, PAGE_DEFAULT),
            sort=pick("sort", _enum(SortField), SortField.CREATED_AT),
            order=pick("order", _enum(SortOrder), SortOrder.ASC),
            sku=pick("sku", _text(64)),
            name_contains=pick("q", _text(200)),
            min_price=pick("min_price", _price),
            max_price=pick("max_price", _price),
        )
        if errors:
            raise Problem(422, "the query is not valid", slug="validation-error", errors=errors)
        cursor = params.get("cursor")
        if cursor is None:
            return query
        try:
            after = self.cursors.decode(cursor, query.sort, query.order)
        except BadCursor as exc:
            raise Problem(400, str(exc), slug="bad-cursor") from None
        return attrs.evolve(query, after=after)


def by_method(path: str, **endpoints: Endpoint) -> Route:
    """One route per path, so a 405 lists every method the path allows in its Allow header."""

    async def dispatch(request: Request) -> Response:
        return await endpoints[request.method](request)

    if "GET" in endpoints:
        endpoints["HEAD"] = endpoints["GET"]
    return Route(path, dispatch, methods=list(endpoints))


def product_id_of(request: Request) -> UUID:
    product_id: UUID = request.path_params["id"]
    return product_id


def page_limit(raw: str) -> int:
    # ASCII digits only: str.isdigit() and int() also take Arabic-Indic digits and superscripts.
    if not _ASCII_INTEGER.fullmatch(raw) or not PAGE_MIN <= int(raw) <= PAGE_MAX:
        raise ValueError(f"must be an integer from {PAGE_MIN} to {PAGE_MAX}")
    return int(raw)


def _enum(kind: Any) -> Any:
    def parse(raw: str) -> Any:
        try:
            return kind(raw)
        except ValueError:
            raise ValueError(f"must be one of {', '.join(m.value for m in kind)}") from None

    return parse


def _text(longest: int) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if not 1 <= len(raw) <= longest or "\x00" in raw:
            raise ValueError(f"must be 1 to {longest} characters, without U+0000")
        return raw

    return parse


def _price(raw: str) -> Decimal:
    if not PRICE_TEXT.fullmatch(raw):
        raise ValueError("must be written like 19.99: digits, at most 2 decimals, below 10^10")
    return Decimal(raw)


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and not (1 <= len(key) <= IDEMPOTENCY_KEY_MAX and key.isprintable()):
        raise Problem(
            422,
            f"Idempotency-Key must be 1-{IDEMPOTENCY_KEY_MAX} printable characters",
            slug="validation-error",
            errors=[{"field": "Idempotency-Key", "message": "is not valid"}],
        )
    return key


def if_match(request: Request) -> int | None:
    """The version If-Match requires; None when absent or '*'.

    A header that names no version a product can have fails at once, without a database
    round trip: 412, as RFC 9110 says for a condition that cannot be true.
    """
    header = request.headers.get("if-match")
    if header is None or header.strip() == "*":
        return None
    versions = [parse_etag_version(tag) for tag in header.split(",")]
    known = [v for v in versions if v is not None]
    if not known:
        raise Problem(
            412,
            'If-Match names no version of this product; send the ETag as given, like "v3"',
            slug="version-mismatch",
        )
    return known[0]


def _tags(header: str | None) -> list[str]:
    if header is None:
        return []
    return [tag.strip().removeprefix("W/") for tag in header.split(",")]
