"""Settlements asked at the same time are settled together (services/settlement/batching.py),
and each is answered as it would have been alone: the real platform, on both databases.

A batch is made on purpose: the test holds what the settlement process's transaction needs
(a person's ledger row on PostgreSQL, the write lock on SQLite), so that a first request
waits inside the process's one batch on its way; the requests sent meanwhile queue behind
it and, once the hold is let go, go to the database together in the next batch. They then
share their ``settled_at`` (a batch's moment), which shows they were one batch.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import sqlalchemy

from doudi.common.errors import decode_status
from doudi.common.protos import from_date
from doudi.settlement.v1 import settlement_pb2, settlement_pb2_grpc
from services.assistance.tables import settlement_events
from services.settlement.tables import ledgers, settlements
from tests.platform import Platform, demo_platforms
from tests.services import bearer, start_service, stop_service
from tests.test_settlement_flow import (
    HOSPITAL_KEY,
    YEAR,
    balanced,
    new_person,
    paid,
    person_number,
    register_person,
    service_engine,
    settle,
    settlement_engine,
    stay,
)

QUEUE_SECONDS = 1.5
"""How long the test lets requests reach the settlement process and queue there; a hold
on SQLite's write lock stays well under its busy timeout (5 s) with two of these."""


@pytest.fixture(scope="module")
def platforms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Platform]]:
    with demo_platforms(tmp_path_factory, "batching", YEAR) as on:
        yield on


@pytest.fixture
def platform(backend: str, platforms: Callable[[str], Platform]) -> Platform:
    return platforms(backend)


@contextlib.contextmanager
def holding(platform: Platform, backend: str, person: str) -> Iterator[Callable[[], None]]:
    """Hold ``person``'s ledger row (PostgreSQL; the person has settled before) or the
    settlement database's write lock (SQLite) until the function yielded is called."""
    engine = settlement_engine(platform)
    holder = engine.connect()
    if backend == "sqlite":
        holder.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        holder.begin()
        holder.execute(
            sqlalchemy.select(ledgers.c.person_id)
            .where(ledgers.c.person_id == person)
            .with_for_update()
        ).one()
    released = threading.Event()

    def release() -> None:
        if not released.is_set():
            released.set()
            if backend == "sqlite":
                holder.exec_driver_sql("ROLLBACK")
            else:
                holder.rollback()

    try:
        yield release
    finally:
        release()
        holder.close()
        engine.dispose()


def in_one_batch(
    platform: Platform, backend: str, requests: list[tuple[str, dict[str, Any], str]]
) -> list[httpx.Response]:
    """Send each (person, visit, key) so that all are settled in one batch; answers each."""
    blocker = new_person(platform, registered_poor=True)
    client = platform.client(HOSPITAL_KEY)
    assert settle(client, blocker, stay(f"{blocker}-hold-0", "01-02", 100)).status_code == 201

    def send(person: str, visit: dict[str, Any], key: str) -> httpx.Response:
        with httpx.Client(
            base_url=platform.base_url,
            headers={"Authorization": f"Bearer {HOSPITAL_KEY}"},
            timeout=60,
        ) as own:
            return settle(own, person, visit, key)

    with (
        ThreadPoolExecutor(1 + len(requests)) as pool,
        holding(platform, backend, blocker) as release,
    ):
        first = pool.submit(
            send, blocker, stay(f"{blocker}-hold-1", "01-03", 100), f"{blocker}-hold-1"
        )
        time.sleep(QUEUE_SECONDS)  # the first waits for the hold, inside the batch on its way
        answers = [pool.submit(send, *request) for request in requests]
        time.sleep(QUEUE_SECONDS)  # the others queue behind it
        release()
        assert first.result().status_code == 201, first.result().text
        return [answer.result() for answer in answers]


def recorded_once(platform: Platform, settlement_ids: list[str]) -> bool:
    """Whether assistance recorded each settlement's event, once (within 30 s)."""
    engine = service_engine(platform, "assistance")
    deadline = time.monotonic() + 30
    try:
        while True:
            with engine.connect() as connection:
                counts: dict[str, int] = dict(
                    connection.execute(
                        sqlalchemy.select(
                            settlement_events.c.settlement_id, sqlalchemy.func.count()
                        )
                        .where(settlement_events.c.settlement_id.in_(settlement_ids))
                        .group_by(settlement_events.c.settlement_id)
                    ).all()
                )
            if len(counts) == len(settlement_ids) or time.monotonic() > deadline:
                return sorted(counts) == sorted(settlement_ids) and set(counts.values()) == {1}
            time.sleep(0.2)
    finally:
        engine.dispose()


def stored_of_visit(platform: Platform, person: str, visit_id: str) -> int:
    """How many settlements of the person's visit are stored."""
    engine = settlement_engine(platform)
    with engine.connect() as connection:
        stored = connection.execute(
            sqlalchemy.select(sqlalchemy.func.count()).where(
                settlements.c.person_id == person, settlements.c.visit_id == visit_id
            )
        ).scalar_one()
    engine.dispose()
    return int(stored)


def one_moment(answers: list[httpx.Response]) -> None:
    """The settlements answered were made in one batch: they share its moment."""
    moments = {answer.json()["settled_at"] for answer in answers if answer.status_code == 201}
    assert len(moments) == 1, moments


# --- several settlements of one person in one batch --------------------------------------


def test_one_persons_settlements_in_one_batch_each_see_the_last_and_hold_the_cap(
    platform: Platform, backend: str
) -> None:
    """Eight stays of 50,000 yuan in one batch: basic insurance would pay 39,600 yuan on each,
    but its yearly cap is 150,000 yuan; each settles on the accumulators the one before left."""
    person = new_person(platform, registered_poor=True)
    visits = [stay(f"{person}-cap-{index}", f"06-{1 + index:02d}", 50_000) for index in range(8)]

    answers = in_one_batch(
        platform, backend, [(person, visit, f"{person}-{visit['id']}") for visit in visits]
    )

    assert [answer.status_code for answer in answers] == [201] * len(visits), answers[0].text
    one_moment(answers)
    made = [answer.json() for answer in answers]
    assert all(balanced(settlement) for settlement in made)
    # Three paid in full, the fourth up to the cap, the rest nothing: in the order they
    # reached the process, each on what the one before it left.
    basic = sorted(paid(settlement)["basic"] for settlement in made)
    assert basic == [0] * 4 + [31_200 * 100] + [39_600 * 100] * 3
    assert recorded_once(platform, [settlement["id"] for settlement in made])
    engine = settlement_engine(platform)
    with engine.connect() as connection:
        years = connection.execute(
            sqlalchemy.select(ledgers.c.years).where(ledgers.c.person_id == person)
        ).scalar_one()
        stored = connection.execute(
            sqlalchemy.select(sqlalchemy.func.count()).where(settlements.c.person_id == person)
        ).scalar_one()
    engine.dispose()
    assert years[str(YEAR)]["paid:basic:yearly"] == 150_000 * 100
    assert years[str(YEAR)]["stays"] == len(visits)
    assert stored == len(visits)


# --- a refusal, a retry, a reused key, a visit twice: each as alone -----------------------


def test_a_refused_settlement_fails_alone_and_the_rest_of_its_batch_settles(
    platform: Platform, backend: str
) -> None:
    good = new_person(platform, registered_poor=True)
    other = new_person(platform)
    not_enrolled = person_number()
    register_person(platform, not_enrolled)
    unknown = person_number()  # registered nowhere
    requests = [
        (good, stay(f"{good}-refused-1", "07-01", 3_000), f"{good}-refused-1"),
        (
            not_enrolled,
            stay(f"{not_enrolled}-refused-2", "07-02", 3_000),
            f"{not_enrolled}-refused-2",
        ),
        (other, stay(f"{other}-refused-3", "07-03", 3_000), f"{other}-refused-3"),
        (unknown, stay(f"{unknown}-refused-4", "07-04", 3_000), f"{unknown}-refused-4"),
        (good, stay(f"{good}-refused-5", "07-05", 3_000), f"{good}-refused-5"),
    ]

    answers = in_one_batch(platform, backend, requests)

    assert [answer.status_code for answer in answers] == [201, 422, 201, 422, 201], [
        answer.text for answer in answers
    ]
    one_moment(answers)
    for refused in (answers[1], answers[3]):
        assert refused.json()["errors"][0]["field"] == "person_id"
    made = [answer.json()["id"] for answer in answers if answer.status_code == 201]
    assert recorded_once(platform, made)
    engine = settlement_engine(platform)
    with engine.connect() as connection:
        persons = set(
            connection.execute(
                sqlalchemy.select(ledgers.c.person_id).where(
                    ledgers.c.person_id.in_([not_enrolled, unknown])
                )
            ).scalars()
        )
    engine.dispose()
    assert unknown not in persons  # no empty ledger left for a person the platform lacks


def test_a_retry_and_a_reused_key_in_a_batch_are_answered_as_alone(
    platform: Platform, backend: str
) -> None:
    client = platform.client(HOSPITAL_KEY)
    person = new_person(platform, registered_poor=True)
    first = settle(
        client, person, stay(f"{person}-again-1", "08-01", 4_000), key=f"{person}-again-1"
    )
    reused = settle(
        client, person, stay(f"{person}-again-2", "08-02", 4_000), key=f"{person}-again-2"
    )
    assert first.status_code == reused.status_code == 201

    answers = in_one_batch(
        platform,
        backend,
        [
            (person, stay(f"{person}-again-1", "08-01", 4_000), f"{person}-again-1"),  # a retry
            (person, stay(f"{person}-again-3", "08-03", 4_000), f"{person}-again-3"),
            (
                person,
                stay(f"{person}-again-4", "08-04", 9_000),
                f"{person}-again-2",
            ),  # another bill
        ],
    )

    assert [answer.status_code for answer in answers] == [201, 201, 422], [
        answer.text for answer in answers
    ]
    assert answers[0].headers.get("idempotent-replayed") == "true"
    assert answers[0].json() == first.json()
    assert answers[2].json()["errors"][0]["field"] == "Idempotency-Key"
    assert "idempotency-key-reused" in answers[2].json()["type"]
    assert recorded_once(platform, [answers[1].json()["id"]])


def test_a_visit_twice_in_one_batch_settles_once(platform: Platform, backend: str) -> None:
    person = new_person(platform, registered_poor=True)
    other = new_person(platform, registered_poor=True)
    visit = stay(f"{person}-twice-1", "09-01", 6_000)

    answers = in_one_batch(
        platform,
        backend,
        [
            (person, visit, f"{person}-twice-a"),
            (other, stay(f"{other}-twice-2", "09-02", 6_000), f"{other}-twice-2"),
            (person, visit, f"{person}-twice-b"),  # the same visit under another key
        ],
    )

    # The two of one visit reached the process in either order: the first settled it.
    made, refused = sorted((answers[0], answers[2]), key=lambda answer: answer.status_code)
    assert [made.status_code, answers[1].status_code, refused.status_code] == [201, 201, 409], [
        answer.text for answer in answers
    ]
    one_moment([made, answers[1]])
    assert "visit-already-settled" in refused.json()["type"]
    assert made.json()["id"] in refused.json()["detail"]
    assert stored_of_visit(platform, person, f"{person}-twice-1") == 1


# --- a retry racing its original at another process ---------------------------------------


def test_a_retry_racing_its_original_at_another_process_fails_nothing_else(
    platform: Platform, backend: str, tmp_path: Path
) -> None:
    """The same request at two settlement processes of one database at once, the second in a
    batch with two others: it is answered the first's settlement, the others settle. On
    PostgreSQL the batch read that the key was free before the first committed, so storing
    it breaks the key's unique constraint: the batch is settled again one by one."""
    main = platform.services["settlement"]
    url = main.env.get("DOUDI_DATABASE_URL") or f"sqlite:///{platform.directory / 'settlement.db'}"
    client = platform.client(HOSPITAL_KEY)
    racer, occupier, first_other, second_other = (
        new_person(platform, registered_poor=True) for _ in range(4)
    )
    for person in (racer, occupier):  # their ledgers exist, to be held
        assert settle(client, person, stay(f"{person}-0", "01-02", 100)).status_code == 201
    visit = stay(f"{racer}-1", "10-01", 8_000)
    # SQLite: one hold (the write lock) for all, under its busy timeout of 5 s.
    wait = QUEUE_SECONDS if backend == "postgresql" else 0.8
    second = start_service(
        "settlement",
        tmp_path,
        database_url=url,
        env={"DOUDI_ASSISTANCE_ADDRESS": main.env["DOUDI_ASSISTANCE_ADDRESS"]},
    )
    try:
        with (
            ThreadPoolExecutor(5) as pool,
            holding(platform, backend, racer) as release_racer,
            holding(platform, backend, occupier)
            if backend == "postgresql"
            else contextlib.nullcontext(release_racer) as release_occupier,
        ):
            # The second process's batch on its way waits for the occupier's ledger (the
            # write lock); the racing request and two others queue behind it.
            occupied = pool.submit(
                grpc_settle, second, occupier, stay(f"{occupier}-2", "10-02", 100)
            )
            time.sleep(wait)
            raced = pool.submit(grpc_settle, second, racer, visit)
            others = [
                pool.submit(grpc_settle, second, person, stay(f"{person}-3", "10-03", 500))
                for person in (first_other, second_other)
            ]
            time.sleep(wait)
            # The original, at the first process, waits for the racer's ledger first.
            original = pool.submit(grpc_settle, main, racer, visit)
            time.sleep(wait / 2)
            release_occupier()  # the batch of three starts, and waits for the racer's ledger
            time.sleep(wait / 2)
            release_racer()  # the original commits first, then the batch meets its key
            answers = [future_answer(future) for future in (original, raced, *others)]
            assert isinstance(future_answer(occupied), settlement_pb2.SettleResponse)
    finally:
        stop_service(second)

    made, again, *rest = answers
    assert isinstance(made, settlement_pb2.SettleResponse), made
    assert isinstance(again, settlement_pb2.SettleResponse), again
    assert {made.replayed, again.replayed} == {False, True}
    assert made.settlement == again.settlement
    assert all(isinstance(answer, settlement_pb2.SettleResponse) for answer in rest), rest
    if backend == "postgresql":
        assert "a batch of 3 settlements failed" in second.log()
    assert stored_of_visit(platform, racer, f"{racer}-1") == 1


def grpc_settle(service: Any, person: str, visit: dict[str, Any]) -> settlement_pb2.SettleResponse:
    """Settle at one settlement process directly, with the demo hospital's key."""
    admitted = date.fromisoformat(visit["admitted"])
    discharged = date.fromisoformat(visit["discharged"])
    stub = settlement_pb2_grpc.SettlementServiceStub(service.channel())
    answer: settlement_pb2.SettleResponse = stub.Settle(
        settlement_pb2.SettleRequest(
            request_id=f"{person}-{visit['id']}",
            person_id=person,
            visit=settlement_pb2.Visit(
                visit_id=visit["id"],
                visit_type=settlement_pb2.VISIT_TYPE_INPATIENT,
                admitted=from_date(admitted),
                discharged=from_date(discharged),
                items=[
                    settlement_pb2.Item(
                        code=item["code"],
                        item_class=settlement_pb2.ITEM_CLASS_A,
                        amount_fen=item["amount_fen"],
                    )
                    for item in visit["items"]
                ],
            ),
        ),
        metadata=bearer(HOSPITAL_KEY),
        timeout=60,
    )
    return answer


def future_answer(future: Future[Any]) -> Any:
    """The call's answer, or its error's status."""
    try:
        return future.result()
    except grpc.RpcError as error:
        return decode_status(error)  # type: ignore[arg-type]
