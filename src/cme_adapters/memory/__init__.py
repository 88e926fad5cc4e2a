"""An in-memory database: the unit tests' database, and the contract suite's reference."""

from cme_adapters.memory.database import InMemoryDatabase, InMemoryUnitOfWork
from cme_adapters.memory.repository import InMemoryProductRepository

__all__ = ["InMemoryDatabase", "InMemoryProductRepository", "InMemoryUnitOfWork"]
