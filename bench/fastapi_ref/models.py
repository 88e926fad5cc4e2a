"""Pydantic models: what a client may send, and what a product looks like on the wire."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator


class ProductIn(BaseModel):
    """The fields a client chooses on POST and PUT, with the service's rules."""

    model_config = ConfigDict(extra="forbid")

    sku: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: Annotated[str, Field(max_length=4000)] | None = None
    price: Annotated[Decimal, Field(ge=0, lt=10**10, decimal_places=2)]
    quantity: Annotated[StrictInt, Field(ge=0, le=2**31 - 1)]

    @field_validator("name")
    @classmethod
    def name_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @property
    def price_cents(self) -> int:
        return int(self.price * 100)


class ProductOut(BaseModel):
    """A stored product. Pydantic writes price as a string ("19.90") and UTC times with "Z"."""

    id: UUID
    sku: str
    name: str
    description: str | None
    price: Decimal
    quantity: int
    created_at: datetime
    updated_at: datetime
    version: int

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> "ProductOut":
        id_, sku, name, description, cents, quantity, created_at, updated_at, version = row
        return cls(
            id=id_,
            sku=sku,
            name=name,
            description=description,
            price=Decimal(cents).scaleb(-2),  # 1990 -> Decimal("19.90"), 0 -> "0.00"
            quantity=quantity,
            created_at=created_at.astimezone(UTC),
            updated_at=updated_at.astimezone(UTC),
            version=version,
        )


class ProductPage(BaseModel):
    items: list[ProductOut]
    next_cursor: str | None
