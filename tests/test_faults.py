"""The gateway when the settlement service fails: 503 problem+json with Retry-After, never 500.

The real platform, with the demo data; the settlement process is killed
(SIGKILL, as a crash) before requests or while they are in flight, and
restarted on its port afterwards. A read that fails answers the plain
``unavailable`` problem; a settlement or reversal the gateway gave up on may
still have been made (the deadline passed, the connection broke after the
request went out, the gateway stopped), so it answers ``outcome-unknown``:
send it again with the same Idempotency-Key, which answers the one outcome.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from doudi.cli import demo
from tests.platform import Platform, demo_platforms, start_gateway
from tests.services import start_service, stop_service
from tests.support import business_day

YEAR = business_day().year
HOSPITAL_KEY = demo.HOSPITALS[0].api_key
PERSON = demo.REGISTERED_POOR.person_id
# The gateway gives up on a call after 5 s here (10 s by default) and stops within 2 s
# (tests.services.service_env), so a call still waiting when it stops is cut short. It
# remembers the hospital's key for the whole module: a request that fails while the key
# is being resolved never sent its settlement, and answers `unavailable`.
GATEWAY = {"DOUDI_UPSTREAM_TIMEOUT_SECONDS": "5", "DOUDI_HOSPITAL_CACHE_SECONDS": "3600"}
PROBLEM_JSON = "application/problem+json"
UNAVAILABLE = "urn:doudi:problem:unavailable"
OUTCOME_UNKNOWN = "urn:doudi:problem:outcome-unknown"


@pytest.fixture(scope="module")
def platforms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Platform]]:
    with demo_platforms(tmp_path_factory, "faults", YEAR, GATEWAY) as on:
        yield on


@pytest.fixture
def platform(backend: str, platforms: Callable[[str], Platform]) -> Iterator[Platform]:
    platform = platforms(backend)
    yield platform
    # Every test leaves the settlement service and the gateway running for the next.
    if platform.services["settlement"].process.poll() is not None:
        restart_settlement(platform)
    if platform.gateway is None or platform.gateway.poll() is not None:
        start_gateway(platform, GATEWAY)


def restart_settlement(platform: Platform) -> None:
    """Start the settlement service again on its port, on its database."""
    old = platform.services["settlement"]
    platform.services["settlement"] = start_service(
        "settlement",
        platform.directory,
        database_url=old.env.get("DOUDI_DATABASE_URL"),
        env={"DOUDI_PORT": str(old.port)},  # where the gateway looks for it
    )


def kill_settlement(platform: Platform) -> None:
    assert stop_service(platform.services["settlement"], signal.SIGKILL) == -signal.SIGKILL


def hospital_client(platform: Platform) -> httpx.Client:
    """A client of the demo hospital, whose key the gateway has resolved (and remembers)."""
    client = platform.client(HOSPITAL_KEY)
    assert client.get(f"/v1/clearing?date={business_day().isoformat()}").status_code == 200
    return client


def bill(visit_id: str) -> dict[str, Any]:
    return {
        "person_id": PERSON,
        "visit": {
            "id": visit_id,
            "type": "inpatient",
            "admitted": f"{YEAR}-01-02",
            "discharged": f"{YEAR}-01-05",
            "items": [{"code": "X01", "class": "A", "amount_fen": 100_000}],
        },
    }


def settle(client: httpx.Client, key: str) -> httpx.Response:
    return client.post("/v1/settlements", json=bill(key), headers={"Idempotency-Key": key})


def assert_unavailable(answer: httpx.Response, problem_type: str) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == PROBLEM_JSON
    assert int(answer.headers["retry-after"]) >= 1
    body = answer.json()
    assert body["type"] == problem_type, body
    assert body["status"] == 503
    if problem_type == OUTCOME_UNKNOWN:
        assert "Idempotency-Key" in body["detail"]


def test_with_settlement_down_a_read_is_unavailable_and_a_write_outcome_unknown(
    platform: Platform,
) -> None:
    client = hospital_client(platform)
    made = settle(client, "down-0")
    assert made.status_code == 201, made.text
    kill_settlement(platform)

    settlement = f"/v1/settlements/{made.json()['id']}"
    with ThreadPoolExecutor(5) as pool:  # each waits for the gateway's timeout
        clearing = pool.submit(client.get, f"/v1/clearing?date={business_day().isoformat()}")
        found = pool.submit(client.get, settlement)
        settled = pool.submit(settle, client, "down-1")
        reversed_ = pool.submit(
            client.post, f"{settlement}/reversal", headers={"Idempotency-Key": "undo-down"}
        )
        # Another hospital, whose key the gateway has yet to resolve: the settlement was
        # never sent.
        unsent = pool.submit(settle, platform.client(demo.HOSPITALS[1].api_key), "down-2")
        assert_unavailable(unsent.result(), UNAVAILABLE)
        assert_unavailable(clearing.result(), UNAVAILABLE)
        assert_unavailable(found.result(), UNAVAILABLE)
        assert_unavailable(settled.result(), OUTCOME_UNKNOWN)
        assert_unavailable(reversed_.result(), OUTCOME_UNKNOWN)
    health = client.get("/healthz")
    assert health.status_code == 503
    assert health.json()["services"]["settlement"] == "UNAVAILABLE"

    restart_settlement(platform)
    # The advice holds: the same key again answers the one outcome.
    assert settle(client, "down-1").status_code == 201
    again = settle(client, "down-1")
    assert again.headers.get("idempotent-replayed") == "true"


def test_calls_in_flight_when_settlement_is_killed_answer_503_and_a_retry_settles_once(
    platform: Platform,
) -> None:
    client = hospital_client(platform)
    keys = [f"flight-{number}" for number in range(40)]
    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(settle, client, key) for key in keys]
        while sum(future.done() for future in futures) < 4:
            time.sleep(0.005)
        kill_settlement(platform)
        answers = dict(zip(keys, (future.result() for future in futures), strict=True))

    statuses = sorted({answer.status_code for answer in answers.values()})
    assert set(statuses) <= {201, 503}, statuses
    assert 503 in statuses, "nothing was in flight when the process was killed"
    for answer in answers.values():
        if answer.status_code == 503:
            assert_unavailable(answer, OUTCOME_UNKNOWN)

    restart_settlement(platform)
    retried = {key: settle(client, key) for key in keys}
    assert all(answer.status_code == 201 for answer in retried.values()), retried
    for key, answer in answers.items():
        if answer.status_code == 201:  # acknowledged before the crash: the same settlement
            assert retried[key].json()["id"] == answer.json()["id"]
            assert retried[key].headers.get("idempotent-replayed") == "true"
    assert len({answer.json()["id"] for answer in retried.values()}) == len(keys)


def test_a_call_still_waiting_when_the_gateway_stops_answers_503_not_500(
    platform: Platform,
) -> None:
    """Before ``doudi run`` restarted crashed services it stopped the platform, and a
    request still waiting for settlement was cut off by the gateway's shutdown: 500
    text/plain."""
    client = hospital_client(platform)
    kill_settlement(platform)
    with ThreadPoolExecutor(4) as pool:
        writes = [pool.submit(settle, client, f"stopping-{number}") for number in range(2)]
        read = pool.submit(client.get, f"/v1/clearing?date={business_day().isoformat()}")
        time.sleep(0.5)  # the calls wait for settlement (within the 5 s timeout)
        assert platform.gateway is not None
        platform.gateway.send_signal(signal.SIGTERM)  # stops within 2 s
        for write in writes:
            assert_unavailable(write.result(), OUTCOME_UNKNOWN)
        assert_unavailable(read.result(), UNAVAILABLE)
    assert platform.gateway.wait(timeout=15) == 0
