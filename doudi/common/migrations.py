"""Alembic, the one way a service's schema is created and changed.

Each service keeps its migrations in ``services/<name>/migrations/``; its
``env.py`` calls :func:`run_migrations` with the service's table metadata, and
its start command calls :func:`upgrade` before serving, so a fresh database
is created and an old one brought up to date by starting the service.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy
from alembic import command, context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from doudi.common.db import create_engine_for


def config(url: str, script_location: Path) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.attributes["url"] = url
    return cfg


def upgrade(url: str, script_location: Path) -> None:
    """Bring the database at ``url`` to the newest revision."""
    command.upgrade(config(url, script_location), "head")


def current_revision(engine: sqlalchemy.Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def run_migrations(target_metadata: sqlalchemy.MetaData) -> None:
    """The body of every service's ``env.py`` (online mode: against a live database)."""
    url = context.config.attributes.get("url") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: call doudi.common.migrations.upgrade(url, ...)")
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                # Replicas of a service start together; one migrates, the others wait
                # here and then find the schema current. Released when the connection ends.
                connection.exec_driver_sql("SELECT pg_advisory_lock(hashtext('doudi-migrations'))")
                connection.commit()
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                # SQLite alters tables by copying them; batch mode does that for us.
                render_as_batch=connection.dialect.name == "sqlite",
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()
