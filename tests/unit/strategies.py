"""Hypothesis strategies for product fields, and the fake clock and id generator of unit tests."""

import itertools
import string
import unicodedata
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final
from uuid import UUID

from hypothesis import strategies as st

from cme_domain.product import EDITABLE_FIELDS, ProductSpec

SKU_ALPHABET: Final = string.ascii_letters + string.digits + "._-"
# Every character Python's str.strip() removes: a name made only of these is blank.
WHITESPACE: Final = "".join(c for c in map(chr, range(0x3001)) if c.isspace())
T0: Final = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
MISSING: Final = object()


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime = T0) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


class FakeIds:
    """Hands out the given ids in order, or 1, 2, 3, ... as UUIDs."""

    def __init__(self, ids: Iterable[UUID] | None = None) -> None:
        self._ids: Iterator[UUID] = (
            iter(ids) if ids is not None else (UUID(int=n) for n in itertools.count(1))
        )

    def new_id(self) -> UUID:
        return next(self._ids)


# What shows when printed: a name needs one such character (README: blank names).
_INVISIBLE: Final = frozenset({"Cf", "Cc"})


_FILLERS: Final = "\u115f\u1160\u3164\uffa0\u2800"


def _visible(char: str) -> bool:
    return not (char.isspace() or unicodedata.category(char) in _INVISIBLE or char in _FILLERS)


# Products may hold any text but U+0000, which PostgreSQL refuses.
_text_chars = st.characters(codec="utf-8", exclude_characters="\x00")
skus = st.text(SKU_ALPHABET, min_size=1, max_size=64)
names = st.one_of(
    st.text(_text_chars, min_size=1, max_size=40).filter(lambda s: any(map(_visible, s))),
    st.integers(1, 200).map(lambda n: " Nn\t" * (n // 4) + "n" * (n % 4)),
)
descriptions = st.one_of(
    st.text(_text_chars, max_size=40), st.integers(3990, 4000).map(lambda n: "d" * n), st.just("")
)
quantities = st.one_of(st.integers(0, 2**31 - 1), st.sampled_from([0, 1, 2**31 - 1]))


@st.composite
def quantity_spellings(draw: st.DrawFn) -> tuple[Any, int]:
    """A valid quantity as an int or an integral JSON number (decoded as Decimal), and its value."""
    value = draw(quantities)
    return draw(st.sampled_from([value, Decimal(value), Decimal(f"{value}.0")])), value


@st.composite
def prices(draw: st.DrawFn) -> tuple[Any, Decimal]:
    """A valid price in one of its accepted spellings, and the value it must parse to."""
    cents = draw(st.one_of(st.integers(0, 10**12 - 1), st.sampled_from([0, 1, 99, 10**12 - 1])))
    expected = Decimal(cents).scaleb(-2)
    spellings: list[Any] = [str(expected), expected]
    if cents % 10 == 0:
        spellings.append(str(expected)[:-1])
    if cents % 100 == 0:
        whole = cents // 100
        spellings += [whole, str(whole), Decimal(whole)]
    if cents % 1000 == 0:
        spellings.append(Decimal(cents // 1000).scaleb(1))  # a positive exponent: 5E+1
    if cents == 0:
        spellings += [Decimal("-0"), Decimal("-0.00")]
    return draw(st.sampled_from(spellings)), expected


@st.composite
def raw_products(draw: st.DrawFn) -> tuple[dict[str, Any], ProductSpec]:
    """Valid raw fields as decoded from JSON, and the spec they must parse to."""
    price, expected_price = draw(prices())
    quantity, expected_quantity = draw(quantity_spellings())
    raw: dict[str, Any] = {
        "sku": draw(skus),
        "name": draw(names),
        "price": price,
        "quantity": quantity,
    }
    description = draw(st.one_of(st.just(MISSING), st.none(), descriptions))
    if description is not MISSING:
        raw["description"] = description
    expected = ProductSpec(
        raw["sku"],
        raw["name"],
        None if description is MISSING else description,
        expected_price,
        expected_quantity,
    )
    return raw, expected


specs = raw_products().map(lambda pair: ProductSpec.parse(pair[0]))


def _decimal_spellings(value: Decimal) -> st.SearchStrategy[Any]:
    return st.sampled_from([str(value), value])


_outside_sku_alphabet = st.characters(exclude_characters=SKU_ALPHABET, exclude_categories=["Cs"])
_not_strings = st.sampled_from([None, 0, 123, 1.5, True, b"AB", ["AB"], {"a": 1}])

INVALID: Final[dict[str, st.SearchStrategy[Any]]] = {
    "sku": st.one_of(
        st.sampled_from(["", "A" * 65, "AB C", " AB", "AB\n", "\u00c4BC", "caf\u00e9", "a/b"]),
        st.text(SKU_ALPHABET, min_size=65, max_size=100),
        st.tuples(
            st.text(SKU_ALPHABET, max_size=30), _outside_sku_alphabet, st.text(max_size=30)
        ).map("".join),
        _not_strings.filter(lambda v: v is not None),
        st.none(),
    ),
    "name": st.one_of(
        st.sampled_from(["", " ", "\t\n", "\u3000", "n" * 201, "\x00", "Desk\x00lamp"]),
        # Zero-width and format characters, fillers, and lone surrogates (JSON allows "\ud800").
        st.sampled_from(["\u200b", "\u200b\u200d\ufeff\u2060", "\u3164", "\u00ad", "\x1b"]),
        st.sampled_from(["\ud800", "Desk\udfff lamp", "\udc00\ud800"]),
        st.text(WHITESPACE, max_size=30),
        st.integers(201, 260).map(lambda n: "n" * n),
        _not_strings,
    ),
    "description": st.one_of(
        st.integers(4001, 4100).map(lambda n: "d" * n),
        st.tuples(st.text(max_size=20), st.text(max_size=20)).map("\x00".join),
        st.tuples(st.text(max_size=20), st.text(max_size=20)).map("\ud800".join),
        _not_strings.filter(lambda v: v is not None),
    ),
    "price": st.one_of(
        st.sampled_from(
            [
                "-0.01",
                -1,
                Decimal("-1"),
                "10000000000",
                10**10,
                Decimal("1E10"),
                "9999999999.999",
                "1.234",
                Decimal("0.001"),
                "NaN",
                Decimal("NaN"),
                Decimal("sNaN"),
                "Infinity",
                "inf",
                Decimal("Infinity"),
                Decimal("-Infinity"),
                1.5,
                0.0,
                19.99,
                True,
                False,
                "1_000",
                " 1",
                "1 ",
                "abc",
                "",
                "1e3",
                ".5",
                "5.",
                "+1",
                "01",
                "007.50",
                None,
                ["1"],
            ]
        ),
        st.integers(-(10**12), -1).map(lambda c: Decimal(c).scaleb(-2)).flatmap(_decimal_spellings),
        st.integers(10**12, 10**15)
        .map(lambda c: Decimal(c).scaleb(-2))
        .flatmap(_decimal_spellings),
        st.integers(0, 10**13 - 1)
        .filter(lambda m: m % 10 != 0)
        .map(lambda m: Decimal(m).scaleb(-3))
        .flatmap(_decimal_spellings),
        st.integers(-(10**12), -1),
        st.integers(min_value=10**10),
        st.floats(),
    ),
    "quantity": st.one_of(
        st.integers(max_value=-1),
        st.integers(min_value=2**31),
        st.booleans(),
        st.floats(),
        st.integers(0, 100).map(str),
        st.integers(0, 1000).filter(lambda n: n % 10 != 0).map(lambda n: Decimal(n).scaleb(-1)),
        st.sampled_from(
            [None, "3", "3.0", 3.0, 3.5, [3], Decimal("3.5"), Decimal("-1"), Decimal(2**31)]
        ),
        st.sampled_from([Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity")]),
    ),
}

unknown_fields = st.one_of(
    st.sampled_from(["id", "version", "created_at", "updated_at", "Sku", "price_cents"]),
    st.text(max_size=20),
).filter(lambda key: key not in EDITABLE_FIELDS)
