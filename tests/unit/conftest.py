"""The HTTP app on the in-memory adapter, for tests that need no database."""

from collections.abc import Iterator

import pytest
from dependency_injector import providers
from starlette.testclient import TestClient

from cme_adapters.memory import InMemoryDatabase
from cme_entrypoints.container import Container
from cme_entrypoints.http.app import create_app
from cme_entrypoints.settings import Settings

API_KEY = "unit-test-key-0123456789"


@pytest.fixture
def memory() -> InMemoryDatabase:
    return InMemoryDatabase()


@pytest.fixture
def client(memory: InMemoryDatabase) -> Iterator[TestClient]:
    container = Container(settings=Settings(database_url="sqlite://", api_keys=(API_KEY,)))
    container.database.override(providers.Object(memory))
    with TestClient(create_app(container), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def writer(client: TestClient) -> TestClient:
    client.headers["X-API-Key"] = API_KEY
    return client
