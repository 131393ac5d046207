"""The platform under faults, on PostgreSQL: processes killed, the database restarted, a
settlement process frozen, while hospitals settle through the gateway.

The platform runs as ``doudi run`` runs it (``doudi.cli.launcher.Platform``: every
process supervised, one that exits restarted after a backoff, here a short one), on a
throwaway PostgreSQL cluster of the test's own (it is restarted mid-test, which the
server the other tests share must not be). Hospitals' clients send a burst of
settlements, each with its own Idempotency-Key, and send again with the same key
whatever did not answer 201 or 200, as a hospital's system must. Afterwards:

- every settlement acknowledged is stored exactly once, and nothing else is;
- the hospitals' clearing equals the sums the acknowledged settlements paid;
- each person's yearly accumulators equal the sums of their stored settlements' increments;
- every outbox of every service is empty, and assistance recorded each settlement once.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy
from stdnum.cn import ric

from doudi.cli import demo
from doudi.cli.launcher import Backoff, Platform, free_ports
from doudi.cli.pg_cluster import Cluster
from doudi.common.settings import LOCAL_INTERNAL_TOKEN
from doudi.enrollment.v1 import enrollment_pb2, enrollment_pb2_grpc
from tests.conftest import POSTGRES_URL_ENV
from tests.services import INTERNAL
from tests.support import business_day

pytestmark = [pytest.mark.postgres, pytest.mark.xdist_group("fault-cycles")]

SERVICES = ("enrollment", "datashare", "settlement", "assistance")
KILL_CYCLES = 50
CLIENTS = 6
PERSONS = 20
YEAR = business_day().year
HOSPITAL_KEY = demo.HOSPITALS[0].api_key
HOSPITAL_ID = demo.HOSPITALS[0].hospital_id
# The gateway gives up on a call after 3 s (a frozen process: 503 within the deadline).
UPSTREAM_TIMEOUT_SECONDS = 3.0
ENV = {
    "DOUDI_UPSTREAM_TIMEOUT_SECONDS": str(UPSTREAM_TIMEOUT_SECONDS),
    "DOUDI_SHUTDOWN_GRACE_SECONDS": "1",
    "DOUDI_DELIVERY_RETRY_SECONDS": "0.5",
}
SETTLE_DEADLINE_SECONDS = 120.0
"""How long a client goes on sending one settlement again before the test fails."""


def persons() -> list[str]:
    numbers = []
    for index in range(PERSONS):
        base = f"411323{date(1950, 1, 1) + timedelta(days=index * 401):%Y%m%d}{index:03d}"
        numbers.append(base + ric.calc_check_digit(base + "0"))
    return numbers


@dataclass
class Ledger:
    """What the hospitals' clients were told."""

    acknowledged: dict[str, dict[str, Any]] = field(default_factory=dict)
    outcomes: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Burst:
    """Clients settling until told to stop; each settles one visit at a time, sending it
    again with the same key until it is answered 201 or 200."""

    base_url: str
    people: list[str]
    ledger: Ledger
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for index in range(CLIENTS):
            thread = threading.Thread(target=self._client, args=(index,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(SETTLE_DEADLINE_SECONDS + 30)
        assert not any(thread.is_alive() for thread in self.threads)
        assert not self.ledger.failures, self.ledger.failures[:5]

    def _client(self, index: int) -> None:
        chooser = random.Random(index)
        headers = {"Authorization": f"Bearer {HOSPITAL_KEY}"}
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=30) as client:
            while not self.stop.is_set():
                key = f"fault-{uuid.uuid4().hex}"
                self._settle(client, key, self._bill(key, chooser))

    def _bill(self, key: str, chooser: random.Random) -> dict[str, Any]:
        amount = chooser.randrange(10_000, 300_000)
        return {
            "person_id": chooser.choice(self.people),
            "visit": {
                "id": key,
                "type": "inpatient",
                "admitted": f"{YEAR}-01-02",
                "discharged": f"{YEAR}-01-05",
                "items": [{"code": "X01", "class": "A", "amount_fen": amount}],
            },
        }

    def _settle(self, client: httpx.Client, key: str, bill: dict[str, Any]) -> None:
        deadline = time.monotonic() + SETTLE_DEADLINE_SECONDS
        while time.monotonic() < deadline:
            try:
                answer = client.post("/v1/settlements", json=bill, headers={"Idempotency-Key": key})
            except httpx.TransportError:
                time.sleep(0.2)  # the gateway itself restarting
                continue
            with self.ledger.lock:
                self.ledger.outcomes[answer.status_code] += 1
            if answer.status_code in (200, 201):
                with self.ledger.lock:
                    self.ledger.acknowledged[key] = answer.json()
                return
            # 503 (unavailable, outcome unknown) and 409 (the same key still in flight in
            # a process): send it again; anything else is a failure of the test.
            if answer.status_code not in (409, 503):
                with self.ledger.lock:
                    self.ledger.failures.append(f"{key}: {answer.status_code} {answer.text}")
                return
            time.sleep(0.1)
        with self.ledger.lock:
            self.ledger.failures.append(f"{key}: not settled within {SETTLE_DEADLINE_SECONDS} s")


class Supervisor:
    """What ``doudi run`` does while it runs: restart the processes that exited."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.events: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.events.extend(self.platform.supervise())

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Running:
    platform: Platform
    cluster: Cluster
    urls: dict[str, str]
    supervisor: Supervisor
    people: list[str]
    ledger: Ledger = field(default_factory=Ledger)
    """Every settlement acknowledged in the module: the tests add to one platform."""
    days: set[date] = field(default_factory=set)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    if not os.environ.get(POSTGRES_URL_ENV):
        pytest.skip(f"needs PostgreSQL: {POSTGRES_URL_ENV} is not set")
    directory = tmp_path_factory.mktemp("fault-cycles")
    cluster = Cluster()
    cluster.start()
    with contextlib.ExitStack() as stack:
        stack.callback(cluster.remove)
        admin = sqlalchemy.create_engine(cluster.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            for name in SERVICES:
                connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        admin.dispose()
        urls = {name: cluster.admin_url.rsplit("/", 1)[0] + f"/{name}" for name in SERVICES}
        ports = free_ports(6)
        platform = Platform(
            directory,
            ports[0],
            ports[5],
            urls,
            settlement_processes=2,
            env=ENV,
            backoff=Backoff(first=0.2, cap=1.0, reset_after=5.0),
        )
        stack.callback(platform.stop)
        platform.start()
        platform.wait_ready()
        platform.load_demo(LOCAL_INTERNAL_TOKEN, cases=False)
        people = persons()
        register(platform, people)
        wait_for(lambda: covered(urls["settlement"]) >= len(people), "coverage reaches settlement")
        supervisor = Supervisor(platform)
        stack.callback(supervisor.close)
        yield Running(platform, cluster, urls, supervisor, people)


def register(platform: Platform, people: list[str]) -> None:
    from doudi.common.grpc_client import sync_channel

    with sync_channel(f"127.0.0.1:{platform.ports['enrollment']}") as channel:
        stub = enrollment_pb2_grpc.EnrollmentServiceStub(channel)
        for person_id in people:
            stub.CreatePerson(
                enrollment_pb2.CreatePersonRequest(
                    person=enrollment_pb2.Person(
                        person_id=person_id,
                        name="测试",
                        household_id=f"fault-{person_id[-6:]}",
                        region="411323",
                    )
                ),
                metadata=INTERNAL,
            )
            stub.CreateEnrolment(
                enrollment_pb2.CreateEnrolmentRequest(
                    enrolment=enrollment_pb2.Enrolment(
                        person_id=person_id,
                        year=YEAR,
                        scheme=enrollment_pb2.SCHEME_RESIDENT,
                        premium_fen=40000,
                        premium_payer=enrollment_pb2.PREMIUM_PAYER_PERSON,
                    )
                ),
                metadata=INTERNAL,
            )


def scalar(url: str, sql: str) -> Any:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.exec_driver_sql(sql).scalar()
    finally:
        engine.dispose()


def covered(url: str) -> int:
    return int(scalar(url, "SELECT count(*) FROM person_coverage WHERE person_id LIKE '411323%%'"))


def wait_for(condition: Any, what: str, seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if condition():
                return
        except sqlalchemy.exc.OperationalError:
            pass  # the database restarting
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.2)


def process_names(platform: Platform) -> list[str]:
    return [
        name for part in platform.parts if part.name != "gateway" for name, _ in part.processes()
    ]


def kill(platform: Platform, name: str) -> None:
    process = platform.processes.get(name)
    if process is not None and process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)


def check_invariants(running: Running) -> None:
    """The four promises, once every outbox has emptied."""
    urls = running.urls
    days = running.days
    wait_for(lambda: outboxes_empty(urls), "every outbox empties", 120)
    acknowledged = running.ledger.acknowledged
    engine = sqlalchemy.create_engine(urls["settlement"])
    try:
        with engine.connect() as connection:
            stored = connection.exec_driver_sql(
                "SELECT request_id, settlement_id, fund_paid_fen, person_id, year, deltas "
                "FROM settlements WHERE request_id LIKE 'fault-%%' AND hospital_id = %(h)s",
                {"h": HOSPITAL_ID},
            ).all()
            ledgers = {
                row.person_id: row.years
                for row in connection.exec_driver_sql("SELECT person_id, years FROM ledgers")
            }
            all_settlements = connection.exec_driver_sql(
                "SELECT person_id, year, deltas FROM settlements WHERE state = 'settled'"
            ).all()
    finally:
        engine.dispose()
    # Every settlement acknowledged is stored exactly once, as acknowledged; nothing else is.
    keys = Counter(row.request_id for row in stored)
    assert all(count == 1 for count in keys.values())
    assert set(keys) == set(acknowledged), (
        f"{len(set(keys) - set(acknowledged))} stored but never acknowledged, "
        f"{len(set(acknowledged) - set(keys))} acknowledged but not stored"
    )
    for row in stored:
        assert acknowledged[row.request_id]["id"] == row.settlement_id
        assert acknowledged[row.request_id]["fund_paid_fen"] == row.fund_paid_fen
    # The clearing equals what the acknowledged settlements paid (the demo's own hospital
    # settles nothing else here).
    with httpx.Client(
        base_url=running.platform.gateway_url,
        headers={"Authorization": f"Bearer {HOSPITAL_KEY}"},
        timeout=30,
    ) as client:
        net = 0
        for day in sorted(days):
            answer = client.get(f"/v1/clearing?date={day.isoformat()}")
            assert answer.status_code == 200, answer.text
            net += answer.json()["net_fen"]
    assert net == sum(body["fund_paid_fen"] for body in acknowledged.values())
    # Each person's accumulators equal the sums of their stored settlements' increments.
    sums: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    for row in all_settlements:
        sums[row.person_id][str(row.year)].update(
            {key: int(value) for key, value in row.deltas.items()}
        )
    for person_id, years in sums.items():
        held = ledgers[person_id]
        for year, totals in years.items():
            expected = {key: value for key, value in totals.items() if value}
            actual = {key: int(value) for key, value in held[year].items() if int(value)}
            assert actual == expected, f"{person_id} {year}"
    # Assistance recorded each settlement exactly once.
    recorded = int(
        scalar(
            urls["assistance"],
            "SELECT count(DISTINCT settlement_id) FROM settlement_events WHERE kind = 'settled'",
        )
    )
    total = int(scalar(urls["settlement"], "SELECT count(*) FROM settlements"))
    assert recorded == total


OUTBOXES = {
    "enrollment": ("coverage_deliveries",),
    "datashare": ("status_deliveries", "roster_deliveries", "warning_decision_deliveries"),
    "settlement": ("event_outbox",),
    "assistance": ("assertion_deliveries", "warning_deliveries"),
}


def outboxes_empty(urls: dict[str, str]) -> bool:
    return all(
        int(scalar(urls[service], f"SELECT count(*) FROM {table}")) == 0
        for service, tables in OUTBOXES.items()
        for table in tables
    )


def test_fifty_kills_of_random_service_processes_lose_and_double_nothing(
    running: Running,
) -> None:
    platform = running.platform
    burst = Burst(platform.gateway_url, running.people, running.ledger)
    running.days.add(business_day())
    chooser = random.Random(20)
    names = process_names(platform)
    burst.start()
    killed: Counter[str] = Counter()
    try:
        for _ in range(KILL_CYCLES):
            time.sleep(chooser.uniform(0.3, 0.9))
            name = chooser.choice(names)
            kill(platform, name)
            killed[name] += 1
    finally:
        burst.finish()
    running.days.add(business_day())
    wait_for(lambda: all_up(platform), "every process is back")
    assert sum(killed.values()) == KILL_CYCLES
    assert len(burst.ledger.acknowledged) > 100
    assert burst.ledger.outcomes[503] > 0  # the kills were felt
    check_invariants(running)


def all_up(platform: Platform) -> bool:
    return all(process.poll() is None for process in platform.processes.values()) and all(
        platform._ready(part, port) for part in platform.parts for _, port in part.processes()
    )


def test_postgresql_restarted_mid_burst_loses_nothing_and_the_services_recover(
    running: Running,
) -> None:
    platform = running.platform
    burst = Burst(platform.gateway_url, running.people, running.ledger)
    running.days.add(business_day())
    settled_before = len(running.ledger.acknowledged)
    burst.start()
    try:
        time.sleep(2)
        running.cluster.restart("immediate")  # as a crash: recovery from the WAL
        time.sleep(3)
    finally:
        burst.finish()
    running.days.add(business_day())
    # The services recovered by themselves: no process had to be restarted.
    before = len(running.supervisor.events)
    wait_for(lambda: all_up(platform), "every service answers again")
    assert len(running.supervisor.events) == before
    assert len(running.ledger.acknowledged) > settled_before
    check_invariants(running)


def test_a_frozen_settlement_process_answers_503_in_time_and_a_retry_settles_once(
    running: Running,
) -> None:
    platform = running.platform
    frozen = [platform.processes[name] for name in ("settlement", "settlement-2")]
    for process in frozen:
        os.kill(process.pid, signal.SIGSTOP)
    key = f"fault-frozen-{uuid.uuid4().hex}"
    burst = Burst(platform.gateway_url, running.people, running.ledger)
    bill = burst._bill(key, random.Random(1))
    headers = {"Authorization": f"Bearer {HOSPITAL_KEY}", "Idempotency-Key": key}
    try:
        started = time.monotonic()
        answer = httpx.post(
            f"{platform.gateway_url}/v1/settlements", json=bill, headers=headers, timeout=30
        )
        waited = time.monotonic() - started
    finally:
        for process in frozen:
            os.kill(process.pid, signal.SIGCONT)
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert waited < UPSTREAM_TIMEOUT_SECONDS + 1.5
    # The retry with the same key (the frozen call may be finishing: 409, then 200 or 201).
    with httpx.Client(
        base_url=platform.gateway_url, headers={"Authorization": f"Bearer {HOSPITAL_KEY}"}
    ) as client:
        burst._settle(client, key, bill)
    assert not running.ledger.failures
    assert key in running.ledger.acknowledged
    running.days.add(business_day())
    assert (
        int(
            scalar(
                running.urls["settlement"],
                f"SELECT count(*) FROM settlements WHERE request_id = '{key}'",
            )
        )
        == 1
    )
    check_invariants(running)
