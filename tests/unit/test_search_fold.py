"""`q` folds case in all of Unicode, one function for every store (cme_domain.listing)."""

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from cme_domain.listing import search_fold

TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)


@given(TEXT)
def test_folding_a_folded_text_changes_nothing(text: str) -> None:
    assert search_fold(search_fold(text)) == search_fold(text)


@given(TEXT)
def test_a_text_folds_as_its_lower_case_does(text: str) -> None:
    assert search_fold(text.lower()) == search_fold(text)


DOTLESS_I = "\u0131"  # upper-cases to I, which folds to i


@given(TEXT.filter(lambda text: DOTLESS_I not in text))
def test_a_text_folds_as_its_upper_case_does(text: str) -> None:
    assert search_fold(text.upper()) == search_fold(text)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("STRASSE", "straße"),
        ("ÉCLAIR", "éclair"),
        ("Ωmega", "ωMEGA"),
        ("ΌΣΟΣ", "όσος"),
        ("Ｃａｆé", "café"),
        ("ﬁle", "FILE"),
        ("É", "E\u0301"),
    ],
)
def test_case_width_ligatures_and_composition_fold_alike(one: str, other: str) -> None:
    assert search_fold(one) == search_fold(other)


@pytest.mark.parametrize(("one", "other"), [("Éclair", "eclair"), ("İstanbul", "istanbul")])
def test_accents_are_kept(one: str, other: str) -> None:
    assert search_fold(one) != search_fold(other)


def test_the_api_finds_a_name_in_any_case_of_its_language(writer: TestClient) -> None:
    names = ["STRASSENBAHN", "Éclair au café", "Ωmega watch", "Desk lamp"]
    for n, name in enumerate(names):
        body: dict[str, Any] = {"sku": f"F-{n}", "name": name, "price": "1.00", "quantity": 1}
        assert writer.post("/products", json=body).status_code == 201

    def found(q: str) -> list[str]:
        response = writer.get("/products", params={"q": q, "sort": "name"})
        assert response.status_code == 200
        return [item["name"] for item in response.json()["items"]]

    assert found("straßen") == ["STRASSENBAHN"]
    assert found("ÉCLAIR") == ["Éclair au café"]
    assert found("ωmega") == ["Ωmega watch"]
    assert found("eclair") == []
