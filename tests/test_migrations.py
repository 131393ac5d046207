"""Each service's migrations: they create exactly the tables its code uses, and every
revision goes down and up again (SQLite rebuilds tables for some changes; PostgreSQL
alters them in place: both paths run)."""

from __future__ import annotations

import importlib

import pytest
import sqlalchemy
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from doudi.common.db import create_engine_for
from doudi.common.grpc_server import ServiceSpec
from doudi.common.migrations import config, current_revision, upgrade

SERVICES = ("enrollment", "settlement", "assistance", "datashare")


def service_schema(name: str) -> tuple[ServiceSpec, sqlalchemy.MetaData]:
    spec = importlib.import_module(f"services.{name}.server").SPEC
    metadata = importlib.import_module(f"services.{name}.tables").metadata
    return spec, metadata


def differences(url: str, metadata: sqlalchemy.MetaData) -> list[object]:
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            return list(compare_metadata(MigrationContext.configure(connection), metadata))
    finally:
        engine.dispose()


def revision(url: str) -> str | None:
    engine = create_engine_for(url)
    try:
        return current_revision(engine)
    finally:
        engine.dispose()


@pytest.mark.parametrize("name", SERVICES)
def test_the_migrations_create_the_tables_the_service_uses(name: str, database_url: str) -> None:
    spec, metadata = service_schema(name)

    upgrade(database_url, spec.migrations)

    assert differences(database_url, metadata) == []


@pytest.mark.parametrize("name", SERVICES)
def test_every_revision_goes_down_and_up_again(name: str, database_url: str) -> None:
    spec, metadata = service_schema(name)
    cfg = config(database_url, spec.migrations)
    upgrade(database_url, spec.migrations)
    head = revision(database_url)

    command.downgrade(cfg, "base")
    assert revision(database_url) is None
    upgrade(database_url, spec.migrations)

    assert revision(database_url) == head
    assert differences(database_url, metadata) == []
