"""The gateway as a hospital system sees it: HTTP to ``python -m gateway`` in front of the
real services.

One platform per backend serves the whole module (starting it takes seconds), so
each test registers persons of its own; hospitals whose day totals a test reads
are that test's own too. The last test stops a service.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import json
import signal
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import httpx
import pytest
from google.type import date_pb2

from doudi.common.errors import ServiceError, to_rpc_status
from doudi.datashare.v1 import datashare_pb2
from doudi.datashare.v1.datashare_pb2_grpc import DatashareServiceStub
from doudi.enrollment.v1 import enrollment_pb2
from doudi.enrollment.v1.enrollment_pb2_grpc import EnrollmentServiceStub
from doudi.settlement.v1 import settlement_pb2
from doudi.settlement.v1.settlement_pb2_grpc import SettlementServiceStub
from gateway.app import create_app
from gateway.convert import summary
from gateway.problems import json_pointer
from gateway.schemas import (
    ClearingRead,
    HealthRead,
    LivenessRead,
    ReadinessRead,
    SettlementCreate,
    SettlementPage,
    SettlementRead,
)
from gateway.settings import Settings
from gateway.upstream import CallingHospital
from tests.conftest import BACKENDS
from tests.platform import Platform, running_platform
from tests.services import INTERNAL, bearer, stop_service
from tests.support import (
    business_day,
    fields,
    problem,
    run_cli,
    with_check_digit,
    worked_case,
)

XIXIA = "411323"
POVERTY_OFFICE = bearer("demo-poverty-office")
PROBLEM_JSON = "application/problem+json"
# The worked example of docs/case-format.md: 50,000 yuan, all class A, level 2, registered poor.
WORKED_LAYERS = [
    {"layer": "basic", "fund": "390100", "paid_fen": 3960000},
    {"layer": "critical_illness", "fund": "390200", "paid_fen": 0},
    {"layer": "supplementary_critical_illness", "fund": "supplementary", "paid_fen": 280000},
    {"layer": "insurance_assistance", "fund": "assistance_project", "paid_fen": 448000},
    {"layer": "medical_assistance", "fund": "610100", "paid_fen": 218400},
]
_numbers = itertools.count(1)


TODAY = business_day()


@pytest.fixture(scope="module", params=BACKENDS)
def platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    with running_platform(tmp_path_factory.mktemp("platform"), request.param) as started:
        yield started


def register_hospital(platform: Platform, name: str, level: int = 2) -> str:
    """A Xixia hospital of this name; answers its API key."""
    api_key = f"key-{name}-0123456789"
    stub = SettlementServiceStub(platform.services["settlement"].channel())
    stub.CreateHospital(
        settlement_pb2.CreateHospitalRequest(
            hospital=settlement_pb2.Hospital(
                hospital_id=name, name=f"{name} 医院", region=XIXIA, level=level
            ),
            api_key=api_key,
        ),
        metadata=INTERNAL,
    )
    return api_key


@pytest.fixture(scope="module")
def hospital(platform: Platform) -> httpx.Client:
    """The client of a level-2 Xixia hospital."""
    return platform.client(register_hospital(platform, "H-XIXIA-2"))


def insured_poor_person(platform: Platform) -> str:
    """A new Xixia resident, enrolled this year, registered poor since 2016."""
    number = with_check_digit(f"41132319500315{next(_numbers):03d}")
    enrollment = EnrollmentServiceStub(platform.services["enrollment"].channel())
    household = f"H-{number[-6:]}"
    enrollment.CreatePerson(
        enrollment_pb2.CreatePersonRequest(
            person=enrollment_pb2.Person(
                person_id=number, name="王建国", household_id=household, region=XIXIA
            )
        ),
        metadata=INTERNAL,
    )
    enrollment.CreateEnrolment(
        enrollment_pb2.CreateEnrolmentRequest(
            enrolment=enrollment_pb2.Enrolment(
                person_id=number,
                year=TODAY.year,
                scheme=enrollment_pb2.SCHEME_RESIDENT,
                premium_fen=0,
                premium_payer=enrollment_pb2.PREMIUM_PAYER_ASSISTANCE_FUND,
            )
        ),
        metadata=INTERNAL,
    )
    hub = DatashareServiceStub(platform.services["datashare"].channel())
    hub.AssertStatus(
        datashare_pb2.AssertStatusRequest(
            person_id=number,
            household_id=household,
            status=datashare_pb2.STATUS_REGISTERED_POOR,
            valid_from=date_pb2.Date(year=2016, month=1, day=1),
            reference=f"roster-{number}",
        ),
        metadata=POVERTY_OFFICE,
    )
    return number


def worked_visit(visit_id: str = "v1") -> dict[str, Any]:
    """The worked example's visit, discharged today, as a hospital sends it (no level)."""
    visit: dict[str, Any] = worked_case()["visits"][0]
    del visit["hospital_level"]
    visit["id"] = visit_id
    visit["admitted"] = max(datetime.date(TODAY.year, 1, 1), TODAY - datetime.timedelta(days=9))
    visit["admitted"] = visit["admitted"].isoformat()
    visit["discharged"] = TODAY.isoformat()
    return visit


def bill(person_id: str, visit_id: str | None = None, **changes: Any) -> dict[str, Any]:
    """The worked visit for ``person_id``; visit ids are per hospital, so one per person."""
    visit = worked_visit(visit_id or f"v{person_id}")
    visit.update(changes)
    return {"person_id": person_id, "visit": visit}


def settle(client: httpx.Client, body: dict[str, Any], key: str) -> httpx.Response:
    return client.post("/v1/settlements", json=body, headers={"Idempotency-Key": key})


def settled_today(client: httpx.Client) -> list[dict[str, Any]]:
    """Every settlement the hospital made today, read page by page."""
    found: list[dict[str, Any]] = []
    token = ""
    while True:
        answer = client.get(
            "/v1/settlements",
            params={"date": TODAY.isoformat(), "page_size": 50, "page_token": token},
        )
        assert answer.status_code == 200, answer.text
        page = answer.json()
        SettlementPage.model_validate(page)
        found.extend(page["settlements"])
        token = page["next_page_token"]
        if not token:
            return found


def assert_balanced(settlement: dict[str, Any]) -> None:
    """Both settlement equations, exactly: in fen, and in the summary's yuan."""
    layers = sum(layer["paid_fen"] for layer in settlement["layers"])
    assert settlement["total_fen"] == layers + settlement["self_pay_fen"]
    assert settlement["total_fen"] == settlement["out_of_scope_fen"] + settlement["in_scope_fen"]
    money = {name: Decimal(value) for name, value in settlement["summary"].items()}
    assert (
        money["medfee_sumamt"]
        == money["fund_pay_sumamt"] + money["acct_pay"] + money["psn_cash_pay"]
    )
    assert Decimal(settlement["total_fen"]) / 100 == money["medfee_sumamt"]


# The hospital path


def test_the_worked_xixia_case_settles_as_doudi_calc_settles_it(
    platform: Platform,
    hospital: httpx.Client,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    person = insured_poor_person(platform)
    body = bill(person)
    case = worked_case()
    case["person"]["id"] = person
    case["visits"][0] = {**body["visit"], "hospital_level": 2}
    (tmp_path / "case.json").write_text(json.dumps(case))
    code, out, _ = run_cli(["calc", str(tmp_path / "case.json")], capsys)
    assert code == 0
    calculated = json.loads(out)["visits"][0]

    answer = settle(hospital, body, "worked-1")

    assert answer.status_code == 201, answer.text
    settlement = answer.json()
    SettlementRead.model_validate(settlement)
    assert answer.headers["location"] == f"/v1/settlements/{settlement['id']}"
    assert "idempotent-replayed" not in answer.headers
    assert (
        [
            {key: layer[key] for key in ("layer", "fund", "paid_fen")}
            for layer in calculated["layers"]
        ]
        == settlement["layers"]
        == WORKED_LAYERS
    )
    assert (settlement["total_fen"], settlement["self_pay_fen"]) == (5000000, 93600)
    assert settlement["self_pay_fen"] == calculated["self_pay_fen"]
    assert settlement | {"id": None, "settled_at": None, "layers": None, "summary": None} == {
        "id": None,
        "state": "settled",
        "hospital_id": "H-XIXIA-2",
        "person_id": person,
        "visit_id": f"v{person}",
        "visit_type": "inpatient",
        "settles_on": TODAY.isoformat(),
        "policy": "xixia-2017",
        "total_fen": 5000000,
        "out_of_scope_fen": 0,
        "in_scope_fen": 5000000,
        "layers": None,
        "fund_paid_fen": 4906400,
        "self_pay_fen": 93600,
        "personal_account_paid_fen": 0,
        "cash_pay_fen": 93600,
        "payouts": [],
        "settled_at": None,
        "reversed_at": None,
        "summary": None,
        "admission_id": None,
    }
    assert settlement["summary"] == {
        "medfee_sumamt": "50000.00",
        "fulamt_ownpay_amt": "0.00",
        "overlmt_selfpay": "0.00",
        "preselfpay_amt": "0.00",
        "inscp_scp_amt": "50000.00",
        "hifp_pay": "39600.00",
        "hifmi_pay": "0.00",
        "hifob_pay": "0.00",
        "cvlserv_pay": "0.00",
        "maf_pay": "2184.00",
        "oth_pay": "7280.00",  # supplementary 2,800 + the assistance project's 4,480
        "fund_pay_sumamt": "49064.00",
        "acct_pay": "0.00",
        "psn_cash_pay": "936.00",
    }
    assert_balanced(settlement)
    read = hospital.get(f"/v1/settlements/{settlement['id']}")
    assert read.status_code == 200
    assert read.json() == settlement


def test_a_preview_answers_the_settlement_and_stores_nothing(
    platform: Platform, hospital: httpx.Client
) -> None:
    person = insured_poor_person(platform)
    before = len(settled_today(hospital))

    answer = hospital.post("/v1/settlements/preview", json=bill(person))

    assert answer.status_code == 200, answer.text
    preview = answer.json()
    SettlementRead.model_validate(preview)
    assert (preview["id"], preview["state"], preview["settled_at"]) == (None, "preview", None)
    assert preview["layers"] == WORKED_LAYERS
    assert_balanced(preview)
    assert len(settled_today(hospital)) == before
    # Nothing accumulated either: the settlement itself pays what the preview said.
    settled = settle(hospital, bill(person), "after-preview").json()
    assert settled["layers"] == preview["layers"]
    assert settled["summary"] == preview["summary"]


def test_a_retry_with_the_same_key_answers_the_same_settlement_and_pays_once(
    platform: Platform, hospital: httpx.Client
) -> None:
    person = insured_poor_person(platform)
    before = len(settled_today(hospital))

    first = settle(hospital, bill(person), "retry-1")
    again = settle(hospital, bill(person), "retry-1")

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert len(settled_today(hospital)) == before + 1


def test_the_same_key_with_another_bill_is_refused(
    platform: Platform, hospital: httpx.Client
) -> None:
    person = insured_poor_person(platform)
    assert settle(hospital, bill(person), "reused-1").status_code == 201
    before = len(settled_today(hospital))

    other = bill(person, items=[{"code": "X01", "class": "A", "amount_fen": 100}])
    body = problem(settle(hospital, other, "reused-1"), 422)

    assert body["type"] == "urn:doudi:problem:idempotency-key-reused"
    assert body["errors"] == [
        {
            "field": "Idempotency-Key",
            "detail": "this idempotency key was used for a different request",
        }
    ]
    assert len(settled_today(hospital)) == before


def test_a_visit_settled_under_another_key_is_a_conflict(
    platform: Platform, hospital: httpx.Client
) -> None:
    person = insured_poor_person(platform)
    assert settle(hospital, bill(person, "twice"), "first-key").status_code == 201

    body = problem(settle(hospital, bill(person, "twice"), "second-key"), 409)

    assert body["type"] == "urn:doudi:problem:visit-already-settled"
    assert body["errors"][0] | {"detail": ""} == {
        "field": "visit.id",
        "pointer": "#/visit/id",
        "detail": "",
    }


@pytest.mark.parametrize("key", [None, "", "k" * 129])
def test_settling_needs_an_idempotency_key_of_at_most_128_characters(
    platform: Platform, hospital: httpx.Client, key: str | None
) -> None:
    headers = {} if key is None else {"Idempotency-Key": key}

    answer = hospital.post("/v1/settlements", json=bill("411323195003150014"), headers=headers)

    body = problem(answer, 400)
    assert fields(body) == ["Idempotency-Key"]
    assert "pointer" not in body["errors"][0]


def test_another_hospitals_settlement_is_not_found(
    platform: Platform, hospital: httpx.Client
) -> None:
    person = insured_poor_person(platform)
    settlement = settle(hospital, bill(person), "mine-1").json()
    other = platform.client(register_hospital(platform, "H-XIXIA-OTHER"))

    read = other.get(f"/v1/settlements/{settlement['id']}")
    reversal = other.post(
        f"/v1/settlements/{settlement['id']}/reversal", headers={"Idempotency-Key": "theirs-1"}
    )

    problem(read, 404)
    problem(reversal, 404)
    assert settled_today(other) == []
    assert hospital.get(f"/v1/settlements/{settlement['id']}").json()["state"] == "settled"


@pytest.mark.parametrize(
    "authorization",
    [None, b"Bearer not-a-key-of-anyone", b"Basic dXNlcjpwYXNz", b"Bearer", b"Bearer key-\xe9"],
)
def test_a_missing_or_unknown_api_key_is_401(
    platform: Platform, authorization: bytes | None
) -> None:
    headers = {} if authorization is None else {b"Authorization": authorization}
    client = platform.client()

    for answer in (
        client.get("/v1/settlements", params={"date": TODAY.isoformat()}, headers=headers),
        client.post("/v1/settlements/preview", json={}, headers=headers),
    ):
        problem(answer, 401)
        assert answer.headers["www-authenticate"] == "Bearer"


def _negative_amount(person: str) -> dict[str, Any]:
    return bill(person, items=[{"code": "X01", "class": "A", "amount_fen": -1}])


def _unknown_class(person: str) -> dict[str, Any]:
    return bill(person, items=[{"code": "X01", "class": "D", "amount_fen": 100}])


@pytest.mark.parametrize(
    ("make_body", "status", "field"),
    [
        pytest.param(
            lambda person: bill("411323195003150015"), 422, "person_id", id="bad-check-digit"
        ),
        pytest.param(_negative_amount, 422, "visit.items[0].amount_fen", id="negative-amount"),
        pytest.param(_unknown_class, 422, "visit.items[0].class", id="unknown-item-class"),
        pytest.param(
            lambda person: bill(with_check_digit("41132319800101999")),
            422,
            "person_id",
            id="unknown-person",
        ),
        pytest.param(
            lambda person: bill(person, hospital_level=3),
            422,
            "visit.hospital_level",
            id="level-other-than-registered",
        ),
        pytest.param(lambda person: {**bill(person), "extra": 1}, 422, "extra", id="unknown-field"),
        pytest.param(
            lambda person: bill(person, discharged="2017-02-30"),
            422,
            "visit.discharged",
            id="impossible-date",
        ),
    ],
)
def test_a_bad_bill_is_a_problem_naming_the_field_and_stores_nothing(
    platform: Platform,
    hospital: httpx.Client,
    make_body: Any,
    status: int,
    field: str,
) -> None:
    person = insured_poor_person(platform)
    body = make_body(person)
    before = len(settled_today(hospital))

    for path in ("/v1/settlements", "/v1/settlements/preview"):
        answer = hospital.post(path, json=body, headers={"Idempotency-Key": f"bad-{person}"})
        found = problem(answer, status)
        assert fields(found) == [field]
        assert found["errors"][0]["pointer"] == json_pointer(field)
    assert len(settled_today(hospital)) == before
    assert person not in platform.gateway_log()


@pytest.mark.parametrize(
    ("content", "content_type", "status", "reason"),
    [
        pytest.param(b'{"person_id": "x", "visit": ', "application/json", 400, "malformed-json"),
        pytest.param(b'{"a": 1, "a": 2}', "application/json", 400, "malformed-json"),
        pytest.param(b"\xff\xfe", "application/json", 400, "malformed-json"),
        pytest.param(b"person_id=x", "application/x-www-form-urlencoded", 415, None),
        pytest.param(b"[]", "application/json", 422, "invalid-argument"),
        pytest.param(b'{"pad": "' + b" " * (1024 * 1024) + b'"}', "application/json", 413, None),
    ],
)
def test_a_body_that_is_not_a_bill_is_refused_before_anything_is_asked(
    hospital: httpx.Client,
    content: bytes,
    content_type: str,
    status: int,
    reason: str | None,
) -> None:
    before = len(settled_today(hospital))

    answer = hospital.post(
        "/v1/settlements",
        content=content,
        headers={"Content-Type": content_type, "Idempotency-Key": "not-a-bill"},
    )

    body = problem(answer, status)
    if reason is not None:
        assert body["type"] == f"urn:doudi:problem:{reason}"
    assert len(settled_today(hospital)) == before


def test_a_chunked_body_is_cut_off_once_it_passes_the_limit(hospital: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"person_id": "'
        for _ in range(64):  # 4 MiB in all, without a Content-Length
            yield b"x" * 65536

    answer = hospital.post(
        "/v1/settlements",
        content=chunks(),
        headers={"Content-Type": "application/json", "Idempotency-Key": "chunked"},
    )

    problem(answer, 413)


def test_a_bad_date_is_a_problem_naming_the_parameter(hospital: httpx.Client) -> None:
    for path in ("/v1/settlements", "/v1/clearing"):
        body = problem(hospital.get(path, params={"date": "2026-13-01"}), 400)
        assert fields(body) == ["date"]
        body = problem(hospital.get(path), 400)
        assert fields(body) == ["date"]


def test_the_day_clearing_is_the_sum_of_the_layers_and_a_reversal_takes_it_back(
    platform: Platform,
) -> None:
    clinic = platform.client(register_hospital(platform, "H-XIXIA-CLEARING"))
    first = settle(clinic, bill(insured_poor_person(platform)), "clear-1").json()
    second = settle(
        clinic,
        bill(
            insured_poor_person(platform),
            items=[
                {"code": "X01", "class": "A", "amount_fen": 800000},
                {"code": "X02", "class": "B", "amount_fen": 100000, "over_limit_fen": 20000},
                {"code": "X03", "class": "C", "amount_fen": 30000},
            ],
        ),
        "clear-2",
    ).json()
    assert_balanced(second)

    day = clinic.get("/v1/clearing", params={"date": TODAY.isoformat()})

    assert day.status_code == 200, day.text
    clearing = day.json()
    ClearingRead.model_validate(clearing)
    paid = by_fund(first) + by_fund(second)
    assert {fund["fund"]: fund["settled_fen"] for fund in clearing["funds"]} == paid
    assert {fund["fund"]: fund["net_fen"] for fund in clearing["funds"]} == paid
    assert clearing["net_fen"] == first["fund_paid_fen"] + second["fund_paid_fen"]
    assert clearing["hospital_id"] == "H-XIXIA-CLEARING"
    assert clearing["date"] == TODAY.isoformat()

    reversal = clinic.post(
        f"/v1/settlements/{first['id']}/reversal", headers={"Idempotency-Key": "undo-1"}
    )
    retry = clinic.post(
        f"/v1/settlements/{first['id']}/reversal", headers={"Idempotency-Key": "undo-1"}
    )

    assert reversal.status_code == 200, reversal.text
    reversed_ = reversal.json()
    SettlementRead.model_validate(reversed_)
    assert reversed_["state"] == "reversed"
    assert reversed_["reversed_at"] is not None
    assert retry.status_code == 200
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json() == reversed_
    clearing = clinic.get("/v1/clearing", params={"date": TODAY.isoformat()}).json()
    net = {fund["fund"]: fund["net_fen"] for fund in clearing["funds"]}
    taken_back = {fund["fund"]: fund["reversed_fen"] for fund in clearing["funds"]}
    assert {fund: amount for fund, amount in net.items() if amount} == by_fund(second)
    assert {fund: amount for fund, amount in taken_back.items() if amount} == by_fund(first)
    assert clearing["net_fen"] == second["fund_paid_fen"]


def by_fund(settlement: dict[str, Any]) -> Counter[str]:
    """What each fund paid on a settlement (funds that paid nothing are left out)."""
    paid: Counter[str] = Counter()
    for layer in settlement["layers"]:
        paid[layer["fund"]] += layer["paid_fen"]
    return +paid


def test_an_unknown_settlement_is_not_found(hospital: httpx.Client) -> None:
    body = problem(hospital.get("/v1/settlements/00000000-0000-0000-0000-000000000000"), 404)

    assert fields(body) == ["settlement_id"]


def test_the_api_is_documented(platform: Platform) -> None:
    client = platform.client()

    docs = client.get("/docs")
    document = client.get("/openapi.json").json()

    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    settle_operation = document["paths"]["/v1/settlements"]["post"]
    body_schema = settle_operation["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema == {"$ref": "#/components/schemas/SettlementCreate"}
    assert document["components"]["schemas"]["VisitCreate"]["properties"]["items"]
    assert settle_operation["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SettlementRead"
    }
    assert "application/problem+json" in settle_operation["responses"]["422"]["content"]
    # The example a hospital would copy from the docs is a valid bill.
    SettlementCreate.model_validate(bill("411323195003150014"))


def test_the_summary_names_each_fund_as_the_national_message_does() -> None:
    funds = ["310100", "330100", "320100", "390200", "610100", "390100", "own"]
    settlement = settlement_pb2.Settlement(
        total_fen=2801,
        layers=[
            settlement_pb2.LayerPayment(layer=f"l{n}", fund=fund, paid_fen=100 * (n + 1))
            for n, fund in enumerate(funds)
        ],
        self_pay_fen=1,
    )

    found = summary(settlement)

    assert found["hifp_pay"] == "7.00"  # 310100 and 390100 are both the basic pooling fund
    assert found["hifob_pay"] == "2.00"
    assert found["cvlserv_pay"] == "3.00"
    assert found["hifmi_pay"] == "4.00"
    assert found["maf_pay"] == "5.00"
    assert found["oth_pay"] == "7.00"
    assert found["fund_pay_sumamt"] == "28.00"
    assert found["psn_cash_pay"] == "0.01"
    assert found["medfee_sumamt"] == "28.01"


class _FailingUpstream:
    """In place of the gateway's channels: every key is known, every call fails as given."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.hospitals = self
        self.settlement = SimpleNamespace(GetSettlement=None)

    async def resolve(self, api_key: str) -> CallingHospital:
        return CallingHospital("H-1", "H", XIXIA, 2, bearer(api_key))

    async def ask(self, *_args: Any) -> Any:
        raise self.error


def _rpc_error(code: grpc.StatusCode, *, from_service: bool = False) -> grpc.aio.AioRpcError:
    """A failed call; ``from_service``: ended by a service (with its ErrorInfo), not by
    gRPC on the way."""
    trailing = grpc.aio.Metadata()
    if from_service:
        error = ServiceError("failed at 10.0.0.7:50053")
        error.code = code
        trailing = grpc.aio.Metadata(*to_rpc_status(error).trailing_metadata)
    return grpc.aio.AioRpcError(
        code, grpc.aio.Metadata(), trailing, details="failed at 10.0.0.7:50053"
    )


@pytest.mark.parametrize(
    ("error", "status", "reason"),
    [
        (RuntimeError("bug near postgresql://doudi:secret@10.0.0.7"), 500, "internal"),
        (_rpc_error(grpc.StatusCode.INTERNAL, from_service=True), 500, "internal"),
        (_rpc_error(grpc.StatusCode.UNKNOWN, from_service=True), 500, "internal"),
        (_rpc_error(grpc.StatusCode.DATA_LOSS), 500, "internal"),
        (_rpc_error(grpc.StatusCode.UNAVAILABLE), 503, "unavailable"),
        (_rpc_error(grpc.StatusCode.UNAVAILABLE, from_service=True), 503, "unavailable"),
        (_rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED), 503, "unavailable"),
        # The connection broke on the way (RST_STREAM, "Stream removed"), the channel closed.
        (_rpc_error(grpc.StatusCode.INTERNAL), 503, "unavailable"),
        (_rpc_error(grpc.StatusCode.UNKNOWN), 503, "unavailable"),
        (_rpc_error(grpc.StatusCode.CANCELLED), 503, "unavailable"),
    ],
)
def test_a_failure_upstream_answers_without_internals(
    error: Exception, status: int, reason: str
) -> None:
    app = create_app(Settings())
    app.state.upstream = _FailingUpstream(error)  # in place of the lifespan's channels
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)

    async def get() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            return await client.get("/v1/settlements/s-1", headers={"Authorization": "Bearer k"})

    answer = asyncio.run(get())

    body = problem(answer, status)
    assert "10.0.0.7" not in answer.text
    assert body["type"] == f"urn:doudi:problem:{reason}"


def test_field_paths_become_json_pointers() -> None:
    assert json_pointer("visit.items[0].amount_fen") == "#/visit/items/0/amount_fen"
    assert json_pointer("person_id") == "#/person_id"
    assert json_pointer("a/b~c") == "#/a~1b~0c"
    assert json_pointer("we ird") == "#/we%20ird"


# Last: these stop services of the module's platform.


def test_health_is_503_once_a_service_stops(platform: Platform, hospital: httpx.Client) -> None:
    client = platform.client()
    healthy = client.get("/healthz")
    assert healthy.status_code == 200
    assert HealthRead.model_validate(healthy.json()).services == dict.fromkeys(
        ("enrollment", "datashare", "settlement", "assistance"), "SERVING"
    )

    stop_service(platform.services["assistance"])
    answer = client.get("/healthz")

    assert answer.status_code == 503
    health = HealthRead.model_validate(answer.json())
    assert health.status == "unavailable"
    assert health.services["assistance"] != "SERVING"
    assert health.services["settlement"] == "SERVING"
    # The hospital path does not need the assistance service.
    person = insured_poor_person(platform)
    assert settle(hospital, bill(person), key=f"without-assistance-{person}").status_code == 201


# hospital: registered before settlement is killed, for the next test.
@pytest.mark.usefixtures("hospital")
def test_readiness_asks_settlement_alone_and_liveness_asks_nothing(platform: Platform) -> None:
    """/readyz, the gateways' readiness probe, follows the settlement service alone: with
    assistance killed a gateway stays in the load balancer (hospitals settle without it)
    while /healthz reports the platform unhealthy; with settlement killed it is taken out.
    /livez, the liveness probe, answers 200 throughout."""
    client = platform.client()
    stop_service(platform.services["assistance"], signal.SIGKILL)

    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ReadinessRead.model_validate(ready.json()) == ReadinessRead(
        status="ok", settlement="SERVING"
    )
    assert client.get("/healthz").status_code == 503
    live = client.get("/livez")
    assert live.status_code == 200
    assert LivenessRead.model_validate(live.json()).status == "ok"

    stop_service(platform.services["settlement"], signal.SIGKILL)

    body = problem(client.get("/readyz"), 503)
    assert body["type"] == "urn:doudi:problem:not-ready"
    assert body["detail"] == "this gateway cannot settle: the settlement service is UNAVAILABLE"
    assert client.get("/livez").status_code == 200


def test_a_service_that_does_not_answer_is_503(platform: Platform, hospital: httpx.Client) -> None:
    person = insured_poor_person(platform)
    stop_service(platform.services["settlement"])

    # The gateway cannot reach the settlement service.
    preview = hospital.post("/v1/settlements/preview", json=bill(person))

    body = problem(preview, 503)
    assert preview.headers["retry-after"] == "1"
    assert "127.0.0.1" not in body["detail"]
    # A requested stop is graceful and clean.
    assert platform.stop_gateway() == 0
