"""Alembic, the one way a service's schema is created and changed.

Each service keeps its migrations in ``services/<name>/migrations/``; its
``env.py`` calls :func:`run_migrations` with the service's table metadata, and
its start command calls :func:`upgrade` before serving, so a fresh database
is created and an old one brought up to date by starting the service.

Where migrations run once per release before the processes start (Kubernetes'
migration Jobs, compose's ``migrate`` service), ``python -m services.<name> migrate``
migrates and exits, the processes start with ``DOUDI_MIGRATE_ON_START=false``, and
``migrate --wait`` (a pod's init container) waits until the database is at the
release's head (:func:`wait_for_head`) without migrating
(``doudi.common.grpc_server.run_service``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Self

import sqlalchemy
from alembic import command, context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from pydantic import model_validator
from pydantic_settings import SettingsConfigDict

from doudi.common.db import create_engine_for
from doudi.common.observability import ObservabilitySettings

log = logging.getLogger("doudi.migrations")

WAIT_INTERVAL_SECONDS = 2.0
"""How often ``migrate --wait`` looks at the database's revision again."""


class MigrationSettings(ObservabilitySettings):
    """What ``python -m services.<name> migrate`` reads: the database alone (a migration
    Job needs neither the peers' addresses nor the internal token nor TLS files), and of
    doudi.common.observability's settings the log format."""

    model_config = SettingsConfigDict(
        env_prefix="DOUDI_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    environment: Literal["local", "production"] = "local"
    data_dir: Path = Path("var")
    database_url: str = ""
    """As the service's own ``DOUDI_DATABASE_URL``; required outside local."""
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _database_named_outside_local(self) -> Self:
        if self.environment != "local" and not self.database_url:
            raise ValueError(
                f"DOUDI_ENVIRONMENT={self.environment} needs DOUDI_DATABASE_URL set explicitly"
            )
        return self

    def database_url_for(self, service: str) -> str:
        """The same URL the service uses (``ServiceSettings.database_url_for``)."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / f'{service}.db').resolve()}"


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


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    """Where a database stands against a release's migrations."""

    current: frozenset[str]
    """The database's revisions (empty: never migrated)."""
    heads: frozenset[str]
    """This release's newest revisions."""
    unknown: frozenset[str]
    """The database's revisions this release does not have: a later release migrated it."""

    @property
    def at_head(self) -> bool:
        return self.current == self.heads

    @property
    def ahead(self) -> bool:
        return bool(self.unknown)

    @property
    def behind(self) -> bool:
        """Migrations of this release are still to run on it."""
        return not self.at_head and not self.ahead

    def describe(self) -> str:
        current = ", ".join(sorted(self.current)) or "none (never migrated)"
        heads = ", ".join(sorted(self.heads))
        if self.at_head:
            return f"at this release's head {heads}"
        if self.ahead:
            return f"at {current}, which this release does not have (its head is {heads})"
        return f"at {current}, behind this release's head {heads}"


_ALEMBIC_CONTEXT_LOG = logging.getLogger("alembic.runtime.migration")


@contextlib.contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    """Without ``logger``'s INFO lines (alembic's "Context impl" at every look)."""
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def schema_status(url: str, script_location: Path) -> SchemaStatus:
    """Compare the database at ``url`` with the migrations in ``script_location``; the
    database is read, never changed."""
    script = ScriptDirectory.from_config(config(url, script_location))
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection, _quiet(_ALEMBIC_CONTEXT_LOG):
            current = frozenset(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()
    unknown: set[str] = set()
    for revision in current:
        try:
            script.get_revision(revision)
        except CommandError:
            unknown.add(revision)
    return SchemaStatus(current, frozenset(script.get_heads()), frozenset(unknown))


def wait_for_head(
    url: str,
    script_location: Path,
    timeout: float,
    *,
    interval: float = WAIT_INTERVAL_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> SchemaStatus | None:
    """Wait up to ``timeout`` seconds, without migrating, for the database at ``url`` to be
    at the head of ``script_location``'s migrations (or past it: a later release's
    migrations have run). A database that cannot be reached yet is waited for too. The
    status once there, or None when the time is up; each new state is logged once."""
    deadline = clock() + timeout
    said = ""
    while True:
        try:
            status = schema_status(url, script_location)
        except sqlalchemy.exc.DBAPIError as error:
            state = f"not reachable yet ({type(error.orig).__name__})"
        else:
            if not status.behind:
                return status
            state = status.describe()
        if state != said:
            log.info("waiting for the migrations: the database is %s", state)
            said = state
        if clock() + interval > deadline:
            return None
        sleep(interval)


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
