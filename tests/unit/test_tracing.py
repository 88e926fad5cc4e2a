"""Tracing is off by default, and Google's OTLP endpoint gets the application's credentials."""

import google.auth
import pytest
from google.auth.credentials import AnonymousCredentials
from starlette.testclient import TestClient

from cme_adapters import tracing
from cme_adapters.postgres.repository import page_sql
from cme_adapters.postgres.uow import span_name
from cme_domain.listing import ProductQuery


def test_no_tracer_provider_and_no_span_work_without_otel_configuration(
    client: TestClient,
) -> None:
    assert tracing.tracer_provider(enabled=False, endpoint="http://127.0.0.1:4318") is None
    middleware = client.app.middleware_stack  # type: ignore[attr-defined]
    while not hasattr(middleware, "spans"):
        middleware = middleware.app
    assert middleware.spans is None


@pytest.mark.parametrize(
    ("endpoint", "asked"),
    [("https://telemetry.googleapis.com", True), ("http://collector:4318", False)],
)
def test_only_googles_endpoint_is_sent_the_application_default_credentials(
    monkeypatch: pytest.MonkeyPatch, endpoint: str, asked: bool
) -> None:
    scopes: list[object] = []

    def default(**kwargs: object) -> tuple[AnonymousCredentials, str]:
        scopes.append(kwargs["scopes"])
        return AnonymousCredentials(), "proj-1"

    monkeypatch.setattr(google.auth, "default", default)
    provider = tracing.tracer_provider(enabled=True, endpoint=endpoint)
    assert provider is not None
    provider.shutdown()
    assert scopes == ([["https://www.googleapis.com/auth/cloud-platform"]] if asked else [])


def test_the_page_for_q_is_traced_as_a_select_on_products() -> None:
    assert span_name(page_sql(ProductQuery(name_contains="lamp"))) == ("SELECT", "products")
    assert span_name(page_sql(ProductQuery())) == ("SELECT", "products")
