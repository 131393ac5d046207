"""Each service's migrations: they create exactly the tables its code uses, and every
revision goes down and up again (SQLite rebuilds tables for some changes; PostgreSQL
alters them in place: both paths run). And the command line that runs them once per
release (``python -m services.<name> migrate``, ``migrate --wait``,
``DOUDI_MIGRATE_ON_START=false``), as the Kubernetes Jobs and init containers and
compose's ``migrate`` service use it."""

from __future__ import annotations

import importlib
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from doudi.common.db import create_engine_for
from doudi.common.grpc_server import ServiceSpec
from doudi.common.migrations import WAIT_INTERVAL_SECONDS, config, current_revision, upgrade
from tests.services import ROOT, running_service, service_env

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


# --- the command line: migrate, migrate --wait, DOUDI_MIGRATE_ON_START=false ---


def run_command(
    name: str, directory: Path, url: str, *arguments: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", f"services.{name}", *arguments],
        cwd=ROOT,
        env=service_env(directory, url, env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def head_of(name: str) -> str:
    spec, _ = service_schema(name)
    (head,) = ScriptDirectory.from_config(config("sqlite://", spec.migrations)).get_heads()
    return head


@pytest.mark.parametrize("name", SERVICES)
def test_migrate_brings_the_database_to_head_and_exits(
    name: str, database_url: str, tmp_path: Path
) -> None:
    migrated = run_command(name, tmp_path, database_url, "migrate")

    assert migrated.returncode == 0, migrated.stderr
    assert revision(database_url) == head_of(name)
    assert f"{name}: the database is at this release's head {head_of(name)}" in migrated.stderr
    # Once there, waiting for the head answers at once.
    waited = run_command(name, tmp_path, database_url, "migrate", "--wait", "--timeout", "0")
    assert waited.returncode == 0, waited.stderr


def test_migrate_wait_migrates_nothing_and_ends_when_the_migration_has_run(
    database_url: str, tmp_path: Path
) -> None:
    """The init container's command: it waits for the release's migration Job, which runs
    meanwhile, and ends once the database is at the head."""
    log_path = tmp_path / "wait.log"
    with log_path.open("w") as log:
        waiting = subprocess.Popen(
            [sys.executable, "-m", "services.settlement", "migrate", "--wait", "--timeout", "60"],
            cwd=ROOT,
            env=service_env(tmp_path, database_url),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        deadline = time.monotonic() + 30
        while "waiting for the migrations" not in log_path.read_text():
            assert waiting.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        assert "never migrated" in log_path.read_text()
        time.sleep(2 * WAIT_INTERVAL_SECONDS)
        assert waiting.poll() is None
        assert revision(database_url) is None

        assert run_command("settlement", tmp_path, database_url, "migrate").returncode == 0

        assert waiting.wait(timeout=30) == 0, log_path.read_text()
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()
    assert f"settlement: the database is at this release's head {head_of('settlement')}" in (
        log_path.read_text()
    )


def test_migrate_wait_gives_up_after_its_timeout(database_url: str, tmp_path: Path) -> None:
    started = time.monotonic()
    waited = run_command(
        "enrollment", tmp_path, database_url, "migrate", "--wait", "--timeout", "1"
    )

    assert waited.returncode == 1
    assert time.monotonic() - started < 30
    assert "enrollment: the database did not reach this release's head within 1s" in waited.stderr
    assert "python -m services.enrollment migrate" in waited.stderr
    assert revision(database_url) is None


def test_a_database_a_later_release_migrated_counts_as_there(
    database_url: str, tmp_path: Path
) -> None:
    """Past this release's head (a newer release's migration has run, its pods rolling out
    while this one's still restart): waiting ends, and the service starts, with a warning."""
    spec, _ = service_schema("enrollment")
    upgrade(database_url, spec.migrations)
    engine = create_engine_for(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        engine.dispose()

    waited = run_command(
        "enrollment", tmp_path, database_url, "migrate", "--wait", "--timeout", "0"
    )

    assert waited.returncode == 0, waited.stderr
    assert "at 9999, which this release does not have" in waited.stderr
    with running_service(
        "enrollment", tmp_path, database_url=database_url, env={"DOUDI_MIGRATE_ON_START": "false"}
    ) as service:
        assert "at 9999, which this release does not have" in service.log()
    assert revision(database_url) == "9999"


def test_without_migrating_on_start_a_service_refuses_a_database_behind(
    database_url: str, tmp_path: Path
) -> None:
    no_migration = {"DOUDI_MIGRATE_ON_START": "false"}

    refused = run_command("assistance", tmp_path, database_url, env=no_migration)

    assert refused.returncode == 1
    assert "assistance: the database is at none (never migrated), behind this release's head" in (
        refused.stderr
    )
    assert "run this release's migration first (python -m services.assistance migrate)" in (
        refused.stderr
    )
    assert revision(database_url) is None
    # Once the release's migration has run, it starts and serves, migrating nothing.
    assert run_command("assistance", tmp_path, database_url, "migrate").returncode == 0
    with running_service(
        "assistance", tmp_path, database_url=database_url, env=no_migration
    ) as service:
        assert "Running upgrade" not in service.log()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("migrate", "--timeout", "5"), "--timeout goes with --wait"),
        (("migrate", "--wait", "--timeout", "-1"), "a finite number of seconds, 0 or more: '-1'"),
        (("migrate", "--wait", "--timeout", "soon"), "not a number of seconds: 'soon'"),
        (("migrat",), "invalid choice: 'migrat'"),
    ],
)
def test_bad_arguments_exit_2_naming_the_fault(
    arguments: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    answered = run_command("datashare", tmp_path, "", *arguments)

    assert answered.returncode == 2
    assert message in answered.stderr
    assert answered.stdout == ""
    assert not (tmp_path / "datashare.db").exists()


def test_production_migration_needs_the_database_url_and_nothing_else(tmp_path: Path) -> None:
    """A migration Job is given the database alone: not the peers' addresses, the internal
    token or TLS files, which the service itself must have in production."""
    production = {"DOUDI_ENVIRONMENT": "production"}

    refused = run_command("settlement", tmp_path, "", "migrate", env=production)

    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "python -m services.settlement: error: "
        "DOUDI_ENVIRONMENT=production needs DOUDI_DATABASE_URL set explicitly"
    )
    url = f"sqlite:///{tmp_path / 'settlement.db'}"
    assert run_command("settlement", tmp_path, url, "migrate", env=production).returncode == 0
    assert revision(url) == head_of("settlement")
