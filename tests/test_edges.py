"""The platform's edges under hostile input: amounts beyond any real bill, JSON nested
thousands deep or with integers beyond 64 bits, the internal token at the public edge, a
second reversal under a new key, dates and headers that are not what they claim.

Each case goes through the real edge (``doudi calc``, the gateway over HTTP, the
settlement service over gRPC) of the platform with its demo data, and checks that the
answer is a clear refusal that changed nothing.
"""

from __future__ import annotations

import copy
import datetime
import itertools
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import sqlalchemy
from google.rpc import error_details_pb2, status_pb2

from doudi.cli import demo
from doudi.common.errors import decode_status
from doudi.common.protos import INT64_MAX, from_date
from doudi.core.money import MAX_BILL_FEN, MAX_ITEM_FEN
from doudi.enrollment.v1 import enrollment_pb2, enrollment_pb2_grpc
from doudi.settlement.v1 import settlement_pb2, settlement_pb2_grpc
from services.settlement.tables import clearing_records, settlements
from tests.platform import Platform, demo_platforms
from tests.services import INTERNAL, bearer
from tests.support import PROBLEM_JSON, business_day, fields, problem, run_cli, worked_case

TODAY = business_day()
HOSPITAL_KEY = demo.HOSPITALS[0].api_key  # level 2, Xixia
PERSON = demo.REGISTERED_POOR.person_id
_serial = itertools.count(1)


@pytest.fixture(scope="module")
def platforms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Platform]]:
    with demo_platforms(tmp_path_factory, "edges", TODAY.year) as on:
        yield on


@pytest.fixture
def platform(backend: str, platforms: Callable[[str], Platform]) -> Platform:
    return platforms(backend)


@pytest.fixture
def hospital(platform: Platform) -> httpx.Client:
    return platform.client(HOSPITAL_KEY)


def visit(visit_id: str, *amounts: int) -> dict[str, Any]:
    """An inpatient stay discharged today, one class A item per amount."""
    admitted = max(datetime.date(TODAY.year, 1, 1), TODAY - datetime.timedelta(days=3))
    return {
        "id": visit_id,
        "type": "inpatient",
        "admitted": admitted.isoformat(),
        "discharged": TODAY.isoformat(),
        "items": [
            {"code": f"X{index}", "class": "A", "amount_fen": amount}
            for index, amount in enumerate(amounts)
        ],
    }


def new_visit_id() -> str:
    """An id no earlier run's platform has seen (visit ids stand once per hospital)."""
    return f"edge-{next(_serial)}-{datetime.datetime.now().timestamp()}"


def settle(client: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    """POST the bill under a new Idempotency-Key."""
    return client.post("/v1/settlements", json=body, headers={"Idempotency-Key": new_visit_id()})


def settled_today(platform: Platform) -> int:
    """How many settlements the demo hospital has made today (internal read)."""
    answer = stub(platform).ListSettlements(
        settlement_pb2.ListSettlementsRequest(
            hospital_id=demo.HOSPITALS[0].hospital_id, start_date=from_date(TODAY), page_size=1000
        ),
        metadata=INTERNAL,
    )
    return len(answer.settlements)


def stub(platform: Platform) -> settlement_pb2_grpc.SettlementServiceStub:
    return settlement_pb2_grpc.SettlementServiceStub(platform.services["settlement"].channel())


def settlement_engine(platform: Platform) -> sqlalchemy.Engine:
    url = platform.services["settlement"].env["DOUDI_DATABASE_URL"]
    return sqlalchemy.create_engine(url)


# --- amounts -----------------------------------------------------------------------------


def test_doudi_calc_refuses_an_item_or_a_bill_above_the_limits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    over_item = worked_case()
    over_item["visits"][0]["items"][0]["amount_fen"] = MAX_ITEM_FEN + 1
    over_bill = worked_case()
    item = over_bill["visits"][0]["items"][0]
    count = MAX_BILL_FEN // MAX_ITEM_FEN + 1
    over_bill["visits"][0]["items"] = [
        {**item, "code": f"X{index}", "amount_fen": MAX_ITEM_FEN} for index in range(count)
    ]
    at_limit = copy.deepcopy(over_bill)
    at_limit["visits"][0]["items"].pop()

    for case, field in (
        (over_item, "visits[0].items[0].amount_fen"),
        (over_bill, "visits[0].items"),
    ):
        (tmp_path / "case.json").write_text(json.dumps(case))
        code, out, err = run_cli(["calc", str(tmp_path / "case.json")], capsys)
        assert (code, out) == (2, ""), err
        assert f"{field}: " in err
    (tmp_path / "case.json").write_text(json.dumps(at_limit))
    code, out, _ = run_cli(["calc", "--no-explain", str(tmp_path / "case.json")], capsys)
    assert code == 0
    assert json.loads(out)["visits"][0]["total_fen"] == MAX_BILL_FEN


@pytest.mark.parametrize(
    ("amounts", "field"),
    [
        pytest.param((INT64_MAX,), "visit.items[0].amount_fen", id="int64-max"),
        pytest.param((2**64,), "visit.items[0].amount_fen", id="beyond-64-bits"),
        pytest.param((10, MAX_ITEM_FEN + 1), "visit.items[1].amount_fen", id="item-limit"),
        pytest.param(
            (MAX_ITEM_FEN,) * (MAX_BILL_FEN // MAX_ITEM_FEN + 1), "visit.items", id="bill-limit"
        ),
    ],
)
def test_the_gateway_refuses_amounts_above_the_limits_naming_the_field(
    platform: Platform, hospital: httpx.Client, amounts: tuple[int, ...], field: str
) -> None:
    before = settled_today(platform)
    clearing = hospital.get("/v1/clearing", params={"date": TODAY.isoformat()}).json()

    body = problem(
        settle(hospital, {"person_id": PERSON, "visit": visit(new_visit_id(), *amounts)}), 422
    )

    assert fields(body) == [field]
    assert settled_today(platform) == before
    assert hospital.get("/v1/clearing", params={"date": TODAY.isoformat()}).json() == clearing


def test_settlement_refuses_amounts_above_the_limits_over_grpc(platform: Platform) -> None:
    items = [settlement_pb2.Item(code="X", item_class=settlement_pb2.ITEM_CLASS_A)]
    cases = {
        "visit.items[0].amount_fen": [INT64_MAX],
        "visit.items": [MAX_ITEM_FEN] * (MAX_BILL_FEN // MAX_ITEM_FEN + 1),
    }
    before = settled_today(platform)
    for field, amounts in cases.items():
        items = [
            settlement_pb2.Item(code=f"X{i}", item_class=settlement_pb2.ITEM_CLASS_A, amount_fen=a)
            for i, a in enumerate(amounts)
        ]
        message = settlement_pb2.Visit(
            visit_id="big-grpc",
            visit_type=settlement_pb2.VISIT_TYPE_INPATIENT,
            admitted=from_date(TODAY),
            discharged=from_date(TODAY),
            items=items,
        )
        with pytest.raises(grpc.RpcError) as raised:
            stub(platform).Settle(
                settlement_pb2.SettleRequest(
                    request_id=f"big-{field}", person_id=PERSON, visit=message
                ),
                metadata=bearer(HOSPITAL_KEY),
            )
        status = decode_status(raised.value)  # type: ignore[arg-type]
        assert status.code == grpc.StatusCode.INVALID_ARGUMENT
        assert [violation.field for violation in status.violations] == [field]
    assert settled_today(platform) == before


def test_a_bill_at_the_limit_settles_and_the_day_clearing_adds_up(
    platform: Platform, hospital: httpx.Client
) -> None:
    count = MAX_BILL_FEN // MAX_ITEM_FEN
    answer = settle(
        hospital, {"person_id": PERSON, "visit": visit(new_visit_id(), *[MAX_ITEM_FEN] * count)}
    )
    assert answer.status_code == 201, answer.text
    made = answer.json()
    assert made["total_fen"] == MAX_BILL_FEN
    assert (
        made["total_fen"]
        == sum(layer["paid_fen"] for layer in made["layers"]) + made["self_pay_fen"]
    )
    clearing = hospital.get("/v1/clearing", params={"date": TODAY.isoformat()})
    assert clearing.status_code == 200, clearing.text
    assert clearing.json()["net_fen"] == sum(fund["net_fen"] for fund in clearing.json()["funds"])


def township_clearing_with(
    platform: Platform,
    hospital: httpx.Client,
    day: datetime.date,
    records: list[tuple[str, str, int]],
) -> httpx.Response:
    """The township centre's clearing of ``day`` (nothing else clears there then) after
    writing ``(fund, kind, amount_fen)`` records into settlement's database directly."""
    made = settle(hospital, {"person_id": PERSON, "visit": visit(new_visit_id(), 100_000)})
    assert made.status_code == 201, made.text
    township = demo.HOSPITALS[1]
    engine = settlement_engine(platform)
    with engine.begin() as connection:
        connection.execute(
            clearing_records.insert(),
            [
                {
                    "settlement_id": made.json()["id"],
                    "hospital_id": township.hospital_id,
                    "fund": fund,
                    "kind": kind,
                    "amount_fen": amount,
                    "clearing_date": day,
                    "created_at": datetime.datetime.now(datetime.UTC),
                }
                for fund, kind, amount in records
            ],
        )
    engine.dispose()
    return platform.client(township.api_key).get("/v1/clearing", params={"date": day.isoformat()})


def test_clearing_records_beyond_64_bits_in_sum_are_a_clear_error(
    platform: Platform, hospital: httpx.Client
) -> None:
    """Two stored records of 2^63 - 1 fen (as two such bills left before the limits): the
    day's clearing neither fails in SQL nor wraps; it says which total cannot be answered."""
    answer = township_clearing_with(
        platform,
        hospital,
        datetime.date(2001, 1, 1),
        [
            ("390100", "settled", INT64_MAX),
            ("390100", "settled", INT64_MAX),
            ("610100", "settled", 5),
        ],
    )

    body = problem(answer, 500)
    assert body["type"] == "urn:doudi:problem:stored-amount-out-of-range"
    assert "390100" in body["detail"]


def test_clearing_sums_past_64_bits_along_the_way_are_exact(
    platform: Platform, hospital: httpx.Client
) -> None:
    """Records whose running sum leaves 64 bits and comes back: SQL must not overflow."""
    answer = township_clearing_with(
        platform,
        hospital,
        datetime.date(2001, 1, 2),
        [
            ("390100", "settled", INT64_MAX),
            ("390100", "settled", INT64_MAX),
            ("390100", "settled", -INT64_MAX),
            ("390100", "reversed", -3),
        ],
    )

    assert answer.status_code == 200, answer.text
    assert answer.json()["funds"] == [
        {
            "fund": "390100",
            "settled_fen": INT64_MAX,
            "reversed_fen": 3,
            "net_fen": INT64_MAX - 3,
            "record_count": 4,
        }
    ]


def test_a_stored_settlement_beyond_64_bits_is_answered_as_a_clear_error(
    platform: Platform,
) -> None:
    # The township centre's: the demo county hospital's list of the day stays readable.
    hospital = platform.client(demo.HOSPITALS[1].api_key)
    made = settle(hospital, {"person_id": PERSON, "visit": visit(new_visit_id(), 100_000)})
    assert made.status_code == 201, made.text
    settlement_id = made.json()["id"]
    engine = settlement_engine(platform)
    with engine.begin() as connection:
        connection.execute(
            settlements.update()
            .where(settlements.c.settlement_id == settlement_id)
            .values(layers=[["basic", "390100", 2**70]])
        )
    engine.dispose()

    read = problem(hospital.get(f"/v1/settlements/{settlement_id}"), 500)
    reversal = problem(
        hospital.post(
            f"/v1/settlements/{settlement_id}/reversal", headers={"Idempotency-Key": "corrupt"}
        ),
        500,
    )

    for body in (read, reversal):
        assert body["type"] == "urn:doudi:problem:stored-amount-out-of-range"
        assert settlement_id in body["detail"]
    engine = settlement_engine(platform)
    with engine.connect() as connection:
        state = connection.execute(
            sqlalchemy.select(settlements.c.state).where(
                settlements.c.settlement_id == settlement_id
            )
        ).scalar_one()
        records = connection.execute(
            sqlalchemy.select(sqlalchemy.func.count()).where(
                clearing_records.c.settlement_id == settlement_id
            )
        ).scalar_one()
    engine.dispose()
    assert state == "settled"
    assert records == sum(1 for layer in made.json()["layers"] if layer["paid_fen"])


# --- JSON --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="nested-arrays"),
        pytest.param(b'{"a":' * 50_000 + b"1" + b"}" * 50_000, id="nested-objects"),
        pytest.param(
            b'{"person_id": "411323195003150014", "visit": ' + b"9" * 5000 + b"}",
            id="5000-digit-integer",
        ),
    ],
)
def test_json_nested_thousands_deep_or_with_huge_integers_is_malformed(
    hospital: httpx.Client, body: bytes
) -> None:
    for path in ("/v1/settlements", "/v1/settlements/preview"):
        answer = hospital.post(
            path, content=body, headers={"Content-Type": "application/json", "Idempotency-Key": "j"}
        )
        assert problem(answer, 400)["type"] == "urn:doudi:problem:malformed-json"


def test_doudi_calc_refuses_json_nested_thousands_deep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "case.json").write_text("[" * 100_000 + "]" * 100_000)

    code, out, err = run_cli(["calc", str(tmp_path / "case.json")], capsys)

    assert (code, out) == (2, "")
    assert "malformed JSON" in err


@pytest.mark.parametrize(
    ("argv", "argument"),
    [
        pytest.param(["roster", "export", "9" * 24], "ID", id="comparison-id"),
        pytest.param(["roster", "enrol", str(2**63)], "ID", id="comparison-id-2^63"),
        pytest.param(
            ["roster", "compare", "--region", "411323", "--year", "9" * 20], "--year", id="year"
        ),
    ],
)
def test_doudi_refuses_numbers_its_requests_cannot_carry(
    argv: list[str], argument: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before any service is asked (none runs here): exit 2 naming the argument."""
    with pytest.raises(SystemExit) as exited:
        run_cli(argv, capsys)

    assert exited.value.code == 2
    assert f"argument {argument}: " in capsys.readouterr().err


# --- the internal token ------------------------------------------------------------------


def test_the_internal_token_is_no_hospital_key_at_the_public_edge(platform: Platform) -> None:
    internal = platform.client(INTERNAL[0][1].removeprefix("Bearer "))

    for answer in (
        internal.get("/v1/clearing", params={"date": TODAY.isoformat()}),
        internal.get("/v1/settlements", params={"date": TODAY.isoformat()}),
        settle(internal, {"person_id": PERSON, "visit": visit("internal", 100)}),
        internal.post("/v1/settlements/x/reversal", headers={"Idempotency-Key": "i"}),
    ):
        body = problem(answer, 401)
        assert answer.headers["www-authenticate"] == "Bearer"
        assert body["detail"] == "unknown API key"


# --- reversal ----------------------------------------------------------------------------


def test_a_second_reversal_under_a_new_key_is_a_conflict_naming_the_first(
    platform: Platform, hospital: httpx.Client
) -> None:
    made = settle(hospital, {"person_id": PERSON, "visit": visit(new_visit_id(), 200_000)})
    assert made.status_code == 201, made.text
    path = f"/v1/settlements/{made.json()['id']}/reversal"
    first = hospital.post(path, headers={"Idempotency-Key": f"undo-{made.json()['id']}"})
    assert first.status_code == 200, first.text

    again = hospital.post(path, headers={"Idempotency-Key": f"undo-{made.json()['id']}"})
    second = hospital.post(path, headers={"Idempotency-Key": f"other-{made.json()['id']}"})

    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    body = problem(second, 409)
    assert body["type"] == "urn:doudi:problem:already-reversed"
    assert body["settlement_id"] == made.json()["id"]
    assert body["reversal_idempotency_key"] == f"undo-{made.json()['id']}"
    assert body["reversed_at"] == first.json()["reversed_at"]
    assert "idempotent-replayed" not in second.headers


def test_a_second_reversal_under_a_new_key_over_grpc_names_the_first(platform: Platform) -> None:
    made = settle(
        platform.client(HOSPITAL_KEY),
        {"person_id": PERSON, "visit": visit(new_visit_id(), 300_000)},
    ).json()
    settlement = stub(platform)
    settlement.ReverseSettlement(
        settlement_pb2.ReverseSettlementRequest(settlement_id=made["id"], request_id="g-1"),
        metadata=bearer(HOSPITAL_KEY),
    )

    with pytest.raises(grpc.RpcError) as raised:
        settlement.ReverseSettlement(
            settlement_pb2.ReverseSettlementRequest(settlement_id=made["id"], request_id="g-2"),
            metadata=INTERNAL,
        )

    error: grpc.aio.AioRpcError = raised.value  # type: ignore[assignment]
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = dict(error.trailing_metadata() or ())["grpc-status-details-bin"]
    info = error_details_pb2.ErrorInfo()
    assert any(detail.Unpack(info) for detail in status_pb2.Status.FromString(details).details)
    assert info.reason == "ALREADY_REVERSED"
    assert info.metadata["settlement_id"] == made["id"]
    assert info.metadata["reversal_request_id"] == "g-1"


# --- dates and headers -------------------------------------------------------------------


@pytest.mark.parametrize("day", ["0", "1", "20260101", "2026-1-1", "2026-13-01", "２０２６-01-01"])
def test_a_date_other_than_yyyy_mm_dd_is_a_bad_request(hospital: httpx.Client, day: str) -> None:
    for path in ("/v1/settlements", "/v1/clearing"):
        body = problem(hospital.get(path, params={"date": day}), 400)
        assert fields(body) == ["date"]


# The HTTP server's parser refuses the other C0 controls (and DEL) itself, with its own
# 400, before the gateway sees the request; these reach the gateway.
@pytest.mark.parametrize("key", [b"tab\there", b"nel\x85", b"nbsp\xa0"])
def test_an_idempotency_key_with_a_control_character_is_a_bad_request(
    platform: Platform, key: bytes
) -> None:
    """Sent byte for byte (HTTP clients refuse to send such headers at all)."""
    before = settled_today(platform)
    body = json.dumps({"person_id": PERSON, "visit": visit(new_visit_id(), 100)}).encode()
    request = (
        b"POST /v1/settlements HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        + f"Authorization: Bearer {HOSPITAL_KEY}\r\n".encode()
        + b"Content-Type: application/json\r\nIdempotency-Key: "
        + key
        + f"\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    with socket.create_connection(("127.0.0.1", platform.gateway_port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, content = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    headers = {name.lower(): value for name, value in headers.items()}

    assert status_line.split(" ")[1] == "400", received
    assert headers["content-type"] == PROBLEM_JSON
    assert [error["field"] for error in json.loads(content)["errors"]] == ["Idempotency-Key"]
    assert settled_today(platform) == before


def test_enrollment_refuses_a_premium_above_the_item_limit(platform: Platform) -> None:
    enrollment = enrollment_pb2_grpc.EnrollmentServiceStub(
        platform.services["enrollment"].channel()
    )
    with pytest.raises(grpc.RpcError) as raised:
        enrollment.CreateEnrolment(
            enrollment_pb2.CreateEnrolmentRequest(
                enrolment=enrollment_pb2.Enrolment(
                    person_id=demo.NEIGHBOUR.person_id,
                    year=TODAY.year + 1,
                    scheme=enrollment_pb2.SCHEME_RESIDENT,
                    premium_fen=INT64_MAX,
                    premium_payer=enrollment_pb2.PREMIUM_PAYER_PERSON,
                )
            ),
            metadata=INTERNAL,
        )

    status = decode_status(raised.value)  # type: ignore[arg-type]
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [violation.field for violation in status.violations] == ["enrolment.premium_fen"]
