"""Property tests of the invariants ProductSpec.parse and ProductSpec.merged enforce."""

import subprocess
import sys
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cme_domain.errors import FieldError, InvalidProduct
from cme_domain.product import EDITABLE_FIELDS, ProductSpec

from .strategies import INVALID, raw_products, specs, unknown_fields

REQUIRED = ("sku", "name", "price", "quantity")
FAST = settings(max_examples=100, deadline=None)


def errors_of(raw: dict[str, Any]) -> list[FieldError]:
    with pytest.raises(InvalidProduct) as caught:
        ProductSpec.parse(raw)
    return list(caught.value.errors)


def merge_errors_of(spec: ProductSpec, patch: dict[str, Any]) -> list[FieldError]:
    with pytest.raises(InvalidProduct) as caught:
        spec.merged(patch)
    return list(caught.value.errors)


@st.composite
def one_bad_field(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    raw, _ = draw(raw_products())
    field = draw(st.sampled_from(EDITABLE_FIELDS))
    return {**raw, field: draw(INVALID[field])}, field


@FAST
@given(raw_products())
def test_any_valid_product_parses_to_the_same_values_with_the_price_in_cents(
    pair: tuple[dict[str, Any], ProductSpec],
) -> None:
    raw, expected = pair
    spec = ProductSpec.parse(raw)
    assert spec == expected
    assert str(spec.price) == str(expected.price)
    assert spec.price.as_tuple().exponent == -2
    assert type(spec.quantity) is int


@pytest.mark.parametrize(
    ("price", "rendered"),
    [
        ("19.9", "19.90"),
        ("19.99", "19.99"),
        (0, "0.00"),
        ("0", "0.00"),
        ("0.5", "0.50"),
        (Decimal("1E+2"), "100.00"),
        (12, "12.00"),
        ("9999999999.99", "9999999999.99"),
        (9999999999, "9999999999.00"),
    ],
)
def test_prices_are_quantized_to_exactly_two_places(price: Any, rendered: str) -> None:
    spec = ProductSpec.parse({"sku": "A", "name": "n", "price": price, "quantity": 0})
    assert str(spec.price) == rendered


@pytest.mark.parametrize("price", [Decimal("-0"), Decimal("-0.00")])
def test_a_negative_zero_json_number_is_accepted_as_zero(price: Any) -> None:
    spec = ProductSpec.parse({"sku": "A", "name": "n", "price": price, "quantity": 0})
    assert str(spec.price) == "0.00"


def test_a_price_string_with_a_sign_is_refused_as_the_schema_says() -> None:
    # Text prices follow the OpenAPI pattern exactly: digits only, so "-0" is not one.
    with pytest.raises(InvalidProduct) as raised:
        ProductSpec.parse({"sku": "A", "name": "n", "price": "-0", "quantity": 0})
    assert [e.field for e in raised.value.errors] == ["price"]


@pytest.mark.parametrize(
    ("quantity", "value"), [(Decimal("3"), 3), (Decimal("3.0"), 3), (Decimal("3E+2"), 300)]
)
def test_an_integral_json_number_is_accepted_as_an_int_quantity(quantity: Any, value: int) -> None:
    # JSON Schema counts 3.0 as an integer; the HTTP body decodes such numbers as Decimal.
    spec = ProductSpec.parse({"sku": "A", "name": "n", "price": "1", "quantity": quantity})
    assert spec.quantity == value
    assert type(spec.quantity) is int


@pytest.mark.parametrize("quantity", ["1E+999999999", "-1E+999999999", "1E+11", "12345678901"])
def test_a_quantity_of_huge_magnitude_is_out_of_range_without_building_the_integer(
    quantity: str,
) -> None:
    # In a child process with a time limit: the bug this guards against (int() of a
    # billion-digit Decimal) spends minutes in C code that no signal in this process can stop.
    probe = (
        "from decimal import Decimal\n"
        "from cme_domain.errors import InvalidProduct\n"
        "from cme_domain.product import ProductSpec\n"
        "try:\n"
        f"    raw = {{'sku': 'A', 'name': 'n', 'price': '1', 'quantity': Decimal('{quantity}')}}\n"
        "    ProductSpec.parse(raw)\n"
        "except InvalidProduct as exc:\n"
        "    print(exc.errors[0].field, exc.errors[0].message)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=20, check=True
    )
    assert done.stdout.strip() == "quantity must be between 0 and 2147483647"


def test_a_missing_description_defaults_to_none() -> None:
    spec = ProductSpec.parse({"sku": "A", "name": "n", "price": "1", "quantity": 1})
    assert spec.description is None


def test_an_empty_description_is_kept_as_an_empty_string() -> None:
    raw = {"sku": "A", "name": "n", "description": "", "price": "1", "quantity": 1}
    assert ProductSpec.parse(raw).description == ""


@FAST
@given(one_bad_field())
def test_an_invalid_field_is_rejected_naming_exactly_that_field(
    case: tuple[dict[str, Any], str],
) -> None:
    raw, field = case
    assert [e.field for e in errors_of(raw)] == [field]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sku", ""),
        ("sku", "A" * 65),
        ("sku", "AB C"),
        ("sku", "\u00c4BC"),
        ("sku", 42),
        ("sku", None),
        ("name", ""),
        ("name", "   "),
        ("name", "\t\n\u3000"),
        ("name", "n" * 201),
        ("name", 42),
        ("name", "Desk\x00lamp"),
        ("description", "d" * 4001),
        ("description", 42),
        ("description", "\x00"),
        ("price", "-0.01"),
        ("price", -1),
        ("price", "10000000000"),
        ("price", Decimal("1E10")),
        ("price", "1.234"),
        ("price", Decimal("0.001")),
        ("price", "NaN"),
        ("price", Decimal("NaN")),
        ("price", "Infinity"),
        ("price", Decimal("Infinity")),
        ("price", 19.99),
        ("price", 1.0),
        ("price", True),
        ("price", "1_000"),
        ("price", " 1"),
        ("price", "abc"),
        ("price", None),
        ("quantity", -1),
        ("quantity", 2**31),
        ("quantity", True),
        ("quantity", 3.0),
        ("quantity", Decimal("3.5")),
        ("quantity", "3"),
        ("quantity", None),
    ],
)
def test_each_named_bad_value_is_rejected_naming_its_field(field: str, value: Any) -> None:
    raw = {"sku": "A", "name": "n", "description": "d", "price": "1.00", "quantity": 1}
    assert [e.field for e in errors_of({**raw, field: value})] == [field]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sku", "A" * 64),
        ("sku", "a.b_c-D9"),
        ("name", "n" * 200),
        ("name", " x "),
        ("description", "d" * 4000),
        ("price", "9999999999.99"),
        ("quantity", 2**31 - 1),
        ("quantity", 0),
    ],
)
def test_values_on_the_boundary_are_accepted_unchanged(field: str, value: Any) -> None:
    raw = {"sku": "A", "name": "n", "price": "1.00", "quantity": 1, field: value}
    assert str(getattr(ProductSpec.parse(raw), field)) == str(value)


@FAST
@given(raw_products(), st.data())
def test_several_bad_fields_are_all_reported(
    pair: tuple[dict[str, Any], ProductSpec], data: st.DataObject
) -> None:
    raw, _ = pair
    bad = data.draw(st.sets(st.sampled_from(EDITABLE_FIELDS), min_size=2))
    raw.update({field: data.draw(INVALID[field]) for field in bad})
    assert sorted(e.field for e in errors_of(raw)) == sorted(bad)


@FAST
@given(raw_products(), st.sets(unknown_fields, min_size=1, max_size=4))
def test_unknown_fields_are_reported_as_unknown_field(
    pair: tuple[dict[str, Any], ProductSpec], unknown: set[str]
) -> None:
    raw, _ = pair
    raw.update(dict.fromkeys(unknown, "x"))
    assert errors_of(raw) == [FieldError(key, "unknown field") for key in sorted(unknown)]


@FAST
@given(raw_products(), st.sets(st.sampled_from(REQUIRED), min_size=1))
def test_a_missing_required_field_is_reported_as_required(
    pair: tuple[dict[str, Any], ProductSpec], missing: set[str]
) -> None:
    raw, _ = pair
    for field in missing:
        del raw[field]
    assert sorted(errors_of(raw), key=lambda e: e.field) == [
        FieldError(field, "is required") for field in sorted(missing)
    ]


@FAST
@given(one_bad_field(), st.data(), unknown_fields)
def test_unknown_missing_and_invalid_fields_are_reported_together(
    case: tuple[dict[str, Any], str], data: st.DataObject, unknown: str
) -> None:
    raw, bad = case
    missing = data.draw(st.sampled_from([field for field in REQUIRED if field != bad]))
    del raw[missing]
    raw[unknown] = 1
    errors = errors_of(raw)
    assert sorted(e.field for e in errors) == sorted([unknown, bad, missing])
    assert FieldError(unknown, "unknown field") in errors
    assert FieldError(missing, "is required") in errors


@FAST
@given(specs)
def test_an_empty_merge_patch_returns_an_equal_spec(spec: ProductSpec) -> None:
    assert spec.merged({}) == spec


@FAST
@given(specs, raw_products(), st.sets(st.sampled_from(EDITABLE_FIELDS)))
def test_a_merge_patch_replaces_the_fields_it_names_and_keeps_the_others(
    spec: ProductSpec, other: tuple[dict[str, Any], ProductSpec], fields: set[str]
) -> None:
    raw, parsed = other
    patch = {field: raw[field] for field in fields if raw.get(field) is not None}
    expected = attrs.evolve(spec, **{field: getattr(parsed, field) for field in patch})
    merged = spec.merged(patch)
    assert merged == expected
    assert str(merged.price) == str(expected.price)


@FAST
@given(specs)
def test_a_null_description_in_a_merge_patch_removes_it(spec: ProductSpec) -> None:
    assert spec.merged({"description": None}) == attrs.evolve(spec, description=None)


@FAST
@given(specs, st.sampled_from(REQUIRED))
def test_a_null_required_field_in_a_merge_patch_is_reported_as_required(
    spec: ProductSpec, field: str
) -> None:
    errors = merge_errors_of(spec, {field: None})
    assert [e.field for e in errors] == [field]
    assert errors[0].message.startswith("is required")


@FAST
@given(specs, st.data())
def test_a_merge_patch_is_checked_by_the_same_invariants(
    spec: ProductSpec, data: st.DataObject
) -> None:
    field = data.draw(st.sampled_from(EDITABLE_FIELDS))
    patch = {field: data.draw(INVALID[field].filter(lambda value: value is not None))}
    assert [e.field for e in merge_errors_of(spec, patch)] == [field]


@FAST
@given(specs, unknown_fields, st.sampled_from(["x", None]))
def test_an_unknown_field_in_a_merge_patch_is_reported_even_as_null(
    spec: ProductSpec, unknown: str, value: str | None
) -> None:
    # Stricter than a bare RFC 7396 merge, on purpose: a misspelt {"descripton": null} is an error.
    assert merge_errors_of(spec, {unknown: value}) == [FieldError(unknown, "unknown field")]
