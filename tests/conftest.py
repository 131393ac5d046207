"""Fixtures for every test: a database on each backend the services support.

``database_url`` runs a test once on SQLite and once on PostgreSQL. The
PostgreSQL run needs a server: ``.ci/run`` starts a throwaway one and sets
``DOUDI_TEST_POSTGRES_URL`` (``postgresql+psycopg://postgres@127.0.0.1:PORT/doudi_test``);
without it those runs, and every test marked ``postgres``, are skipped with the
reason.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

POSTGRES_URL_ENV = "DOUDI_TEST_POSTGRES_URL"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tests marked ``postgres`` when no server is given."""
    if os.environ.get(POSTGRES_URL_ENV):
        return
    skip = pytest.mark.skip(reason=f"needs PostgreSQL: {POSTGRES_URL_ENV} is not set")
    for item in items:
        if item.get_closest_marker("postgres") is not None:
            item.add_marker(skip)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite database file of this test's own (not created until first used)."""
    return f"sqlite:///{tmp_path / 'doudi.db'}"


@contextlib.contextmanager
def new_database(backend: str, directory: Path, name: str = "doudi") -> Iterator[str]:
    """The URL of a new, empty database on ``backend``, dropped afterwards (PostgreSQL).

    SQLite: a file ``<name>.db`` in ``directory``. PostgreSQL: a database with a
    unique name on the server at ``DOUDI_TEST_POSTGRES_URL``, so tests running in
    parallel (pytest-xdist workers) never see each other's tables or rows.
    """
    if backend == "sqlite":
        yield f"sqlite:///{directory / f'{name}.db'}"
        return
    base = os.environ.get(POSTGRES_URL_ENV)
    if not base:
        pytest.skip(f"needs PostgreSQL: {POSTGRES_URL_ENV} is not set")
    admin_url = make_url(base)
    if admin_url.drivername == "postgresql":
        admin_url = admin_url.set(drivername="postgresql+psycopg")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    database = f"doudi_test_{worker}_{name}_{uuid.uuid4().hex[:12]}"
    # CREATE and DROP DATABASE cannot run inside a transaction.
    admin = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{database}"')
        try:
            yield admin_url.set(database=database).render_as_string(hide_password=False)
        finally:
            # FORCE ends connections a test left open (PostgreSQL 13 and newer).
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        admin.dispose()


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    """A new, empty PostgreSQL database of this test's own, dropped after the test.

    Mark the test ``postgres`` so that it is skipped, not failed, without a server.
    """
    with new_database("postgresql", tmp_path) as url:
        yield url


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
"""Parametrize a test with these to run it on each backend (``backend`` fixture)."""


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """``sqlite``, then ``postgresql`` (skipped without a server)."""
    name: str = request.param
    return name


@pytest.fixture
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database of this test's own, once per backend."""
    with new_database(backend, tmp_path) as url:
        yield url
