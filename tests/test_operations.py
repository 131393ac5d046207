"""What docs/operations.md tells an operator to do, done: a backup restored, and alerts
that name only metrics the processes serve, each with its runbook entry.

The backup's round trip runs on a real platform: settlements are made through the
gateway, each service's database is backed up as the guide says (PostgreSQL:
``pg_dump --format=custom`` and ``pg_restore`` into new databases; SQLite: the online
backup), a second platform starts on the restored databases, and it answers the same
settlements, clearing and accumulators.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
import sqlalchemy
import yaml
from sqlalchemy.engine import make_url

from doudi.cli import demo
from doudi.common import metrics
from tests.conftest import new_database
from tests.platform import SERVICES, Platform, running_platform, start_platform
from tests.services import INTERNAL
from tests.support import business_day

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"
GUIDE = ROOT / "docs" / "operations.md"
YEAR = business_day().year
HOSPITAL_KEY = demo.HOSPITALS[0].api_key


# --- alerts ------------------------------------------------------------------------------


def served_metric_names() -> set[str]:
    """Every series name the processes can serve: the registered metrics with their
    sample suffixes, and the families read at scrape time."""
    names = {
        metrics.OUTBOX_BACKLOG,
        metrics.OUTBOX_OLDEST_AGE_SECONDS,
        metrics.DB_POOL_CHECKED_OUT,
        metrics.DB_POOL_SIZE,
        metrics.DB_POOL_OVERFLOW,
    }
    for family in prometheus_client.REGISTRY.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        if family.type == "histogram":
            names.update(f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count"))
    return names


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_every_alert_names_only_metrics_the_processes_serve() -> None:
    served = served_metric_names()
    rules = alert_rules()
    assert len(rules) >= 6
    for rule in rules:
        named = set(re.findall(r"\b(doudi_[a-z_]+)\b", rule["expr"]))
        assert named or "up{" in rule["expr"], rule["alert"]
        assert named <= served, (rule["alert"], sorted(named - served))
        assert rule["for"]
        assert rule["labels"]["severity"] in {"page", "ticket"}


def test_every_alert_has_its_runbook_entry_in_the_guide() -> None:
    guide = GUIDE.read_text()
    for rule in alert_rules():
        name = rule["alert"]
        assert f"\n### {name}\n" in guide, name
        assert rule["annotations"]["runbook"] == f"docs/operations.md#{name.lower()}"


# --- backup and restore -------------------------------------------------------------------


def settle(platform: Platform, count: int) -> list[dict[str, Any]]:
    client = platform.client(HOSPITAL_KEY)
    made = []
    for index in range(count):
        key = f"backup-{index}"
        answer = client.post(
            "/v1/settlements",
            headers={"Idempotency-Key": key},
            json={
                "person_id": demo.REGISTERED_POOR.person_id,
                "visit": {
                    "id": key,
                    "type": "inpatient",
                    "admitted": f"{YEAR}-02-02",
                    "discharged": f"{YEAR}-02-05",
                    "items": [{"code": "X01", "class": "A", "amount_fen": 250_000 + index}],
                },
            },
        )
        assert answer.status_code == 201, answer.text
        made.append(answer.json())
    return made


def state_of(platform: Platform, made: list[dict[str, Any]]) -> dict[str, Any]:
    """What the platform answers of the settlements, the day's clearing and the person's
    accumulators."""
    client = platform.client(HOSPITAL_KEY)
    settlements = []
    for settlement in made:
        answer = client.get(f"/v1/settlements/{settlement['id']}")
        assert answer.status_code == 200, answer.text
        settlements.append(answer.json())
    clearing = client.get(f"/v1/clearing?date={business_day().isoformat()}")
    assert clearing.status_code == 200
    from doudi.assistance.v1 import assistance_pb2, assistance_pb2_grpc

    burden = assistance_pb2_grpc.AssistanceServiceStub(
        platform.services["assistance"].channel()
    ).GetBurden(
        assistance_pb2.GetBurdenRequest(person_id=demo.REGISTERED_POOR.person_id, year=YEAR),
        metadata=INTERNAL,
    )
    return {
        "settlements": settlements,
        "clearing": clearing.json(),
        "burden": str(burden),
    }


def pg_program(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)
    if not found:
        pytest.skip(f"no {name}: PostgreSQL's client programs are not installed")
    return str(found[0])


def database_url(platform: Platform, name: str) -> str:
    return platform.services[name].env.get("DOUDI_DATABASE_URL") or (
        f"sqlite:///{platform.directory / name}.db"
    )


def back_up(backend: str, url: str, target: Path) -> None:
    """One service's database backed up as docs/operations.md says."""
    if backend == "sqlite":
        with (
            contextlib.closing(sqlite3.connect(make_url(url).database or "")) as source,
            contextlib.closing(sqlite3.connect(target)) as copy,
        ):
            source.backup(copy)
        return
    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    subprocess.run(
        [pg_program("pg_dump"), "--format=custom", f"--file={target}", plain],
        check=True,
        capture_output=True,
    )


def restore(backend: str, backup: Path, url: str) -> None:
    if backend == "sqlite":
        database = make_url(url).database or ""
        Path(database).write_bytes(backup.read_bytes())
        return
    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    subprocess.run(
        [
            pg_program("pg_restore"),
            "--no-owner",
            "--exit-on-error",
            f"--dbname={plain}",
            str(backup),
        ],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def restored_urls(backend: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    with contextlib.ExitStack() as stack:
        yield {
            name: stack.enter_context(new_database(backend, tmp_path / "restored", name))
            for name in SERVICES
        }


def test_a_backup_restored_answers_the_same_settlements_clearing_and_burden(
    backend: str, tmp_path: Path, restored_urls: dict[str, str]
) -> None:
    (tmp_path / "restored").mkdir(exist_ok=True)
    backups = tmp_path / "backups"
    backups.mkdir()
    with running_platform(tmp_path / "live", backend) as live:
        demo.load(
            enrollment=live.services["enrollment"].channel(),
            datashare=live.services["datashare"].channel(),
            settlement=live.services["settlement"].channel(),
            internal_token=INTERNAL[0][1].removeprefix("Bearer "),
            year=YEAR,
        )
        made = settle(live, 3)
        before = wait_for_burden(live, made)
        for name in SERVICES:
            back_up(backend, database_url(live, name), backups / f"{name}.backup")
    for name in SERVICES:
        restore(backend, backups / f"{name}.backup", restored_urls[name])
    restored = start_platform(tmp_path / "restored", restored_urls.get)
    try:
        assert state_of(restored, made) == before
        # The restored platform goes on settling where the live one stopped.
        again = restored.client(HOSPITAL_KEY).post(
            "/v1/settlements",
            headers={"Idempotency-Key": "backup-0"},
            json={"person_id": demo.REGISTERED_POOR.person_id, "visit": made_visit(0)},
        )
        assert again.status_code == 201, again.text
        assert again.json()["id"] == made[0]["id"]  # the same key: the stored settlement
    finally:
        restored.stop()


def made_visit(index: int) -> dict[str, Any]:
    key = f"backup-{index}"
    return {
        "id": key,
        "type": "inpatient",
        "admitted": f"{YEAR}-02-02",
        "discharged": f"{YEAR}-02-05",
        "items": [{"code": "X01", "class": "A", "amount_fen": 250_000 + index}],
    }


def wait_for_burden(platform: Platform, made: list[dict[str, Any]]) -> dict[str, Any]:
    """The platform's state once assistance has every settlement's event."""
    import time

    url = database_url(platform, "settlement")
    engine = sqlalchemy.create_engine(url)
    try:
        deadline = time.monotonic() + 60
        while True:
            with engine.connect() as connection:
                queued = connection.exec_driver_sql("SELECT count(*) FROM event_outbox").scalar()
            if queued == 0:
                return state_of(platform, made)
            assert time.monotonic() < deadline, "the events never reached assistance"
            time.sleep(0.2)
    finally:
        engine.dispose()
