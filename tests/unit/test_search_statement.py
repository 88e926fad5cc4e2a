"""Which `q` the PostgreSQL adapter sends through the bounded walk, which keep the plain one."""

import pytest

from cme_adapters.postgres import search
from cme_adapters.postgres.repository import page_sql
from cme_domain.listing import ProductQuery


@pytest.mark.parametrize("q", ["lamp", "abc", "a 7F3", "Éclair", "x_y abc"])
def test_a_q_with_three_letters_or_digits_in_a_row_takes_the_bounded_walk(q: str) -> None:
    assert search.has_trigram(q)
    assert page_sql(ProductQuery(name_contains=q)).startswith("WITH hits AS MATERIALIZED")


@pytest.mark.parametrize("q", ["zz", "a b c", "a_b", "%%%", "ab-cd"])
def test_a_q_the_trigram_index_cannot_narrow_keeps_the_plain_filter(q: str) -> None:
    assert not search.has_trigram(q)
    assert page_sql(ProductQuery(name_contains=q)).startswith("SELECT")


def test_a_sku_with_q_keeps_the_plain_filter_on_its_unique_index() -> None:
    assert page_sql(ProductQuery(name_contains="lamp", sku="S-1")).startswith("SELECT")
