"""Admissions at the window (入院登记) and stays settled against them: the real platform on
SQLite and PostgreSQL, with the demo data, through the gateway. Helpers: tests/test_eligibility.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from typing import Any

import grpc
import httpx
import pytest
import sqlalchemy

from doudi.cli import demo
from doudi.common.protos import from_date
from doudi.settlement.v1 import settlement_pb2
from services.settlement.tables import admissions
from tests.platform import Platform, demo_platforms
from tests.services import INTERNAL
from tests.support import fields, problem
from tests.test_eligibility import (
    TODAY,
    XIXIA,
    XIXIA_KEY,
    YEAR,
    insure,
    new_number,
    reads,
    rpc_violations,
    settle,
    settlement_engine,
    settlement_stub,
    visit,
)

COUNTY = demo.HOSPITALS[0].hospital_id
TOWNSHIP_KEY = demo.HOSPITALS[1].api_key


@pytest.fixture(scope="module")
def platforms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Platform]]:
    with demo_platforms(tmp_path_factory, "admissions", YEAR) as on:
        yield on


@pytest.fixture
def platform(backend: str, platforms: Callable[[str], Platform]) -> Platform:
    return platforms(backend)


def admit(
    client: httpx.Client, person: str, key: str, day: date = TODAY, **extra: Any
) -> httpx.Response:
    return client.post(
        "/v1/admissions",
        json={"person_id": person, "admitted": day.isoformat(), **extra},
        headers={"Idempotency-Key": key},
    )


def admitted(client: httpx.Client, person: str, key: str) -> dict[str, Any]:
    answer = admit(client, person, key)
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def poor(platform: Platform) -> str:
    return insure(
        platform, XIXIA, statuses=(("registered_poor", "poverty_office", date(2016, 1, 1)),)
    )


def stored_admissions(platform: Platform) -> list[tuple[str, str]]:
    engine = settlement_engine(platform)
    with engine.connect() as connection:
        rows = connection.execute(
            sqlalchemy.select(admissions.c.admission_id, admissions.c.state)
        ).all()
    engine.dispose()
    return sorted((row.admission_id, row.state) for row in rows)


def test_an_admission_answers_the_eligibility_of_its_day_once_per_key(platform: Platform) -> None:
    person = poor(platform)
    client = platform.client(XIXIA_KEY)
    first = admit(client, person, f"{person}-in")
    assert first.status_code == 201, first.text
    body = first.json()
    assert first.headers["Location"] == f"/v1/admissions/{body['id']}"
    assert "Idempotent-Replayed" not in first.headers
    assert body | {"id": "", "created_at": ""} == {
        "id": "",
        "hospital_id": COUNTY,
        "person_id": person,
        "admitted": TODAY.isoformat(),
        "referred": False,
        "out_of_area": False,
        "no_deposit": True,
        "no_deposit_rule": "poverty_window",
        "no_deposit_reason": body["no_deposit_reason"],
        "policy": "xixia-2017",
        "state": "admitted",
        "settlement_id": None,
        "created_at": "",
    }
    again = admit(client, person, f"{person}-in")
    assert (again.status_code, again.headers["Idempotent-Replayed"]) == (201, "true")
    assert again.json() == body
    assert client.get(f"/v1/admissions/{body['id']}").json() == body
    # The same key for another admission: refused.
    reused = problem(admit(client, person, f"{person}-in", referred=True), 422)
    assert reused["type"] == "urn:doudi:problem:idempotency-key-reused"
    assert reads(platform, person) == [
        (COUNTY, "Admit"),
        (COUNTY, "Admit"),
        (COUNTY, "GetAdmission"),
    ]

    ordinary = insure(platform, XIXIA)
    plain = admitted(client, ordinary, f"{ordinary}-in")
    assert (plain["no_deposit"], plain["no_deposit_rule"]) == (False, None)


def test_a_stay_settled_against_its_admission_discharges_it_and_a_reversal_reopens_it(
    platform: Platform,
) -> None:
    person = poor(platform)
    client = platform.client(XIXIA_KEY)
    admission = admitted(client, person, f"{person}-in")
    url = f"/v1/admissions/{admission['id']}"

    stay = visit(f"{person}-stay", "inpatient", 30_000)
    settled = settle(client, person, stay, f"{person}-s1", admission_id=admission["id"])
    assert settled.status_code == 201, settled.text
    settlement = settled.json()
    assert settlement["admission_id"] == admission["id"]
    discharged = client.get(url).json()
    assert (discharged["state"], discharged["settlement_id"]) == ("discharged", settlement["id"])
    # The same request again: the same settlement, nothing paid twice.
    retried = settle(client, person, stay, f"{person}-s1", admission_id=admission["id"])
    assert (retried.status_code, retried.headers.get("Idempotent-Replayed")) == (201, "true")
    assert retried.json()["id"] == settlement["id"]
    # Another settlement against it: refused, naming the settlement that discharged it.
    other = visit(f"{person}-stay-2", "inpatient", 1_000)
    refused = problem(
        settle(client, person, other, f"{person}-s2", admission_id=admission["id"]), 409
    )
    assert refused["type"] == "urn:doudi:problem:admission-already-settled"
    assert refused["settlement_id"] == settlement["id"]
    assert problem(client.post(f"{url}/cancellation"), 409)["settlement_id"] == settlement["id"]

    reversed_ = client.post(
        f"/v1/settlements/{settlement['id']}/reversal", headers={"Idempotency-Key": f"{person}-r"}
    )
    assert reversed_.status_code == 200, reversed_.text
    reopened = client.get(url).json()
    assert (reopened["state"], reopened["settlement_id"]) == ("admitted", None)
    again = settle(client, person, stay, f"{person}-s3", admission_id=admission["id"])
    assert again.status_code == 201, again.text
    assert client.get(url).json()["settlement_id"] == again.json()["id"]


def test_a_settlement_without_an_admission_works_as_before(platform: Platform) -> None:
    person = insure(platform, XIXIA)
    answer = settle(
        platform.client(XIXIA_KEY), person, visit(f"{person}-v", "inpatient", 5_000), f"{person}-v"
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["admission_id"] is None


def test_another_hospitals_admission_is_not_found_and_not_settled_against(
    platform: Platform,
) -> None:
    person = poor(platform)
    admission = admitted(platform.client(XIXIA_KEY), person, f"{person}-in")
    township = platform.client(TOWNSHIP_KEY)
    body = problem(township.get(f"/v1/admissions/{admission['id']}"), 404)
    assert body["errors"] == [{"field": "admission_id", "detail": body["errors"][0]["detail"]}]
    problem(township.post(f"/v1/admissions/{admission['id']}/cancellation"), 404)
    stay = visit(f"{person}-stay", "inpatient", 1_000)
    refused = problem(
        settle(township, person, stay, f"{person}-t", admission_id=admission["id"]), 422
    )
    assert fields(refused) == ["admission_id"]
    assert (
        platform.client(XIXIA_KEY).get(f"/v1/admissions/{admission['id']}").json()["state"]
        == "admitted"
    )


def test_a_settlement_must_fit_its_admission(platform: Platform) -> None:
    person = poor(platform)
    client = platform.client(XIXIA_KEY)
    admission = admitted(client, person, f"{person}-in")
    someone_else = poor(platform)
    earlier = TODAY - timedelta(days=1)
    cases = [
        (someone_else, visit(f"{person}-a", "inpatient", 1_000), "admission_id"),
        (person, visit(f"{person}-b", "outpatient_general", 100), "visit.type"),
        (
            person,
            {**visit(f"{person}-c", "inpatient", 1_000), "admitted": earlier.isoformat()},
            "visit.admitted",
        ),
    ]
    for index, (who, stay, field) in enumerate(cases):
        answer = settle(client, who, stay, f"{person}-bad-{index}", admission_id=admission["id"])
        assert fields(problem(answer, 422)) == [field], answer.text
    too_long = settle(
        client, person, visit(f"{person}-d", "inpatient", 1), f"{person}-d", admission_id="x" * 37
    )
    assert fields(problem(too_long, 422)) == ["admission_id"]
    assert client.get(f"/v1/admissions/{admission['id']}").json()["state"] == "admitted"
    listed = client.get("/v1/settlements", params={"date": TODAY.isoformat()}).json()
    assert not [s for s in listed["settlements"] if s["person_id"] in (person, someone_else)]


def test_a_cancelled_admission_is_cancelled_once_and_settles_nothing(platform: Platform) -> None:
    person = poor(platform)
    client = platform.client(XIXIA_KEY)
    admission = admitted(client, person, f"{person}-in")
    url = f"/v1/admissions/{admission['id']}/cancellation"
    first = client.post(url)
    assert (first.status_code, first.json()["state"]) == (200, "cancelled")
    assert client.post(url).json() == first.json()
    refused = problem(
        settle(
            client,
            person,
            visit(f"{person}-s", "inpatient", 1_000),
            f"{person}-s",
            admission_id=admission["id"],
        ),
        409,
    )
    assert refused["type"] == "urn:doudi:problem:admission-cancelled"


def test_concurrent_settlements_against_one_admission_discharge_it_once(platform: Platform) -> None:
    person = poor(platform)
    admission = admitted(platform.client(XIXIA_KEY), person, f"{person}-in")

    def send(index: int) -> httpx.Response:
        with httpx.Client(
            base_url=platform.base_url, headers={"Authorization": f"Bearer {XIXIA_KEY}"}, timeout=60
        ) as own:
            stay = visit(f"{person}-{index}", "inpatient", 10_000)
            return settle(own, person, stay, f"{person}-{index}", admission_id=admission["id"])

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(send, range(6)))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [201, 409, 409, 409, 409, 409], [a.text for a in answers]
    (won,) = [answer.json() for answer in answers if answer.status_code == 201]
    found = platform.client(XIXIA_KEY).get(f"/v1/admissions/{admission['id']}").json()
    assert (found["state"], found["settlement_id"]) == ("discharged", won["id"])
    listed = platform.client(XIXIA_KEY).get("/v1/settlements", params={"date": TODAY.isoformat()})
    assert [s["id"] for s in listed.json()["settlements"] if s["person_id"] == person] == [
        won["id"]
    ]


def test_bad_admissions_are_refused_and_change_nothing(platform: Platform) -> None:
    person = poor(platform)
    client = platform.client(XIXIA_KEY)
    before = stored_admissions(platform)
    tomorrow = (TODAY + timedelta(days=1)).isoformat()
    for body, field in (
        ({"person_id": person, "admitted": tomorrow}, "admitted"),
        ({"person_id": person, "admitted": "2024-13-01"}, "admitted"),
        ({"person_id": person}, "admitted"),
        ({"person_id": person, "admitted": TODAY.isoformat(), "referred": "yes"}, "referred"),
        ({"person_id": person, "admitted": TODAY.isoformat(), "ward": 3}, "ward"),
        ({"person_id": "411323", "admitted": TODAY.isoformat()}, "person_id"),
        ({"person_id": new_number(XIXIA), "admitted": TODAY.isoformat()}, "person_id"),
    ):
        answer = client.post(
            "/v1/admissions", json=body, headers={"Idempotency-Key": f"{person}-bad"}
        )
        assert fields(problem(answer, 422)) == [field], body
    # Not enrolled for the year of admission.
    last_year = problem(admit(client, person, f"{person}-ly", date(YEAR - 1, 6, 1)), 422)
    assert last_year["type"] == "urn:doudi:problem:not-enrolled"
    assert fields(
        problem(
            client.post(
                "/v1/admissions", json={"person_id": person, "admitted": TODAY.isoformat()}
            ),
            400,
        )
    ) == ["Idempotency-Key"]
    problem(
        client.post(
            "/v1/admissions",
            content=b"{",
            headers={"content-type": "application/json", "Idempotency-Key": "k"},
        ),
        400,
    )
    problem(
        client.post(
            "/v1/admissions",
            content=b"{}",
            headers={"content-type": "text/plain", "Idempotency-Key": "k"},
        ),
        415,
    )
    assert fields(problem(client.get(f"/v1/admissions/{'x' * 37}"), 400)) == ["admission_id"]
    assert fields(problem(client.post(f"/v1/admissions/{'x' * 37}/cancellation"), 400)) == [
        "admission_id"
    ]
    problem(client.get("/v1/admissions/00000000-0000-0000-0000-000000000000"), 404)

    stub = settlement_stub(platform)
    for request, field in (
        (settlement_pb2.AdmitRequest(request_id="k", person_id=person), "admitted"),
        (settlement_pb2.AdmitRequest(person_id=person, admitted=from_date(TODAY)), "request_id"),
        (
            settlement_pb2.AdmitRequest(request_id="k", person_id="1", admitted=from_date(TODAY)),
            "person_id",
        ),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            stub.Admit(request, metadata=(("authorization", f"Bearer {XIXIA_KEY}"),))
        assert rpc_violations(refused.value) == (grpc.StatusCode.INVALID_ARGUMENT, [field])
    # The platform reads any admission but admits no one: a hospital's desk does.
    with pytest.raises(grpc.RpcError) as refused:
        stub.Admit(
            settlement_pb2.AdmitRequest(
                request_id="k", person_id=person, admitted=from_date(TODAY)
            ),
            metadata=INTERNAL,
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    for bad in (
        settlement_pb2.GetAdmissionRequest(),
        settlement_pb2.GetAdmissionRequest(admission_id="x" * 37),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            stub.GetAdmission(bad, metadata=INTERNAL)
        assert rpc_violations(refused.value) == (grpc.StatusCode.INVALID_ARGUMENT, ["admission_id"])
    assert stored_admissions(platform) == before
    assert reads(platform, person) == []


def test_the_platform_reads_any_admission_and_is_audited(platform: Platform) -> None:
    person = poor(platform)
    admission = admitted(platform.client(XIXIA_KEY), person, f"{person}-in")
    found = (
        settlement_stub(platform)
        .GetAdmission(
            settlement_pb2.GetAdmissionRequest(admission_id=admission["id"]), metadata=INTERNAL
        )
        .admission
    )
    assert (found.hospital_id, found.no_deposit_rule) == (COUNTY, "poverty_window")
    assert reads(platform, person) == [(COUNTY, "Admit"), ("platform", "GetAdmission")]
