"""Settlement sends each settlement and each reversal to assistance (issue 18, item 1):
never lost, applied once, off the hospital's request path.

Each backend's platform (the four services and the gateway, loaded with the demo data)
serves the whole module; every test settles for persons of its own at the gateway and
reads what assistance made of it (GetBurden, and its recorded events), and stops or kills
services to lose deliveries on the way.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy
from alembic import command

from doudi.assistance.v1 import assistance_pb2
from doudi.assistance.v1.assistance_pb2_grpc import AssistanceServiceStub
from doudi.common.migrations import config
from services.assistance.tables import settlement_events
from services.settlement.server import SPEC
from services.settlement.tables import event_outbox, settlements
from tests.outpatient import CERTIFIED_DIAGNOSIS
from tests.platform import Platform, demo_platforms
from tests.services import INTERNAL, start_service, stop_service
from tests.test_settlement_flow import (
    HOSPITAL_KEY,
    YEAR,
    certified,
    new_person,
    service_engine,
    settle,
    stay,
)

DEADLINE_SECONDS = 20.0  # the sender retries every 2 s by default


@pytest.fixture(scope="module")
def platforms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Platform]]:
    with demo_platforms(tmp_path_factory, "events", YEAR) as on:
        yield on


@pytest.fixture
def platform(backend: str, platforms: Callable[[str], Platform]) -> Platform:
    return platforms(backend)


# --- helpers ----------------------------------------------------------------------------


def chronic(visit_id: str, amount_yuan: int) -> dict[str, Any]:
    """A chronic-disease outpatient visit on 1 February, for the disease :func:`certified`
    certifies."""
    return {
        "id": visit_id,
        "type": "outpatient_chronic",
        "date": f"{YEAR}-02-01",
        "diagnoses": [CERTIFIED_DIAGNOSIS],
        "items": [{"code": "M1", "class": "A", "amount_fen": amount_yuan * 100}],
    }


def reverse(client: httpx.Client, settlement: dict[str, Any]) -> dict[str, Any]:
    answer = client.post(
        f"/v1/settlements/{settlement['id']}/reversal",
        headers={"Idempotency-Key": f"rev-{settlement['id']}"},
    )
    assert answer.status_code == 200, answer.text
    reversed_settlement: dict[str, Any] = answer.json()
    return reversed_settlement


def settled(client: httpx.Client, person: str, visit: dict[str, Any]) -> dict[str, Any]:
    answer = settle(client, person, visit)
    assert answer.status_code == 201, answer.text
    made: dict[str, Any] = answer.json()
    return made


def expected(standing: list[dict[str, Any]]) -> dict[str, Any]:
    """What the burdens of the settlements still standing add up to, by settlement's
    answers: totals, self-pay, each fund's payments and the visits."""
    funds: Counter[str] = Counter()
    for settlement in standing:
        for layer in settlement["layers"]:
            funds[layer["fund"]] += layer["paid_fen"]
    return {
        "total_fen": sum(s["total_fen"] for s in standing),
        "personal_burden_fen": sum(s["self_pay_fen"] for s in standing),
        "funds": {fund: fen for fund, fen in funds.items() if fen},
        "visits": len(standing),
    }


def burdens(platform: Platform, persons: list[str]) -> dict[str, Any]:
    """The same figures as assistance's ledger holds them for the persons' year."""
    stub = AssistanceServiceStub(platform.services["assistance"].channel())
    found = [
        stub.GetBurden(
            assistance_pb2.GetBurdenRequest(person_id=person, year=YEAR), metadata=INTERNAL
        ).burden
        for person in persons
    ]
    funds: Counter[str] = Counter()
    for burden in found:
        for payment in burden.fund_payments:
            funds[payment.fund] += payment.paid_fen
    return {
        "total_fen": sum(b.total_fen for b in found),
        "personal_burden_fen": sum(b.personal_burden_fen for b in found),
        "funds": {fund: fen for fund, fen in funds.items() if fen},
        "visits": sum(b.inpatient_visits + b.outpatient_chronic_visits for b in found),
    }


def wait_for_burdens(platform: Platform, persons: list[str], want: dict[str, Any]) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while (found := burdens(platform, persons)) != want:
        assert time.monotonic() < deadline, f"assistance holds {found}, settlement {want}"
        time.sleep(0.1)


def recorded(platform: Platform, settlement_ids: list[str]) -> list[tuple[str, str]]:
    """The events assistance recorded of these settlements: (settlement, kind), sorted."""
    engine = service_engine(platform, "assistance")
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sqlalchemy.select(settlement_events.c.settlement_id, settlement_events.c.kind)
                .where(settlement_events.c.settlement_id.in_(settlement_ids))
                .order_by(settlement_events.c.settlement_id, settlement_events.c.kind)
            ).all()
    finally:
        engine.dispose()
    return [(row.settlement_id, row.kind) for row in rows]


def queued(platform: Platform, settlement_ids: list[str]) -> int:
    """How many events of these settlements settlement has not delivered yet."""
    engine = service_engine(platform, "settlement")
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    sqlalchemy.select(sqlalchemy.func.count()).where(
                        event_outbox.c.settlement_id.in_(settlement_ids)
                    )
                ).scalar_one()
            )
    finally:
        engine.dispose()


def restart(platform: Platform, name: str) -> None:
    """Start the stopped service again on its database and port (where the others look)."""
    service = platform.services[name]
    platform.services[name] = start_service(
        name,
        platform.directory,
        database_url=service.env.get("DOUDI_DATABASE_URL"),
        env={key: value for key, value in service.env.items() if key.endswith("_ADDRESS")}
        | {"DOUDI_PORT": str(service.port)},
    )


def burst(
    client: httpx.Client, persons: list[str], count: int, reverse_every: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``count`` settlements spread over the persons, every ``reverse_every``-th reversed:
    (all made, those still standing)."""
    made = []
    for index in range(count):
        person = persons[index % len(persons)]
        visit = (
            stay(f"{person}-{index}", f"03-{1 + index % 28:02d}", 3_000 + 250 * index)
            if index % 2
            else chronic(f"{person}-{index}", 200 + 10 * index)
        )
        made.append(settled(client, person, visit))
    reversed_ids = {s["id"] for s in made[::reverse_every]}
    for settlement in made[::reverse_every]:
        reverse(client, settlement)
    return made, [s for s in made if s["id"] not in reversed_ids]


# --- tests ------------------------------------------------------------------------------


def test_a_settlement_and_its_reversal_reach_the_burden(platform: Platform) -> None:
    client = platform.client(HOSPITAL_KEY)
    person = new_person(platform, registered_poor=True)
    certified(platform, person)
    first = settled(client, person, stay("e-1", "05-20", 60_000))
    second = settled(client, person, chronic("e-2", 900))
    wait_for_burdens(platform, [person], expected([first, second]))

    reverse(client, first)
    wait_for_burdens(platform, [person], expected([second]))

    engine = service_engine(platform, "assistance")
    with engine.connect() as connection:
        events = connection.execute(
            sqlalchemy.select(settlement_events)
            .where(settlement_events.c.settlement_id == first["id"])
            .order_by(settlement_events.c.event_id)
        ).all()
    engine.dispose()
    # Both carry the settlement's figures, its region and statuses, dated by the discharge.
    assert [event.kind for event in events] == ["settled", "reversed"]
    for event in events:
        assert event.region == "411323"
        assert event.statuses == "registered_poor"
        assert event.visit_type == "inpatient"
        assert event.admitted == date(YEAR, 5, 20)
        assert event.settled_on == date(YEAR, 5, 20)
        assert event.total_fen == first["total_fen"]
        assert event.self_pay_fen == first["self_pay_fen"]
        assert event.policy == first["policy"]
    assert queued(platform, [first["id"], second["id"]]) == 0


def test_a_burst_while_assistance_is_down_arrives_once_when_it_is_back(
    platform: Platform,
) -> None:
    client = platform.client(HOSPITAL_KEY)
    persons = [new_person(platform, registered_poor=index % 2 == 0) for index in range(6)]
    certified(platform, *persons)
    assert stop_service(platform.services["assistance"]) == 0

    made, standing = burst(client, persons, 40, reverse_every=4)  # 10 of them reversed
    ids = [s["id"] for s in made]
    assert queued(platform, ids) == 50  # the hospitals were answered all the same

    restart(platform, "assistance")
    wait_for_burdens(platform, persons, expected(standing))
    assert recorded(platform, ids) == sorted(
        [(i, "settled") for i in ids] + [(s["id"], "reversed") for s in made[::4]]
    )
    deadline = time.monotonic() + DEADLINE_SECONDS
    while queued(platform, ids):
        assert time.monotonic() < deadline, "delivered events were not forgotten"
        time.sleep(0.1)
    assert "cannot send settlement events to the assistance service" in (
        platform.services["settlement"].log()
    )


def test_events_committed_before_settlement_was_killed_arrive_after_its_restart(
    platform: Platform,
) -> None:
    client = platform.client(HOSPITAL_KEY)
    persons = [new_person(platform, registered_poor=True) for _ in range(2)]
    certified(platform, *persons)
    assert stop_service(platform.services["assistance"]) == 0
    made, standing = burst(client, persons, 5, reverse_every=3)
    assert stop_service(platform.services["settlement"], signal.SIGKILL) == -signal.SIGKILL
    restart(platform, "assistance")
    time.sleep(0.5)
    assert burdens(platform, persons)["visits"] == 0  # nothing could be sent

    restart(platform, "settlement")
    wait_for_burdens(platform, persons, expected(standing))
    assert len(recorded(platform, [s["id"] for s in made])) == 7


def test_a_batch_delivered_again_changes_nothing(platform: Platform) -> None:
    client = platform.client(HOSPITAL_KEY)
    persons = [new_person(platform) for _ in range(2)]
    certified(platform, *persons)
    made, standing = burst(client, persons, 4, reverse_every=2)
    ids = [s["id"] for s in made]
    wait_for_burdens(platform, persons, expected(standing))
    before = recorded(platform, ids)

    # As if assistance's acknowledgement had been lost: the same events queued again,
    # with their own ids, and the same events again under new ids (a sender that lost
    # its ids).
    engine = service_engine(platform, "assistance")
    with engine.connect() as connection:
        sent = connection.execute(
            sqlalchemy.select(
                settlement_events.c.event_id,
                settlement_events.c.settlement_id,
                settlement_events.c.kind,
            ).where(settlement_events.c.settlement_id.in_(ids))
        ).all()
    engine.dispose()
    now = datetime.now(UTC)
    engine = service_engine(platform, "settlement")
    with engine.begin() as connection:
        connection.execute(
            event_outbox.insert(),
            [
                {"event_id": row.event_id, "settlement_id": row.settlement_id, "kind": row.kind}
                | {"queued_at": now}
                for row in sent
            ],
        )
        connection.execute(
            event_outbox.insert(),
            [
                {"settlement_id": row.settlement_id, "kind": row.kind, "queued_at": now}
                for row in sent
            ],
        )
    engine.dispose()
    deadline = time.monotonic() + DEADLINE_SECONDS
    while queued(platform, ids):
        assert time.monotonic() < deadline, "the events queued again were never sent"
        time.sleep(0.1)

    assert recorded(platform, ids) == before
    assert burdens(platform, persons) == expected(standing)


def test_the_migration_queues_every_settlement_stored_before(database_url: str) -> None:
    """Settlements stored before the outbox existed are queued, each settled in the order
    they were made, then each reversal; they gain the person's region (the hospital's
    without one) and the statuses held on the visit's date."""
    cfg = config(database_url, SPEC.migrations)
    command.upgrade(cfg, "0003")
    engine = sqlalchemy.create_engine(database_url)
    now = datetime(2026, 3, 1, 8, tzinfo=UTC)
    with engine.begin() as connection:
        old = sqlalchemy.MetaData()
        table = {
            name: sqlalchemy.Table(name, old, autoload_with=connection)
            for name in ("hospitals", "settlements", "person_statuses", "person_coverage")
        }
        connection.execute(
            table["hospitals"].insert(),
            [
                {"hospital_id": "H1", "name": "Taishan", "region": "440781", "level": 2}
                | {"api_key_sha256": "digest", "created_at": now}
            ],
        )
        connection.execute(
            table["person_coverage"].insert(),
            {"person_id": "P1", "version": 1, "updated_at": now}
            | {"coverage": {"region": "411323", "years": {"2026": ["resident", None, None]}}},
        )
        connection.execute(
            table["person_statuses"].insert(),
            {"person_id": "P1", "version": 1, "updated_at": now}
            | {
                "periods": [
                    ["registered_poor", "2026-01-01", None, "poverty_office"],
                    ["dibao", "2026-02-01", "2026-02-10", "civil_affairs"],
                ]
            },
        )
        connection.execute(
            table["settlements"].insert(),
            [
                _old_settlement("s-2", "P1", now.replace(minute=2), reversed_=False),
                _old_settlement("s-1", "P1", now.replace(minute=1), reversed_=True),
                _old_settlement("s-3", "P2", now.replace(minute=3), reversed_=False),
            ],
        )
    command.upgrade(cfg, "head")
    with engine.connect() as connection:
        events = connection.execute(
            sqlalchemy.select(
                event_outbox.c.event_id, event_outbox.c.settlement_id, event_outbox.c.kind
            ).order_by(event_outbox.c.event_id)
        ).all()
        stored = connection.execute(
            sqlalchemy.select(
                settlements.c.settlement_id, settlements.c.region, settlements.c.statuses
            ).order_by(settlements.c.settlement_id)
        ).all()
    engine.dispose()
    assert [tuple(row) for row in events] == [
        (1, "s-1", "settled"),
        (2, "s-2", "settled"),
        (3, "s-3", "settled"),
        (4, "s-1", "reversed"),
    ]
    assert [tuple(row) for row in stored] == [
        ("s-1", "411323", ["registered_poor"]),
        ("s-2", "411323", ["registered_poor"]),
        ("s-3", "440781", []),  # no copy of the person: the hospital's region
    ]


def _old_settlement(
    settlement_id: str, person: str, at: datetime, *, reversed_: bool
) -> dict[str, Any]:
    """A settlement as revision 0003 stored it: a pharmacy purchase of one yuan."""
    return {
        "settlement_id": settlement_id,
        "hospital_id": "H1",
        "request_id": settlement_id,
        "request_sha256": "0" * 64,
        "person_id": person,
        "visit_id": settlement_id,
        "visit_type": "pharmacy",
        "settles_on": date(2026, 3, 1),
        "year": 2026,
        "policy": "xixia-2017",
        "total_fen": 100,
        "class_c_fen": 0,
        "over_limit_fen": 0,
        "pre_self_pay_fen": 0,
        "in_scope_fen": 100,
        "fund_paid_fen": 0,
        "self_pay_fen": 100,
        "layers": [],
        "payouts": [],
        "deltas": {},
        "visit": {},
        "state": "reversed" if reversed_ else "settled",
        "settled_at": at,
        "settled_on": date(2026, 3, 1),
        "reversal_request_id": f"r-{settlement_id}" if reversed_ else None,
        "reversed_at": at.replace(hour=9) if reversed_ else None,
    }
