"""Accident cover claims (意外伤害附加保险): filed, decided once and paid, and the insurer's
clearing, on a real settlement server on each backend.

The module's server (one per backend) holds persons sent as enrollment sends them
(``RecordPersonCoverage``); each test registers its own. The figures are the packs':
Linzhi (540400, linzhi-2020) and Tianjin (120000, tianjin-2017) pay 50,000 yuan for an
accidental death and the medical costs claimed up to 10,000 yuan a claim, for claims filed
up to two years after the event; Xixia (411323) has no accident cover. Only the clearing
test files claims in Tianjin, so its day's totals are its own.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import itertools
import json
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from typing import Any

import grpc
import pytest

from doudi.cli.main import main
from doudi.common.errors import DecodedStatus, decode_status
from doudi.common.protos import from_date
from doudi.core.accidents import AccidentCover, last_day_within
from doudi.core.errors import PolicyPackError
from doudi.core.identity import mask
from doudi.core.money import MAX_BILL_FEN, format_yuan
from doudi.core.packs import PackRegistry, accident_cover, compile_pack
from doudi.settlement.v1 import settlement_pb2 as pb
from doudi.settlement.v1 import settlement_pb2_grpc
from tests.services import INTERNAL, RunningService, alone_per_backend, bearer
from tests.support import business_day, with_check_digit

LINZHI = "540400"
TIANJIN = "120000"
XIXIA = "411323"
DEATH_FEN = 5_000_000  # 50,000 yuan
MEDICAL_CAP_FEN = 1_000_000  # 10,000 yuan
HOSPITAL_KEY = "accident-claims-hospital-key"
_serial = itertools.count(1)
_PREFIX = {LINZHI: "540402", TIANJIN: "120101", XIXIA: "411323"}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], RunningService]]:
    """A settlement server on a backend, started when a test first asks for it, kept for
    the module."""
    with alone_per_backend("settlement", tmp_path_factory) as on:
        yield on


@pytest.fixture
def settlement(backend: str, servers: Callable[[str], RunningService]) -> RunningService:
    return servers(backend)


# --- helpers ----------------------------------------------------------------------------


def stub(server: RunningService) -> settlement_pb2_grpc.SettlementServiceStub:
    return settlement_pb2_grpc.SettlementServiceStub(server.channel())


def first_event_in_window(today: date) -> date:
    """The earliest accident day a claim filed ``today`` is accepted for (two years)."""
    day = today - timedelta(days=2 * 366 + 2)
    while last_day_within(day, 2) < today:
        day += timedelta(days=1)
    return day


def new_person(
    server: RunningService,
    region: str = LINZHI,
    years: tuple[int, ...] = (),
    scheme: pb.Scheme.ValueType = pb.SCHEME_RESIDENT,
) -> str:
    """A person of ``region``, of this test alone, insured in ``years`` (default: this year
    and the two before), sent to settlement as enrollment sends a person."""
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    serial = next(_serial)
    number = with_check_digit(
        f"{_PREFIX[region]}{1960 + worker:04d}{1 + serial % 12:02d}{1 + serial % 28:02d}"
        f"{serial % 1000:03d}"
    )
    this_year = business_day().year
    insured = years or (this_year - 2, this_year - 1, this_year)
    stub(server).RecordPersonCoverage(
        pb.RecordPersonCoverageRequest(
            persons=[
                pb.PersonCoverage(
                    person_id=number,
                    version=1,
                    region=region,
                    enrolments=[pb.Enrolment(year=year, scheme=scheme) for year in insured],
                )
            ]
        ),
        metadata=INTERNAL,
    )
    return number


def file_claim(
    server: RunningService,
    person: str,
    kind: pb.AccidentKind.ValueType,
    event: date,
    claimed_fen: int = 0,
    *,
    region: str = LINZHI,
    request_id: str | None = None,
) -> pb.FileAccidentClaimResponse:
    answer: pb.FileAccidentClaimResponse = stub(server).FileAccidentClaim(
        pb.FileAccidentClaimRequest(
            request_id=request_id or f"{person}-{kind}-{event.isoformat()}",
            region=region,
            person_id=person,
            kind=kind,
            event_date=from_date(event),
            claimed_fen=claimed_fen,
        ),
        metadata=INTERNAL,
    )
    return answer


def decide(
    server: RunningService, claim_id: int, *, approve: bool, reason: str = ""
) -> pb.AccidentClaim:
    answer = stub(server).DecideAccidentClaim(
        pb.DecideAccidentClaimRequest(claim_id=claim_id, approve=approve, reason=reason),
        metadata=INTERNAL,
    )
    claim: pb.AccidentClaim = answer.claim
    return claim


def get(server: RunningService, claim_id: int) -> pb.AccidentClaim:
    claim: pb.AccidentClaim = (
        stub(server)
        .GetAccidentClaim(pb.GetAccidentClaimRequest(claim_id=claim_id), metadata=INTERNAL)
        .claim
    )
    return claim


def claims_of(server: RunningService, person: str, region: str = LINZHI) -> list[pb.AccidentClaim]:
    """Every claim of the person stored in ``region``, read page by page (small pages, so
    that paging is read too)."""
    found: list[pb.AccidentClaim] = []
    token = ""
    while True:
        page = stub(server).ListAccidentClaims(
            pb.ListAccidentClaimsRequest(region=region, page_size=7, page_token=token),
            metadata=INTERNAL,
        )
        found += [claim for claim in page.claims if claim.person_id == person]
        token = page.next_page_token
        if not token:
            return found


def refused(call: Callable[[], object]) -> DecodedStatus:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return decode_status(raised.value)  # type: ignore[arg-type]


def fields_of(status: DecodedStatus) -> list[str]:
    return [violation.field for violation in status.violations]


def date_of(value: Any) -> date:
    return date(value.year, value.month, value.day)


# --- paid once --------------------------------------------------------------------------


def test_a_death_claim_inside_the_two_years_is_paid_50000_once(
    settlement: RunningService,
) -> None:
    """Filed on the window's last day, approved: 50,000 yuan from the pack's insurer, on
    the bureau's day; deciding again and a second death claim are refused, changing
    nothing."""
    today = business_day()
    event = first_event_in_window(today)
    person = new_person(settlement, years=(event.year, today.year))

    filed = file_claim(settlement, person, pb.ACCIDENT_KIND_DEATH, event)

    claim = filed.claim
    assert not filed.replayed
    assert claim.state == pb.ACCIDENT_CLAIM_STATE_FILED
    assert (claim.region, claim.person_id, claim.kind) == (LINZHI, person, pb.ACCIDENT_KIND_DEATH)
    assert date_of(claim.event_date) == event
    assert date_of(claim.received_on) == today
    assert (claim.policy, claim.fund, claim.paid_fen) == ("linzhi-2020", "accident_insurer", 0)
    assert not claim.HasField("decide_time")

    paid = decide(settlement, claim.claim_id, approve=True)

    assert paid.state == pb.ACCIDENT_CLAIM_STATE_PAID
    assert paid.paid_fen == DEATH_FEN
    assert date_of(paid.decided_on) == today
    assert paid.HasField("decide_time")
    assert get(settlement, claim.claim_id) == paid

    again = refused(lambda: decide(settlement, claim.claim_id, approve=True))
    assert (again.code, again.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ALREADY_DECIDED")
    assert again.metadata["state"] == "paid"
    rejected = refused(lambda: decide(settlement, claim.claim_id, approve=False, reason="late"))
    assert rejected.reason == "ALREADY_DECIDED"
    assert get(settlement, claim.claim_id) == paid

    second = refused(
        lambda: file_claim(settlement, person, pb.ACCIDENT_KIND_DEATH, today - timedelta(days=1))
    )
    assert (second.code, second.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "DEATH_ALREADY_PAID",
    )
    assert second.metadata["claim_id"] == str(claim.claim_id)
    assert claims_of(settlement, person) == [paid]


@pytest.mark.parametrize(
    ("claimed_fen", "paid_fen"),
    [
        pytest.param(1_234_567, MEDICAL_CAP_FEN, id="above-the-cap"),
        pytest.param(MEDICAL_CAP_FEN, MEDICAL_CAP_FEN, id="at-the-cap"),
        pytest.param(345_678, 345_678, id="below-the-cap"),
    ],
)
def test_a_medical_claim_pays_the_costs_claimed_up_to_10000(
    settlement: RunningService, claimed_fen: int, paid_fen: int
) -> None:
    person = new_person(settlement)
    event = business_day() - timedelta(days=30)
    claim = file_claim(settlement, person, pb.ACCIDENT_KIND_MEDICAL, event, claimed_fen).claim

    paid = decide(settlement, claim.claim_id, approve=True)

    assert paid.state == pb.ACCIDENT_CLAIM_STATE_PAID
    assert (paid.claimed_fen, paid.paid_fen) == (claimed_fen, paid_fen)
    assert refused(lambda: decide(settlement, claim.claim_id, approve=True)).reason == (
        "ALREADY_DECIDED"
    )
    assert get(settlement, claim.claim_id).paid_fen == paid_fen


def test_a_rejected_claim_keeps_its_reason_and_pays_nothing(settlement: RunningService) -> None:
    person = new_person(settlement)
    claim = file_claim(settlement, person, pb.ACCIDENT_KIND_MEDICAL, business_day(), 50_000).claim

    rejected = decide(settlement, claim.claim_id, approve=False, reason="  非意外: 慢性病复诊  ")

    assert rejected.state == pb.ACCIDENT_CLAIM_STATE_REJECTED
    assert (rejected.paid_fen, rejected.rejection_reason) == (0, "非意外: 慢性病复诊")
    assert refused(lambda: decide(settlement, claim.claim_id, approve=True)).reason == (
        "ALREADY_DECIDED"
    )
    assert get(settlement, claim.claim_id) == rejected


# --- the window, the region, the insurance ----------------------------------------------


def test_a_claim_outside_the_two_years_is_refused_naming_the_day_the_window_closed(
    settlement: RunningService,
) -> None:
    today = business_day()
    event = first_event_in_window(today) - timedelta(days=1)
    person = new_person(settlement, years=(event.year, today.year))

    for kind, claimed in ((pb.ACCIDENT_KIND_DEATH, 0), (pb.ACCIDENT_KIND_MEDICAL, 80_000)):
        status = refused(functools.partial(file_claim, settlement, person, kind, event, claimed))

        assert status.code == grpc.StatusCode.INVALID_ARGUMENT
        assert fields_of(status) == ["event_date"]
        closed = last_day_within(event, 2)
        assert closed == today - timedelta(days=1)
        assert f"until {closed.isoformat()}: the window closed" in status.message
    assert claims_of(settlement, person) == []


def test_a_claim_for_another_regions_resident_is_refused_naming_their_region(
    settlement: RunningService,
) -> None:
    xixia_resident = new_person(settlement, region=XIXIA)

    status = refused(
        lambda: file_claim(
            settlement, xixia_resident, pb.ACCIDENT_KIND_MEDICAL, business_day(), 10_000
        )
    )

    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert fields_of(status) == ["person_id"]
    assert f"a resident of region {XIXIA}, not of {LINZHI}" in status.message
    assert xixia_resident not in status.message  # masked
    assert claims_of(settlement, xixia_resident) == []
    assert claims_of(settlement, xixia_resident, XIXIA) == []


def test_a_region_without_accident_cover_takes_no_claim(settlement: RunningService) -> None:
    xixia_resident = new_person(settlement, region=XIXIA)

    status = refused(
        lambda: file_claim(
            settlement, xixia_resident, pb.ACCIDENT_KIND_DEATH, business_day(), region=XIXIA
        )
    )

    assert (status.code, status.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "NO_ACCIDENT_COVER",
    )
    assert "xixia-2017 has none" in status.message
    assert claims_of(settlement, xixia_resident, XIXIA) == []


def test_a_person_not_insured_on_the_event_date_is_refused(settlement: RunningService) -> None:
    today = business_day()
    person = new_person(settlement, years=(today.year,))
    last_year = date(today.year - 1, 6, 30)

    status = refused(lambda: file_claim(settlement, person, pb.ACCIDENT_KIND_DEATH, last_year))

    assert (status.code, status.reason) == (grpc.StatusCode.NOT_FOUND, "NOT_ENROLLED")
    assert f"not enrolled for {today.year - 1}" in status.message
    assert claims_of(settlement, person) == []


def test_a_person_settlement_never_received_is_not_found(settlement: RunningService) -> None:
    stranger = with_check_digit("54040219700101999")

    status = refused(
        lambda: file_claim(settlement, stranger, pb.ACCIDENT_KIND_DEATH, business_day())
    )

    assert (status.code, status.reason) == (grpc.StatusCode.NOT_FOUND, "PERSON_NOT_FOUND")
    assert claims_of(settlement, stranger) == []


# --- retries, duplicates and concurrency ------------------------------------------------


def test_a_request_id_again_answers_the_stored_claim(settlement: RunningService) -> None:
    person = new_person(settlement)
    event = business_day() - timedelta(days=3)
    key = f"{person}-r1"
    first = file_claim(settlement, person, pb.ACCIDENT_KIND_MEDICAL, event, 70_000, request_id=key)

    again = file_claim(settlement, person, pb.ACCIDENT_KIND_MEDICAL, event, 70_000, request_id=key)

    assert again.replayed
    assert again.claim == first.claim
    other = refused(
        lambda: file_claim(
            settlement, person, pb.ACCIDENT_KIND_MEDICAL, event, 70_001, request_id=key
        )
    )
    assert (other.code, other.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "IDEMPOTENCY_KEY_REUSED",
    )
    assert claims_of(settlement, person) == [first.claim]


def test_a_second_claim_of_the_same_person_kind_and_day_is_a_duplicate(
    settlement: RunningService,
) -> None:
    person = new_person(settlement)
    event = business_day() - timedelta(days=10)
    first = file_claim(settlement, person, pb.ACCIDENT_KIND_MEDICAL, event, 90_000).claim

    status = refused(
        lambda: file_claim(
            settlement, person, pb.ACCIDENT_KIND_MEDICAL, event, 20_000, request_id=f"{person}-b"
        )
    )

    assert (status.code, status.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "DUPLICATE_CLAIM")
    assert status.metadata["claim_id"] == str(first.claim_id)
    # Another kind, or another day, is another claim.
    death = file_claim(settlement, person, pb.ACCIDENT_KIND_DEATH, event).claim
    later = file_claim(
        settlement, person, pb.ACCIDENT_KIND_MEDICAL, event + timedelta(days=1), 20_000
    ).claim
    assert [claim.claim_id for claim in claims_of(settlement, person)] == [
        first.claim_id,
        death.claim_id,
        later.claim_id,
    ]


def test_concurrent_filings_store_one_claim(settlement: RunningService) -> None:
    """Eight retries of one request at once answer one claim; eight requests of one person,
    kind and day under different ids file one and refuse seven as duplicates."""
    person = new_person(settlement)
    event = business_day() - timedelta(days=5)

    def retry(_: int) -> pb.FileAccidentClaimResponse:
        return file_claim(
            settlement, person, pb.ACCIDENT_KIND_MEDICAL, event, 60_000, request_id=f"{person}-c"
        )

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(retry, range(8)))
    assert len({answer.claim.claim_id for answer in answers}) == 1
    assert sum(not answer.replayed for answer in answers) == 1

    def another(index: int) -> pb.FileAccidentClaimResponse | DecodedStatus:
        try:
            return file_claim(
                settlement, person, pb.ACCIDENT_KIND_DEATH, event, request_id=f"{person}-d{index}"
            )
        except grpc.RpcError as error:
            return decode_status(error)  # type: ignore[arg-type]

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(another, range(8)))
    filed = [outcome for outcome in outcomes if isinstance(outcome, pb.FileAccidentClaimResponse)]
    refusals = [outcome for outcome in outcomes if isinstance(outcome, DecodedStatus)]
    assert len(filed) == 1
    assert {status.reason for status in refusals} == {"DUPLICATE_CLAIM"}
    assert len(claims_of(settlement, person)) == 2


def test_of_concurrent_decisions_exactly_one_is_made(settlement: RunningService) -> None:
    """Eight decisions of one claim at once, approvals and rejections: one wins, the seven
    others are ALREADY_DECIDED, and the stored claim is the winner's."""
    person = new_person(settlement)
    claim = file_claim(
        settlement, person, pb.ACCIDENT_KIND_MEDICAL, business_day(), 1_500_000
    ).claim
    start = threading.Barrier(8)

    def decision(index: int) -> pb.AccidentClaim | DecodedStatus:
        start.wait()
        try:
            return decide(
                settlement,
                claim.claim_id,
                approve=index % 2 == 0,
                reason="" if index % 2 == 0 else f"reason {index}",
            )
        except grpc.RpcError as error:
            return decode_status(error)  # type: ignore[arg-type]

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(decision, range(8)))

    made = [outcome for outcome in outcomes if isinstance(outcome, pb.AccidentClaim)]
    refusals = [outcome for outcome in outcomes if isinstance(outcome, DecodedStatus)]
    assert len(made) == 1
    assert [status.reason for status in refusals] == ["ALREADY_DECIDED"] * 7
    assert get(settlement, claim.claim_id) == made[0]
    expected = MEDICAL_CAP_FEN if made[0].state == pb.ACCIDENT_CLAIM_STATE_PAID else 0
    assert made[0].paid_fen == expected


def test_two_death_claims_approved_at_once_pay_the_death_once(settlement: RunningService) -> None:
    """Two death claims of one person (two days named) filed before either was decided:
    approved at the same time, one pays and the other is DEATH_ALREADY_PAID."""
    person = new_person(settlement)
    today = business_day()
    claims = [
        file_claim(settlement, person, pb.ACCIDENT_KIND_DEATH, today - timedelta(days=days)).claim
        for days in (1, 2)
    ]
    start = threading.Barrier(2)

    def approve(claim: pb.AccidentClaim) -> pb.AccidentClaim | DecodedStatus:
        start.wait()
        try:
            return decide(settlement, claim.claim_id, approve=True)
        except grpc.RpcError as error:
            return decode_status(error)  # type: ignore[arg-type]

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(approve, claims))

    paid = [outcome for outcome in outcomes if isinstance(outcome, pb.AccidentClaim)]
    refusals = [outcome for outcome in outcomes if isinstance(outcome, DecodedStatus)]
    assert [claim.paid_fen for claim in paid] == [DEATH_FEN]
    assert [status.reason for status in refusals] == ["DEATH_ALREADY_PAID"]
    states = sorted(claim.state for claim in claims_of(settlement, person))
    assert states == [pb.ACCIDENT_CLAIM_STATE_FILED, pb.ACCIDENT_CLAIM_STATE_PAID]


# --- the insurer's clearing -------------------------------------------------------------


def test_the_clearing_sums_the_days_paid_claims_per_insurer(settlement: RunningService) -> None:
    """Tianjin's claims of this test alone: two paid, one rejected, one filed; the day's
    clearing counts and sums the two paid, exactly, and the day before has none."""
    today = business_day()
    persons = [
        new_person(settlement, region=TIANJIN, scheme=scheme)
        for scheme in (
            pb.SCHEME_EMPLOYEE,
            pb.SCHEME_RESIDENT,
            pb.SCHEME_RESIDENT,
            pb.SCHEME_RESIDENT,
        )
    ]
    filed = [
        file_claim(settlement, persons[0], pb.ACCIDENT_KIND_DEATH, today, region=TIANJIN),
        file_claim(
            settlement, persons[1], pb.ACCIDENT_KIND_MEDICAL, today, 1_250_001, region=TIANJIN
        ),
        file_claim(settlement, persons[2], pb.ACCIDENT_KIND_MEDICAL, today, 43_210, region=TIANJIN),
        file_claim(settlement, persons[3], pb.ACCIDENT_KIND_MEDICAL, today, 10_000, region=TIANJIN),
    ]
    assert {answer.claim.policy for answer in filed} == {"tianjin-2017"}
    decided = [
        decide(settlement, filed[0].claim.claim_id, approve=True),
        decide(settlement, filed[1].claim.claim_id, approve=True),
        decide(settlement, filed[2].claim.claim_id, approve=False, reason="材料不全"),
    ]

    clearing = stub(settlement).GetAccidentClearing(
        pb.GetAccidentClearingRequest(region=TIANJIN, date=from_date(today)), metadata=INTERNAL
    )

    paid = [claim for claim in decided if claim.state == pb.ACCIDENT_CLAIM_STATE_PAID]
    assert [(fund.fund, fund.claim_count, fund.paid_fen) for fund in clearing.funds] == [
        ("accident_insurer", 2, DEATH_FEN + MEDICAL_CAP_FEN)
    ]
    assert clearing.paid_fen == sum(claim.paid_fen for claim in paid) == DEATH_FEN + MEDICAL_CAP_FEN
    assert clearing.claim_count == len(paid) == 2
    assert clearing.region == TIANJIN
    assert date_of(clearing.date) == today
    before = stub(settlement).GetAccidentClearing(
        pb.GetAccidentClearingRequest(region=TIANJIN, date=from_date(today - timedelta(days=1))),
        metadata=INTERNAL,
    )
    assert (list(before.funds), before.claim_count, before.paid_fen) == ([], 0, 0)


# --- bad input --------------------------------------------------------------------------


def _claim(**changes: Any) -> pb.FileAccidentClaimRequest:
    """A valid medical claim of a person nobody registered, changed as given."""
    fields: dict[str, Any] = {
        "request_id": "bad-input",
        "region": LINZHI,
        "person_id": with_check_digit("54040219800101123"),
        "kind": pb.ACCIDENT_KIND_MEDICAL,
        "event_date": from_date(business_day()),
        "claimed_fen": 10_000,
    }
    fields.update(changes)
    return pb.FileAccidentClaimRequest(**fields)


_RIGHT = with_check_digit("54040219800101123")
_WRONG_CHECK_DIGIT = _RIGHT[:-1] + ("1" if _RIGHT[-1] == "0" else "0")
BAD_CLAIMS = [
    pytest.param(_claim(event_date=None), "event_date", id="no-event-date"),
    pytest.param(
        _claim(event_date={"year": 2025, "month": 2, "day": 29}), "event_date", id="not-a-real-day"
    ),
    pytest.param(
        _claim(event_date={"year": 2025, "month": 13, "day": 1}), "event_date", id="month-13"
    ),
    pytest.param(
        _claim(event_date=from_date(business_day() + timedelta(days=1))),
        "event_date",
        id="tomorrow",
    ),
    pytest.param(_claim(kind=pb.ACCIDENT_KIND_UNSPECIFIED), "kind", id="no-kind"),
    pytest.param(_claim(kind=99), "kind", id="unknown-kind"),
    pytest.param(_claim(claimed_fen=-1), "claimed_fen", id="negative"),
    pytest.param(_claim(claimed_fen=0), "claimed_fen", id="medical-zero"),
    pytest.param(_claim(claimed_fen=MAX_BILL_FEN + 1), "claimed_fen", id="past-a-bills-limit"),
    pytest.param(_claim(claimed_fen=2**63 - 1), "claimed_fen", id="int64-max"),
    pytest.param(
        _claim(kind=pb.ACCIDENT_KIND_DEATH, claimed_fen=100), "claimed_fen", id="death-with-sum"
    ),
    pytest.param(_claim(request_id=""), "request_id", id="no-request-id"),
    pytest.param(_claim(request_id="x" * 129), "request_id", id="long-request-id"),
    pytest.param(_claim(person_id=""), "person_id", id="no-person"),
    pytest.param(_claim(person_id=_WRONG_CHECK_DIGIT), "person_id", id="bad-check-digit"),
    pytest.param(_claim(region=""), "region", id="no-region"),
    pytest.param(_claim(region="999999"), "region", id="unknown-region"),
]


@pytest.mark.parametrize(("request_message", "field"), BAD_CLAIMS)
def test_a_bad_claim_is_invalid_argument_naming_the_field_and_stores_nothing(
    settlement: RunningService, request_message: pb.FileAccidentClaimRequest, field: str
) -> None:
    person = new_person(settlement)
    request = pb.FileAccidentClaimRequest()
    request.CopyFrom(request_message)
    if request.person_id == _claim().person_id:
        request.person_id = person  # a person settlement holds: only the fault is refused

    status = refused(lambda: stub(settlement).FileAccidentClaim(request, metadata=INTERNAL))

    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert fields_of(status) == [field]
    assert claims_of(settlement, person) == []


@pytest.mark.parametrize(
    ("request_message", "code", "field"),
    [
        pytest.param(
            pb.DecideAccidentClaimRequest(claim_id=0, approve=True),
            grpc.StatusCode.INVALID_ARGUMENT,
            "claim_id",
            id="no-claim-id",
        ),
        pytest.param(
            pb.DecideAccidentClaimRequest(claim_id=-4, approve=True),
            grpc.StatusCode.INVALID_ARGUMENT,
            "claim_id",
            id="negative-claim-id",
        ),
        pytest.param(
            pb.DecideAccidentClaimRequest(claim_id=2**62, approve=True),
            grpc.StatusCode.NOT_FOUND,
            "claim_id",
            id="unknown-claim",
        ),
    ],
)
def test_a_decision_of_no_claim_is_refused(
    settlement: RunningService,
    request_message: pb.DecideAccidentClaimRequest,
    code: grpc.StatusCode,
    field: str,
) -> None:
    status = refused(
        lambda: stub(settlement).DecideAccidentClaim(request_message, metadata=INTERNAL)
    )

    assert status.code == code
    assert fields_of(status) == [field]


@pytest.mark.parametrize(
    ("approve", "reason"),
    [
        pytest.param(False, "", id="reject-without-reason"),
        pytest.param(False, "   ", id="reject-with-blanks"),
        pytest.param(False, "x" * 501, id="reject-with-a-long-reason"),
        pytest.param(False, "bad\x00reason", id="reject-with-a-nul"),
        pytest.param(True, "ok", id="approve-with-a-reason"),
    ],
)
def test_a_bad_decision_is_invalid_argument_and_changes_nothing(
    settlement: RunningService, approve: bool, reason: str
) -> None:
    person = new_person(settlement)
    claim = file_claim(settlement, person, pb.ACCIDENT_KIND_MEDICAL, business_day(), 30_000).claim

    status = refused(lambda: decide(settlement, claim.claim_id, approve=approve, reason=reason))

    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert fields_of(status) == ["reason"]
    assert get(settlement, claim.claim_id) == claim


@pytest.mark.parametrize(
    ("call", "field"),
    [
        pytest.param(
            lambda s: s.ListAccidentClaims(pb.ListAccidentClaimsRequest(), metadata=INTERNAL),
            "region",
            id="list-without-region",
        ),
        pytest.param(
            lambda s: s.ListAccidentClaims(
                pb.ListAccidentClaimsRequest(region=LINZHI, state=42),  # type: ignore[arg-type]
                metadata=INTERNAL,
            ),
            "state",
            id="list-unknown-state",
        ),
        pytest.param(
            lambda s: s.ListAccidentClaims(
                pb.ListAccidentClaimsRequest(region=LINZHI, page_token="nope"), metadata=INTERNAL
            ),
            "page_token",
            id="list-foreign-token",
        ),
        pytest.param(
            lambda s: s.ListAccidentClaims(
                pb.ListAccidentClaimsRequest(region=LINZHI, page_size=-1), metadata=INTERNAL
            ),
            "page_size",
            id="list-negative-page-size",
        ),
        pytest.param(
            lambda s: s.GetAccidentClearing(
                pb.GetAccidentClearingRequest(region=LINZHI), metadata=INTERNAL
            ),
            "date",
            id="clearing-without-date",
        ),
        pytest.param(
            lambda s: s.GetAccidentClearing(
                pb.GetAccidentClearingRequest(region="12", date=from_date(business_day())),
                metadata=INTERNAL,
            ),
            "region",
            id="clearing-unknown-region",
        ),
        pytest.param(
            lambda s: s.GetAccidentClaim(pb.GetAccidentClaimRequest(), metadata=INTERNAL),
            "claim_id",
            id="get-without-id",
        ),
    ],
)
def test_bad_reads_are_invalid_argument_naming_the_field(
    settlement: RunningService,
    call: Callable[[settlement_pb2_grpc.SettlementServiceStub], object],
    field: str,
) -> None:
    status = refused(lambda: call(stub(settlement)))

    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert fields_of(status) == [field]


def test_a_list_of_one_state_holds_only_claims_in_it(settlement: RunningService) -> None:
    person = new_person(settlement)
    event = business_day() - timedelta(days=20)
    kept = file_claim(settlement, person, pb.ACCIDENT_KIND_MEDICAL, event, 12_000).claim
    paid = file_claim(settlement, person, pb.ACCIDENT_KIND_DEATH, event).claim
    paid = decide(settlement, paid.claim_id, approve=True)

    page = stub(settlement).ListAccidentClaims(
        pb.ListAccidentClaimsRequest(region=LINZHI, state=pb.ACCIDENT_CLAIM_STATE_FILED),
        metadata=INTERNAL,
    )

    assert {claim.state for claim in page.claims} == {pb.ACCIDENT_CLAIM_STATE_FILED}
    assert kept in page.claims
    assert paid not in page.claims


def test_a_hospital_may_not_file_or_read_claims(settlement: RunningService) -> None:
    """The bureau's tools only: a hospital's key is PERMISSION_DENIED."""
    with contextlib.suppress(grpc.RpcError):  # registered by an earlier run of the module
        stub(settlement).CreateHospital(
            pb.CreateHospitalRequest(
                hospital=pb.Hospital(
                    hospital_id="accident-h1", name="林芝市测试医院", region=LINZHI, level=2
                ),
                api_key=HOSPITAL_KEY,
            ),
            metadata=INTERNAL,
        )
    person = new_person(settlement)
    hospital = bearer(HOSPITAL_KEY)

    for call in (
        lambda: stub(settlement).FileAccidentClaim(
            pb.FileAccidentClaimRequest(
                request_id="h",
                region=LINZHI,
                person_id=person,
                kind=pb.ACCIDENT_KIND_DEATH,
                event_date=from_date(business_day()),
            ),
            metadata=hospital,
        ),
        lambda: stub(settlement).ListAccidentClaims(
            pb.ListAccidentClaimsRequest(region=LINZHI), metadata=hospital
        ),
        lambda: stub(settlement).GetAccidentClearing(
            pb.GetAccidentClearingRequest(region=LINZHI, date=from_date(business_day())),
            metadata=hospital,
        ),
    ):
        assert refused(call).code == grpc.StatusCode.PERMISSION_DENIED
    assert claims_of(settlement, person) == []


# --- the command line (doudi accidents) ------------------------------------------------


def doudi(
    server: RunningService,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *args: str,
) -> tuple[int, str, str]:
    monkeypatch.setenv("DOUDI_SETTLEMENT_ADDRESS", server.address)
    code = main(["accidents", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_clerk_files_decides_lists_and_clears_claims(
    settlement: RunningService, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Filed in yuan, printed in yuan with Chinese names and the number masked; approved
    once; listed as JSON in fen; the day's clearing adds up to the paid claims listed."""
    person = new_person(settlement)
    today = business_day()
    event = (today - timedelta(days=40)).isoformat()

    code, out, _ = doudi(
        settlement, monkeypatch, capsys, "file", "--region", LINZHI, "--person", person,
        "--kind", "medical", "--event-date", event, "--claimed", "12345.67",
        "--request-id", f"cli-{person}",
    )  # fmt: skip
    assert code == 0
    assert "filed:" in out
    assert "意外医疗" in out
    assert "已受理" in out
    assert "12,345.67" in out
    assert mask(person) in out
    assert person not in out
    claim_id = int(out.split()[1])

    code, out, _ = doudi(
        settlement, monkeypatch, capsys, "file", "--region", LINZHI, "--person", person,
        "--kind", "medical", "--event-date", event, "--claimed", "12345.67",
        "--request-id", f"cli-{person}",
    )  # fmt: skip
    assert (code, out.split()[1]) == (0, str(claim_id))
    assert "already filed (nothing changed)" in out

    code, out, _ = doudi(settlement, monkeypatch, capsys, "decide", str(claim_id), "--approve")
    assert code == 0
    assert "已赔付" in out
    assert "10,000.00" in out
    code, _, err = doudi(settlement, monkeypatch, capsys, "decide", str(claim_id), "--reject", "x")
    assert code == 1
    assert "cannot do that now" in err
    assert "already decided (paid)" in err

    code, out, _ = doudi(
        settlement, monkeypatch, capsys, "list", "--region", LINZHI, "--state", "paid", "--json"
    )
    assert code == 0
    listed = json.loads(out)
    mine = [claim for claim in listed if claim["claim_id"] == claim_id]
    assert mine == [
        {
            "claim_id": claim_id,
            "request_id": f"cli-{person}",
            "person_id": person,
            "region": LINZHI,
            "kind": "medical",
            "event_date": event,
            "received_on": today.isoformat(),
            "claimed_fen": 1_234_567,
            "state": "paid",
            "policy": "linzhi-2020",
            "fund": "accident_insurer",
            "decided_on": today.isoformat(),
            "paid_fen": MEDICAL_CAP_FEN,
            "rejection_reason": None,
        }
    ]

    code, out, _ = doudi(
        settlement, monkeypatch, capsys, "clearing", "--region", LINZHI, "--date",
        today.isoformat(), "--json",
    )  # fmt: skip
    assert code == 0
    clearing = json.loads(out)
    paid_today = [claim for claim in listed if claim["decided_on"] == today.isoformat()]
    assert clearing["funds"] == [
        {
            "fund": "accident_insurer",
            "claim_count": len(paid_today),
            "paid_fen": sum(claim["paid_fen"] for claim in paid_today),
        }
    ]
    assert (clearing["claim_count"], clearing["paid_fen"]) == (
        len(paid_today),
        sum(claim["paid_fen"] for claim in paid_today),
    )
    code, out, _ = doudi(
        settlement, monkeypatch, capsys, "clearing", "--region", LINZHI, "--date",
        today.isoformat(),
    )  # fmt: skip
    assert code == 0
    assert format_yuan(clearing["paid_fen"]) in out
    assert "合计" in out


def test_the_command_line_refuses_bad_input_and_files_nothing(
    settlement: RunningService, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    person = new_person(settlement)
    today = business_day()
    base = ["file", "--region", LINZHI, "--person", person]

    code, out, err = doudi(
        settlement, monkeypatch, capsys, *base, "--kind", "medical", "--event-date",
        today.isoformat(), "--claimed", "12.345",
    )  # fmt: skip
    assert (code, out) == (2, "")
    assert "--claimed: " in err
    assert "not a whole number of fen" in err
    code, out, err = doudi(
        settlement, monkeypatch, capsys, *base, "--kind", "death", "--event-date",
        today.isoformat(), "--claimed", "100",
    )  # fmt: skip
    assert (code, out) == (2, "")
    assert "a death claim pays the pack's fixed sum" in err
    code, out, err = doudi(
        settlement, monkeypatch, capsys, *base, "--kind", "medical", "--event-date",
        today.isoformat(),
    )  # fmt: skip
    assert (code, out) == (2, "")
    assert "--claimed: required for medical costs" in err
    outside = first_event_in_window(today) - timedelta(days=1)
    code, out, err = doudi(
        settlement, monkeypatch, capsys, *base, "--kind", "death", "--event-date",
        outside.isoformat(),
    )  # fmt: skip
    assert (code, out) == (2, "")
    assert "refused the request as invalid" in err
    assert "the window closed" in err
    assert person not in err
    with pytest.raises(SystemExit) as exited:
        main(["accidents", *base, "--kind", "disability", "--event-date", today.isoformat()])
    assert exited.value.code == 2
    assert "invalid choice: 'disability'" in capsys.readouterr().err
    assert claims_of(settlement, person) == []


# --- the packs' accident cover ----------------------------------------------------------


def test_the_shipped_packs_cover_accidents_in_linzhi_and_tianjin_only() -> None:
    covers = {pack.id: accident_cover(pack) for pack in PackRegistry.load()}

    linzhi = AccidentCover(
        "accident_insurer", frozenset({"employee", "resident"}), 5_000_000, 1_000_000, 2
    )
    assert covers == {
        "linzhi-2020": linzhi,
        "tianjin-2017": linzhi,
        "xixia-2017": None,
        "taishan-2022": None,
    }


def test_the_window_closes_on_the_same_day_two_years_on() -> None:
    """As the Civil Code counts a period: an accident on 29 February 2024 may be claimed
    through 28 February 2026; one on 1 March 2024 through 1 March 2026."""
    assert last_day_within(date(2024, 2, 29), 2) == date(2026, 2, 28)
    assert last_day_within(date(2024, 3, 1), 2) == date(2026, 3, 1)
    assert last_day_within(date(2023, 2, 28), 1) == date(2024, 2, 28)


def _linzhi_document() -> dict[str, Any]:
    pack = PackRegistry.load().get("linzhi-2020")
    assert pack is not None
    document: dict[str, Any] = copy.deepcopy(dict(pack.document))
    return document


@pytest.mark.parametrize(
    ("mutate", "path", "phrase"),
    [
        pytest.param(
            lambda cover: cover["insurer"].update(fund="390100"),
            "accident_cover.insurer.fund",
            "one of this pack's own funds",
            id="a-national-fund",
        ),
        pytest.param(
            lambda cover: cover["death"].pop("source"),
            "accident_cover.death",
            "needs 'source'",
            id="death-without-source",
        ),
        pytest.param(
            lambda cover: cover["medical_cap"].update(yuan=0),
            "accident_cover.medical_cap.yuan",
            "must be above 0",
            id="no-medical-cap",
        ),
        pytest.param(
            lambda cover: cover["death"].update(yuan=100_000_001),
            "accident_cover.death.yuan",
            "at most 100,000,000 yuan",
            id="death-past-an-items-limit",
        ),
        pytest.param(
            lambda cover: cover["claim_within"].update(years=0),
            "accident_cover.claim_within.years",
            "from 1 to 30",
            id="no-window",
        ),
        pytest.param(
            lambda cover: cover["covered"].update(schemes=["pensioner"]),
            "accident_cover.covered.schemes[0]",
            "unknown scheme 'pensioner'",
            id="unknown-scheme",
        ),
        pytest.param(
            lambda cover: cover.update(disability={"yuan": 1, "assumed": "x"}),
            "accident_cover",
            "unknown key 'disability'",
            id="disability-not-taken",
        ),
    ],
)
def test_a_broken_accident_cover_is_refused_naming_the_rule(
    mutate: Callable[[dict[str, Any]], object], path: str, phrase: str
) -> None:
    document = _linzhi_document()
    mutate(document["accident_cover"])

    with pytest.raises(PolicyPackError) as raised:
        compile_pack(document, "linzhi-2020.yaml")

    assert raised.value.path == path
    assert phrase in raised.value.message
