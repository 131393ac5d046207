"""The admission desk's eligibility answer and reformed hospitals: the real platform (four
services and the gateway, subprocesses) on SQLite and PostgreSQL, with the demo data.

Each test registers persons and hospitals of its own. A person's coverage and statuses are
sent to settlement as enrollment and the hub send them (``RecordPersonCoverage``,
``RecordPersonStatuses``, with the internal token); certificates and registrations, which
the contract does not carry yet, are added to settlement's copy under the keys
``services.settlement.service.coverage_certificates`` and ``coverage_registrations`` read.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import grpc
import httpx
import pytest
import sqlalchemy
from google.type import date_pb2

from doudi.cli import demo
from doudi.common.enums import (
    SETTLEMENT_AGENCIES,
    SETTLEMENT_EMPLOYMENTS,
    SETTLEMENT_SCHEMES,
    SETTLEMENT_STATUSES,
)
from doudi.common.errors import decode_status
from doudi.common.protos import from_date
from doudi.settlement.v1 import settlement_pb2, settlement_pb2_grpc
from services.settlement.tables import person_coverage, person_reads
from tests.platform import Platform, demo_platforms
from tests.services import INTERNAL
from tests.support import business_day, fields, problem, with_check_digit
from tests.test_credentials import doudi

TODAY = business_day()
YEAR = TODAY.year
XIXIA, TAISHAN, TIANJIN = "411323", "440781", "120000"
XIXIA_KEY = demo.HOSPITALS[0].api_key  # demo-xixia-2: level 2, Xixia
_serial = itertools.count(1)


@pytest.fixture(scope="module")
def platforms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Platform]]:
    with demo_platforms(tmp_path_factory, "eligibility", YEAR) as on:
        yield on


@pytest.fixture
def platform(backend: str, platforms: Callable[[str], Platform]) -> Platform:
    return platforms(backend)


# --- helpers (tests/test_admissions.py uses them too) ------------------------------------


def settlement_stub(platform: Platform) -> settlement_pb2_grpc.SettlementServiceStub:
    return settlement_pb2_grpc.SettlementServiceStub(platform.services["settlement"].channel())


def settlement_engine(platform: Platform) -> sqlalchemy.Engine:
    url = platform.services["settlement"].env.get("DOUDI_DATABASE_URL") or (
        f"sqlite:///{platform.directory / 'settlement.db'}"
    )
    return sqlalchemy.create_engine(url)


def new_number(region: str) -> str:
    """An identity number of ``region`` of this test alone (registered nowhere)."""
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    serial = next(_serial)
    return with_check_digit(
        f"{region}{1970 + worker:04d}{1 + serial // 28 % 12:02d}{1 + serial % 28:02d}"
        f"{serial // 336 % 1000:03d}"
    )


def insure(
    platform: Platform,
    region: str,
    *,
    scheme: str = "resident",
    employment: str | None = None,
    statuses: tuple[tuple[str, str, date], ...] = (),
    certificates: list[list[Any]] | None = None,
    registrations: list[list[Any]] | None = None,
) -> str:
    """A person of ``region`` enrolled this year, holding ``statuses`` ((status, agency,
    from), open-ended), as settlement's copies hold them."""
    number = new_number(region)
    stub = settlement_stub(platform)
    stub.RecordPersonCoverage(
        settlement_pb2.RecordPersonCoverageRequest(
            persons=[
                settlement_pb2.PersonCoverage(
                    person_id=number,
                    version=1,
                    region=region,
                    enrolments=[
                        settlement_pb2.Enrolment(
                            year=YEAR,
                            scheme=SETTLEMENT_SCHEMES.value(scheme),
                            employment=SETTLEMENT_EMPLOYMENTS.value(employment),
                        )
                    ],
                )
            ]
        ),
        metadata=INTERNAL,
    )
    if statuses:
        stub.RecordPersonStatuses(
            settlement_pb2.RecordPersonStatusesRequest(
                persons=[
                    settlement_pb2.PersonStatuses(
                        person_id=number,
                        version=1,
                        periods=[
                            settlement_pb2.StatusPeriod(
                                status=SETTLEMENT_STATUSES.value(status),
                                agency=SETTLEMENT_AGENCIES.value(agency),
                                valid_from=from_date(start),
                            )
                            for status, agency, start in statuses
                        ],
                    )
                ]
            ),
            metadata=INTERNAL,
        )
    if certificates is not None or registrations is not None:
        engine = settlement_engine(platform)
        with engine.begin() as connection:
            wanted = person_coverage.c.person_id == number
            coverage = connection.execute(
                sqlalchemy.select(person_coverage.c.coverage).where(wanted)
            ).scalar_one()
            coverage = {
                **coverage,
                "certificates": certificates or [],
                "registrations": registrations or [],
            }
            connection.execute(person_coverage.update().where(wanted).values(coverage=coverage))
        engine.dispose()
    return number


def add_hospital(
    platform: Platform, region: str, level: int, *, reformed: bool = False
) -> tuple[str, httpx.Client]:
    """A hospital of this test alone, and a client of the gateway with its key."""
    hospital_id = f"h{region}-{level}-{next(_serial)}"
    key = f"key-{hospital_id}"
    settlement_stub(platform).CreateHospital(
        settlement_pb2.CreateHospitalRequest(
            hospital=settlement_pb2.Hospital(
                hospital_id=hospital_id,
                name=f"医院 {hospital_id}",
                region=region,
                level=level,
                reformed=reformed,
            ),
            api_key=key,
        ),
        metadata=INTERNAL,
    )
    return hospital_id, platform.client(key)


def eligibility(
    client: httpx.Client, person: str, day: date = TODAY, *, referred: bool = False
) -> dict[str, Any]:
    answer = client.get(
        f"/v1/persons/{person}/eligibility",
        params={"date": day.isoformat(), "referred": str(referred).lower()},
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def caps(answer: dict[str, Any]) -> dict[tuple[str, str], dict[str, int]]:
    return {
        (layer["layer"], cap["cap"]): cap for layer in answer["layers"] for cap in layer["caps"]
    }


def reads(platform: Platform, person: str) -> list[tuple[str, str]]:
    """Who read the person's data at the desk, and how, oldest first (ListPersonReads)."""
    answer = settlement_stub(platform).ListPersonReads(
        settlement_pb2.ListPersonReadsRequest(person_id=person), metadata=INTERNAL
    )
    assert all(read.person_id == person for read in answer.reads)
    return [(read.reader, read.method) for read in answer.reads]


def stored_reads(platform: Platform) -> int:
    engine = settlement_engine(platform)
    with engine.connect() as connection:
        count: int = connection.execute(
            sqlalchemy.select(sqlalchemy.func.count()).select_from(person_reads)
        ).scalar_one()
    engine.dispose()
    return count


def rpc_violations(error: grpc.RpcError) -> tuple[grpc.StatusCode, list[str]]:
    status = decode_status(error)
    return status.code, [violation.field for violation in status.violations]


def visit(visit_id: str, visit_type: str, yuan: int, day: date = TODAY) -> dict[str, Any]:
    dates = (
        {"admitted": day.isoformat(), "discharged": day.isoformat()}
        if visit_type == "inpatient"
        else {"date": day.isoformat()}
    )
    return {
        "id": visit_id,
        "type": visit_type,
        **dates,
        "items": [{"code": "X01", "class": "A", "amount_fen": yuan * 100}],
    }


def settle(
    client: httpx.Client, person: str, body: dict[str, Any], key: str, **extra: Any
) -> httpx.Response:
    return client.post(
        "/v1/settlements",
        json={"person_id": person, "visit": body, **extra},
        headers={"Idempotency-Key": key},
    )


# --- eligibility ---------------------------------------------------------------------------


def test_a_registered_poor_patient_pays_no_deposit_at_the_poverty_window(
    platform: Platform,
) -> None:
    person = insure(
        platform, XIXIA, statuses=(("registered_poor", "poverty_office", date(2016, 1, 1)),)
    )
    client = platform.client(XIXIA_KEY)
    answer = eligibility(client, person)

    assert answer["person_id"] == person
    assert answer["hospital_id"] == demo.HOSPITALS[0].hospital_id
    assert (answer["region"], answer["policy"], answer["enrolled"]) == (XIXIA, "xixia-2017", True)
    assert answer["enrolment"] == {
        "year": YEAR,
        "scheme": "resident",
        "employment": None,
        "tier": None,
    }
    assert answer["statuses"] == [
        {
            "status": "registered_poor",
            "valid_from": "2016-01-01",
            "valid_to": None,
            "agency": "poverty_office",
        }
    ]
    assert answer["no_deposit"] is True
    assert answer["no_deposit_rule"] == "poverty_window"
    assert "扶贫窗口" in answer["no_deposit_reason"]
    assert (answer["out_of_area"], answer["referred"]) == (False, False)
    left = caps(answer)
    assert left[("basic", "yearly")] == {
        "cap": "yearly",
        "limit_fen": 15_000_000,
        "carried_over_quota_fen": 0,
        "used_fen": 0,
        "left_fen": 15_000_000,
    }
    assert left[("medical_assistance", "yearly")]["left_fen"] == 10_000_000
    assert [layer["layer"] for layer in answer["layers"]] == [
        "basic",
        "critical_illness",
        "supplementary_critical_illness",
        "insurance_assistance",
        "medical_assistance",
    ]
    assert reads(platform, person) == [(demo.HOSPITALS[0].hospital_id, "GetEligibility")]


def test_a_referred_recipient_pays_no_deposit_at_home_and_a_deposit_out_of_area(
    platform: Platform,
) -> None:
    person = insure(platform, TAISHAN, statuses=(("dibao", "civil_affairs", date(2020, 3, 1)),))
    _, taishan = add_hospital(platform, TAISHAN, 2)

    referred = eligibility(taishan, person, referred=True)
    assert (referred["no_deposit"], referred["no_deposit_rule"]) == (True, "treat_first_pay_later")
    assert "先诊疗后付费" in referred["no_deposit_reason"]
    assert referred["statuses"][0]["agency"] == "civil_affairs"
    # Without the referral slip: a deposit.
    unreferred = eligibility(taishan, person)
    assert (unreferred["no_deposit"], unreferred["no_deposit_rule"]) == (False, None)
    # The same person referred, at a hospital of another region: out of area, a deposit.
    away = eligibility(platform.client(XIXIA_KEY), person, referred=True)
    assert (away["out_of_area"], away["referred"], away["no_deposit"]) == (True, True, False)
    assert away["policy"] == "taishan-2022"
    assert any("out of area" in note for note in away["notes"])


def test_a_tianjin_dibao_recipient_referred_at_home_pays_no_deposit(platform: Platform) -> None:
    person = insure(platform, TIANJIN, statuses=(("dibao", "civil_affairs", date(2019, 1, 1)),))
    _, tianjin = add_hospital(platform, TIANJIN, 3)
    answer = eligibility(tianjin, person, referred=True)
    assert answer["no_deposit_rule"] == "treat_first_pay_later"
    # Tianjin's inpatient cap of a resident, with the carried-over quota (none yet).
    assert caps(answer)[("basic", "inpatient_yearly")]["limit_fen"] == 18_000_000
    assert caps(answer)[("basic", "inpatient_yearly")]["carried_over_quota_fen"] == 0


def test_an_ordinary_patient_pays_a_deposit_and_the_caps_left_shrink_after_a_settlement(
    platform: Platform,
) -> None:
    person = insure(platform, XIXIA)
    client = platform.client(XIXIA_KEY)
    before = eligibility(client, person)
    assert (before["no_deposit"], before["statuses"], before["certificates"]) == (False, [], [])
    assert caps(before)[("basic", "yearly")]["left_fen"] == 15_000_000

    settled = settle(client, person, visit(f"{person}-1", "inpatient", 20_000), f"{person}-1")
    assert settled.status_code == 201, settled.text
    basic = next(
        layer["paid_fen"] for layer in settled.json()["layers"] if layer["layer"] == "basic"
    )
    assert basic > 0

    after = caps(eligibility(client, person))[("basic", "yearly")]
    assert after["used_fen"] == basic
    assert after["left_fen"] == 15_000_000 - basic


def test_certificates_and_registrations_valid_on_the_day_are_answered(platform: Platform) -> None:
    start, end = date(YEAR, 1, 1), date(YEAR, 12, 31)
    person = insure(
        platform,
        TIANJIN,
        certificates=[
            ["uraemia_dialysis", "special", start.isoformat(), end.isoformat()],
            ["uraemia_dialysis", "special", "2001-01-01", "2001-12-31"],  # expired
        ],
        registrations=[["relocation", XIXIA, start.isoformat(), None]],
    )
    # At a Xixia hospital: out of area, referred by the registration for its region.
    answer = eligibility(platform.client(XIXIA_KEY), person)
    assert answer["certificates"] == [
        {
            "disease": "uraemia_dialysis",
            "disease_name": answer["certificates"][0]["disease_name"],
            "kind": "special",
            "valid_from": start.isoformat(),
            "valid_to": end.isoformat(),
        }
    ]
    assert answer["certificates"][0]["disease_name"]
    assert answer["registrations"] == [
        {"kind": "relocation", "region": XIXIA, "valid_from": start.isoformat(), "valid_to": None}
    ]
    assert (answer["out_of_area"], answer["referred"]) == (True, True)


def test_a_person_not_enrolled_for_the_year_is_told_so(platform: Platform) -> None:
    person = insure(platform, XIXIA)
    answer = eligibility(platform.client(XIXIA_KEY), person, date(YEAR - 1, 6, 1))
    assert (answer["enrolled"], answer["enrolment"], answer["layers"]) == (False, None, [])
    assert answer["no_deposit"] is False
    assert any("not enrolled" in note for note in answer["notes"])


def test_the_platform_asks_for_a_hospitals_desk_and_is_audited_as_the_platform(
    platform: Platform,
) -> None:
    person = insure(platform, XIXIA)
    stub = settlement_stub(platform)
    answer = stub.GetEligibility(
        settlement_pb2.GetEligibilityRequest(
            person_id=person,
            date=from_date(TODAY),
            hospital_id=demo.HOSPITALS[1].hospital_id,
        ),
        metadata=INTERNAL,
    ).eligibility
    assert (answer.hospital_id, answer.policy) == (demo.HOSPITALS[1].hospital_id, "xixia-2017")
    eligibility(platform.client(XIXIA_KEY), person)
    assert reads(platform, person) == [
        ("platform", "GetEligibility"),
        (demo.HOSPITALS[0].hospital_id, "GetEligibility"),
    ]


def test_bad_eligibility_requests_are_refused_and_change_nothing(platform: Platform) -> None:
    person = insure(platform, XIXIA)
    client = platform.client(XIXIA_KEY)
    before = stored_reads(platform)
    url = f"/v1/persons/{person}/eligibility"

    for params in ({"date": "2024-02-30"}, {"date": "0"}, {}):
        assert fields(problem(client.get(url, params=params), 400)) == ["date"], params
    assert "referred" in fields(
        problem(client.get(url, params={"date": TODAY.isoformat(), "referred": "maybe"}), 400)
    )
    bad_digit = person[:-1] + ("0" if person[-1] != "0" else "1")
    body = problem(
        client.get(f"/v1/persons/{bad_digit}/eligibility", params={"date": "2024-01-01"}), 400
    )
    assert body["errors"] == [{"field": "person_id", "detail": body["errors"][0]["detail"]}]
    unknown = new_number(XIXIA)
    body = problem(
        client.get(f"/v1/persons/{unknown}/eligibility", params={"date": TODAY.isoformat()}), 404
    )
    assert body["type"] == "urn:doudi:problem:person-not-found"
    # Xixia's pack starts in 2017: no pack in force before.
    body = problem(client.get(url, params={"date": "2010-06-01"}), 422)
    assert body["type"] == "urn:doudi:problem:no-policy-in-force"
    assert problem(platform.client("not-a-key").get(url, params={"date": "2024-01-01"}), 401)

    stub = settlement_stub(platform)
    for request, field in (
        (
            settlement_pb2.GetEligibilityRequest(person_id=person, hospital_id="xixia-county-2"),
            "date",
        ),
        (
            settlement_pb2.GetEligibilityRequest(
                person_id=person,
                date=date_pb2.Date(year=2024, month=2, day=30),
                hospital_id="xixia-county-2",
            ),
            "date",
        ),
        (
            settlement_pb2.GetEligibilityRequest(person_id=person, date=from_date(TODAY)),
            "hospital_id",
        ),
        (
            settlement_pb2.GetEligibilityRequest(
                person_id="12345", date=from_date(TODAY), hospital_id="xixia-county-2"
            ),
            "person_id",
        ),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            stub.GetEligibility(request, metadata=INTERNAL)
        assert rpc_violations(refused.value) == (grpc.StatusCode.INVALID_ARGUMENT, [field])
    with pytest.raises(grpc.RpcError) as refused:
        stub.ListPersonReads(
            settlement_pb2.ListPersonReadsRequest(person_id="x"), metadata=INTERNAL
        )
    assert rpc_violations(refused.value) == (grpc.StatusCode.INVALID_ARGUMENT, ["person_id"])
    assert stored_reads(platform) == before


# --- reformed hospitals (Tianjin's general outpatient cover) --------------------------------


def basic_paid(answer: httpx.Response) -> int:
    assert answer.status_code == 201, answer.text
    return next(layer["paid_fen"] for layer in answer.json()["layers"] if layer["layer"] == "basic")


def test_tianjin_pays_residents_general_outpatient_only_at_level_1_and_reformed_level_2(
    platform: Platform,
) -> None:
    _, level_3 = add_hospital(platform, TIANJIN, 3)
    _, reformed = add_hospital(platform, TIANJIN, 2, reformed=True)
    plain_id, plain = add_hospital(platform, TIANJIN, 2)

    def outpatient(client: httpx.Client, person: str, tag: str) -> int:
        return basic_paid(
            settle(
                client,
                person,
                visit(f"{person}-{tag}", "outpatient_general", 3000),
                f"{person}-{tag}",
            )
        )

    resident = insure(platform, TIANJIN)
    assert outpatient(level_3, resident, "l3") == 0
    assert outpatient(plain, resident, "l2") == 0
    assert outpatient(reformed, insure(platform, TIANJIN), "r2") > 0
    employee = insure(platform, TIANJIN, scheme="employee", employment="in_service")
    assert outpatient(level_3, employee, "l3") > 0

    # The platform marks the plain level-2 hospital reformed: its next visit pays.
    stub = settlement_stub(platform)
    marked = stub.SetHospitalReformed(
        settlement_pb2.SetHospitalReformedRequest(hospital_id=plain_id, reformed=True),
        metadata=INTERNAL,
    ).hospital
    assert (marked.level, marked.reformed) == (2, True)
    assert outpatient(plain, insure(platform, TIANJIN), "now-r2") > 0
    listed = stub.ListHospitals(
        settlement_pb2.ListHospitalsRequest(region=TIANJIN), metadata=INTERNAL
    )
    assert {h.hospital_id: h.reformed for h in listed.hospitals}[plain_id] is True


def test_only_a_level_2_hospital_may_be_reformed(platform: Platform) -> None:
    stub = settlement_stub(platform)
    level_3, _ = add_hospital(platform, TIANJIN, 3)
    with pytest.raises(grpc.RpcError) as refused:
        stub.SetHospitalReformed(
            settlement_pb2.SetHospitalReformedRequest(hospital_id=level_3, reformed=True),
            metadata=INTERNAL,
        )
    assert rpc_violations(refused.value) == (grpc.StatusCode.INVALID_ARGUMENT, ["reformed"])
    with pytest.raises(grpc.RpcError) as refused:
        stub.CreateHospital(
            settlement_pb2.CreateHospitalRequest(
                hospital=settlement_pb2.Hospital(
                    hospital_id="never-made", name="x", region=TIANJIN, level=1, reformed=True
                )
            ),
            metadata=INTERNAL,
        )
    assert rpc_violations(refused.value) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        ["hospital.reformed"],
    )
    with pytest.raises(grpc.RpcError) as refused:
        stub.SetHospitalReformed(
            settlement_pb2.SetHospitalReformedRequest(hospital_id="nowhere", reformed=True),
            metadata=INTERNAL,
        )
    assert decode_status(refused.value).code == grpc.StatusCode.NOT_FOUND
    hospital = stub.GetHospital(
        settlement_pb2.GetHospitalRequest(hospital_id=level_3), metadata=INTERNAL
    )
    assert hospital.hospital.reformed is False
    with pytest.raises(grpc.RpcError) as refused:
        stub.GetHospital(
            settlement_pb2.GetHospitalRequest(hospital_id="never-made"), metadata=INTERNAL
        )
    assert decode_status(refused.value).code == grpc.StatusCode.NOT_FOUND


def test_doudi_admin_hospital_shows_and_sets_the_reform(platform: Platform) -> None:
    env = {"DOUDI_SETTLEMENT_ADDRESS": platform.services["settlement"].address}
    hospital_id = f"cli-{next(_serial)}"
    added = doudi(
        "admin", "hospital", "add", hospital_id, "--name", "天津示范二级医院",
        "--region", TIANJIN, "--level", "2", "--reformed", env=env,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "level 2, reformed" in added.stdout
    marked = doudi("admin", "hospital", "reformed", hospital_id, "no", env=env)
    assert marked.returncode == 0, marked.stderr
    assert "reformed" not in marked.stdout.split("level 2")[1]
    listed = doudi("admin", "hospital", "list", "--region", TIANJIN, env=env)
    (row,) = [line for line in listed.stdout.splitlines() if hospital_id in line]
    assert row.split()[3:5] == ["2", "no"], row
    assert doudi("admin", "hospital", "reformed", hospital_id, "yes", env=env).returncode == 0
    listed = doudi("admin", "hospital", "list", "--region", TIANJIN, env=env)
    (row,) = [line for line in listed.stdout.splitlines() if hospital_id in line]
    assert row.split()[3:5] == ["2", "yes"], row
    level_3, _ = add_hospital(platform, TIANJIN, 3)
    refused = doudi("admin", "hospital", "reformed", level_3, "yes", env=env)
    assert refused.returncode == 2, refused.stdout
    assert "reformed" in refused.stderr
