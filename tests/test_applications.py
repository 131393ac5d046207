"""Assistance on application (issue 18, item 6; docs/domain.md section 7, 依申请救助):
acceptance with missing documents and commitments, the deadline of 30 working days on the
Chinese calendar (National Day, Spring Festival, swapped working days, a year not yet
known), overdue applications, decisions taken once, and an approved expenditure_hardship
application certified through the hub once, even when the hub was down, applying at the
next settlement and requesting screening of the person's year.

The tests start ``python -m services.assistance`` (and datashare, or the whole platform)
as real processes on each backend and call them as the CLI does, with the platform's token.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy

from doudi.assistance.v1 import assistance_pb2 as pb
from doudi.assistance.v1.assistance_pb2_grpc import AssistanceServiceStub
from doudi.cli import applications as cli_applications
from doudi.cli import demo
from doudi.cli.launcher import free_ports
from doudi.common.errors import decode_status
from doudi.common.protos import from_date
from doudi.datashare.v1 import datashare_pb2, datashare_pb2_grpc
from services.assistance.tables import applications, screening_requests
from tests.conftest import new_database
from tests.platform import Platform, demo_platforms
from tests.services import (
    INTERNAL,
    RunningService,
    bearer,
    no_peers,
    running_service,
    start_service,
    stop_service,
)
from tests.support import business_day, run_cli, with_check_digit

ZHANG = with_check_digit("41132319500315001")
LI = with_check_digit("41132319620812002")
TODAY = business_day()

# The bureau's table for 2027 (a test's, not the State Council's): New Year's Day and
# Monday 4 January off, Saturday 9 January worked instead.
TABLE_2027 = {"2027": {"holidays": ["2027-01-01", "2027-01-04"], "workdays": ["2027-01-09"]}}


def start_assistance(
    directory: Path, database_url: str, *, calendar: dict[str, Any] | None = None, **env: str
) -> RunningService:
    """Assistance alone; the hub at an address where nothing answers unless ``env`` says."""
    settings = {"DOUDI_DATASHARE_ADDRESS": no_peers()["DOUDI_SETTLEMENT_ADDRESS"], **env}
    if calendar is not None:
        path = directory / "calendar.yaml"
        path.write_text(json.dumps(calendar))
        settings["DOUDI_WORKING_CALENDAR_FILE"] = str(path)
    return start_service("assistance", directory, database_url=database_url, env=settings)


@pytest.fixture
def assistance(tmp_path: Path, database_url: str) -> Iterator[AssistanceServiceStub]:
    service = start_assistance(tmp_path, database_url)
    try:
        yield AssistanceServiceStub(service.channel())
    finally:
        stop_service(service)
    assert ZHANG not in service.log(), "the service logged a full identity number"


def day(text: str) -> Any:
    return from_date(date.fromisoformat(text))


def request(
    request_id: str = "r-1",
    *,
    person: str = ZHANG,
    kind: pb.ApplicationKind.ValueType = pb.APPLICATION_KIND_TEMPORARY,
    accepted_on: str = TODAY.isoformat(),
    missing: tuple[tuple[str, str], ...] = (),
    region: str = "411323",
) -> pb.AcceptApplicationRequest:
    return pb.AcceptApplicationRequest(
        request_id=request_id,
        person_id=person,
        household_id=f"h-{person[-8:]}",
        region=region,
        kind=kind,
        accepted_on=day(accepted_on),
        documents_received=["身份证", "医疗费用发票"],
        missing_documents=[
            pb.MissingDocument(name=name, due_on=day(due_on)) for name, due_on in missing
        ],
        commitments=["家庭收入证明"],
        case_worker="王芳",
    )


def accept(assistance: AssistanceServiceStub, message: pb.AcceptApplicationRequest) -> Any:
    return assistance.AcceptApplication(message, metadata=INTERNAL)


def get(assistance: AssistanceServiceStub, application_id: int) -> pb.Application:
    answer = assistance.GetApplication(
        pb.GetApplicationRequest(application_id=application_id), metadata=INTERNAL
    )
    return answer.application


def listed(assistance: AssistanceServiceStub, **filters: Any) -> list[pb.Application]:
    answer = assistance.ListApplications(pb.ListApplicationsRequest(**filters), metadata=INTERNAL)
    return list(answer.applications)


def decide(
    assistance: AssistanceServiceStub,
    application_id: int,
    *,
    approve: bool = True,
    amount_fen: int = 0,
    reason: str = "核实属实",
    decided_on: str | None = None,
) -> pb.Application:
    message = pb.DecideApplicationRequest(
        application_id=application_id,
        decision=pb.DECISION_APPROVE if approve else pb.DECISION_REFUSE,
        reason=reason,
        approved_amount_fen=amount_fen,
        case_worker="李科长",
    )
    if decided_on is not None:
        message.decided_on.CopyFrom(day(decided_on))
    return assistance.DecideApplication(message, metadata=INTERNAL).application


def refusal(call: Callable[[], object]) -> Any:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return decode_status(caught.value)  # type: ignore[arg-type]


def as_date(value: Any) -> date:
    return date(value.year, value.month, value.day)


# --- the deadline ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accepted_on", "deadline"),
    [
        # National Day 2025: 1-8 October off; Sunday 28 September and Saturday 11 October
        # worked. From Friday 26 September: 28-30 Sep (3), 9-11 Oct (6), then 24 weekdays
        # to Thursday 13 November.
        ("2025-09-26", "2025-11-13"),
        # Spring Festival 2026: 15-23 February off; Saturdays 14 and 28 February worked.
        # From Tuesday 10 February: 11-14 Feb (4), 24-28 Feb (9), then 21 weekdays to
        # Monday 30 March.
        ("2026-02-10", "2026-03-30"),
    ],
)
def test_the_deadline_is_30_working_days_on_the_chinese_calendar(
    assistance: AssistanceServiceStub, accepted_on: str, deadline: str
) -> None:
    answer = accept(assistance, request(accepted_on=accepted_on))
    assert as_date(answer.application.deadline) == date.fromisoformat(deadline)
    assert not answer.application.deadline_provisional


def test_a_deadline_in_a_year_not_known_is_provisional_until_the_bureaus_table_knows_it(
    tmp_path: Path, database_url: str
) -> None:
    accepted_on = "2026-12-01"  # a Tuesday; the 30th working day falls in 2027
    service = start_assistance(tmp_path, database_url)
    try:
        first = accept(AssistanceServiceStub(service.channel()), request(accepted_on=accepted_on))
    finally:
        stop_service(service)
    # Monday to Friday in 2027: 22 working days in December, then 1 and 4-8 January, 11-12.
    assert as_date(first.application.deadline) == date(2027, 1, 12)
    assert first.application.deadline_provisional

    # The bureau adds 2027 to its table: the deadline is counted again at the start.
    service = start_assistance(tmp_path, database_url, calendar=TABLE_2027)
    try:
        again = get(AssistanceServiceStub(service.channel()), first.application.application_id)
    finally:
        stop_service(service)
    # 1 and 4 January off, Saturday 9 January worked: 5-9 January (27), 11-13 January.
    assert as_date(again.deadline) == date(2027, 1, 13)
    assert not again.deadline_provisional


@pytest.mark.parametrize(
    ("table", "entry"),
    [
        ({"2027": {"holidays": ["2027-02-30"]}}, "calendar.2027.holidays[0]"),
        ({"2027": {"workdays": ["2027-01-05"]}}, "calendar.2027.workdays[0]"),
    ],
)
def test_a_bad_calendar_file_stops_the_start_with_one_clear_line(
    tmp_path: Path, database_url: str, table: dict[str, Any], entry: str
) -> None:
    with pytest.raises(RuntimeError) as failed:
        start_assistance(tmp_path, database_url, calendar=table)
    log = str(failed.value)
    assert f"DOUDI_WORKING_CALENDAR_FILE {tmp_path / 'calendar.yaml'}: {entry}" in log
    assert "Traceback" not in log


def test_an_undecided_application_past_its_deadline_is_overdue(
    assistance: AssistanceServiceStub,
) -> None:
    late = accept(assistance, request("late", accepted_on="2025-09-26")).application
    fresh = accept(assistance, request("fresh")).application
    assert late.overdue
    assert late.working_days_left == 0
    assert not fresh.overdue
    assert fresh.working_days_left == 30
    assert [a.application_id for a in listed(assistance, overdue_only=True)] == [
        late.application_id
    ]
    decided = decide(assistance, late.application_id, amount_fen=300_000)
    assert not decided.overdue
    assert listed(assistance, overdue_only=True) == []


# --- acceptance, documents and decisions ----------------------------------------------------


def test_a_retried_acceptance_answers_the_same_application(
    assistance: AssistanceServiceStub,
) -> None:
    first = accept(assistance, request("window-7"))
    again = accept(assistance, request("window-7"))
    assert not first.replayed
    assert again.replayed
    assert again.application == first.application
    assert len(listed(assistance)) == 1
    error = refusal(lambda: accept(assistance, request("window-7", person=LI)))
    assert error.code == grpc.StatusCode.ALREADY_EXISTS
    assert len(listed(assistance)) == 1


def test_missing_documents_are_supplied_before_approval(assistance: AssistanceServiceStub) -> None:
    due = (TODAY + timedelta(days=10)).isoformat()
    accepted = accept(assistance, request(missing=(("诊断证明", due), ("住院病历", due))))
    application = accepted.application
    assert application.state == pb.APPLICATION_STATE_ACCEPTED
    assert list(application.commitments) == ["家庭收入证明"]

    error = refusal(lambda: decide(assistance, application.application_id, amount_fen=1))
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "住院病历, 诊断证明" in error.message
    assert get(assistance, application.application_id).state == pb.APPLICATION_STATE_ACCEPTED

    for name in ("诊断证明", "住院病历"):
        supplied = assistance.SupplyDocument(
            pb.SupplyDocumentRequest(
                application_id=application.application_id,
                name=name,
                supplied_on=day(TODAY.isoformat()),
            ),
            metadata=INTERNAL,
        ).application
    assert supplied.state == pb.APPLICATION_STATE_UNDER_REVIEW
    assert all(as_date(doc.supplied_on) == TODAY for doc in supplied.missing_documents)

    approved = decide(assistance, application.application_id, amount_fen=520_000)
    assert approved.state == pb.APPLICATION_STATE_APPROVED
    assert approved.approved_amount_fen == 520_000
    assert as_date(approved.decided_on) == TODAY


def supply(assistance: AssistanceServiceStub, application_id: int, name: str, on: str) -> Any:
    return assistance.SupplyDocument(
        pb.SupplyDocumentRequest(application_id=application_id, name=name, supplied_on=day(on)),
        metadata=INTERNAL,
    ).application


def test_a_document_is_supplied_once_and_only_if_it_was_missing(
    assistance: AssistanceServiceStub,
) -> None:
    accepted = accept(
        assistance, request(accepted_on="2026-02-10", missing=(("诊断证明", "2026-02-20"),))
    )
    number = accepted.application.application_id
    error = refusal(lambda: supply(assistance, number, "户口簿", "2026-02-12"))
    assert (error.code, [v.field for v in error.violations]) == (
        grpc.StatusCode.NOT_FOUND,
        ["name"],
    )
    error = refusal(lambda: supply(assistance, number, "诊断证明", "2026-02-09"))
    assert [v.field for v in error.violations] == ["supplied_on"]
    assert get(assistance, number) == accepted.application

    supplied = supply(assistance, number, "诊断证明", "2026-02-12")
    assert supply(assistance, number, "诊断证明", "2026-02-12") == supplied  # a retry
    error = refusal(lambda: supply(assistance, number, "诊断证明", "2026-02-13"))
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert as_date(get(assistance, number).missing_documents[0].supplied_on) == date(2026, 2, 12)


def test_a_second_decision_is_refused_and_changes_nothing(
    assistance: AssistanceServiceStub,
) -> None:
    application = accept(assistance, request()).application
    refused = decide(assistance, application.application_id, approve=False, reason="收入超标")
    assert refused.state == pb.APPLICATION_STATE_REFUSED
    error = refusal(lambda: decide(assistance, application.application_id, amount_fen=100_000))
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert [v.field for v in error.violations] == ["application_id"]
    assert get(assistance, application.application_id) == refused


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            lambda r: setattr(r, "person_id", ZHANG[:-1] + ("0" if ZHANG[-1] != "0" else "1")),
            "person_id",
        ),
        (lambda r: setattr(r, "person_id", ""), "person_id"),
        (
            lambda r: r.accepted_on.__setattr__("day", 30) or r.accepted_on.__setattr__("month", 2),
            "accepted_on",
        ),
        (lambda r: r.ClearField("accepted_on"), "accepted_on"),
        (
            lambda r: r.accepted_on.CopyFrom(day((TODAY + timedelta(days=1)).isoformat())),
            "accepted_on",
        ),
        (lambda r: setattr(r, "region", "999999"), "region"),
        (lambda r: setattr(r, "kind", 0), "kind"),
        (lambda r: setattr(r, "request_id", ""), "request_id"),
        (lambda r: setattr(r, "case_worker", " "), "case_worker"),
        (
            lambda r: r.missing_documents.add(name="诊断证明", due_on=day("2020-01-01")),
            "missing_documents[0].due_on",
        ),
        (lambda r: r.documents_received.append("身份证"), "documents_received[2]"),
    ],
)
def test_a_bad_application_names_its_field_and_records_nothing(
    assistance: AssistanceServiceStub, change: Callable[[Any], object], field: str
) -> None:
    bad = request()
    change(bad)
    error = refusal(lambda: accept(assistance, bad))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.violations] == [field]
    assert listed(assistance) == []


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"amount_fen": -1}, "approved_amount_fen"),
        ({"amount_fen": 10_000_001}, "approved_amount_fen"),
        ({"amount_fen": 0}, "approved_amount_fen"),  # one-off assistance needs its amount
        ({"approve": False, "amount_fen": 100}, "approved_amount_fen"),
        ({"amount_fen": 100, "reason": ""}, "reason"),
        ({"amount_fen": 100, "decided_on": "2025-09-25"}, "decided_on"),
        ({"amount_fen": 100, "decided_on": (TODAY + timedelta(days=1)).isoformat()}, "decided_on"),
    ],
)
def test_a_bad_decision_names_its_field_and_changes_nothing(
    assistance: AssistanceServiceStub, arguments: dict[str, Any], field: str
) -> None:
    application = accept(assistance, request(accepted_on="2025-09-26")).application
    error = refusal(lambda: decide(assistance, application.application_id, **arguments))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.violations] == [field]
    assert get(assistance, application.application_id) == application


def test_an_unknown_application_is_not_found(assistance: AssistanceServiceStub) -> None:
    error = refusal(lambda: decide(assistance, 41, amount_fen=100))
    assert error.code == grpc.StatusCode.NOT_FOUND
    error = refusal(lambda: get(assistance, 41))
    assert error.code == grpc.StatusCode.NOT_FOUND


def test_only_the_platform_may_accept_or_decide(assistance: AssistanceServiceStub) -> None:
    error = refusal(
        lambda: assistance.AcceptApplication(request(), metadata=bearer(demo.POVERTY_OFFICE_KEY))
    )
    assert error.code == grpc.StatusCode.UNAUTHENTICATED
    assert listed(assistance) == []


# --- expenditure_hardship through the hub ---------------------------------------------------


def hub_statuses(hub: datashare_pb2_grpc.DatashareServiceStub, person: str) -> list[Any]:
    answer = hub.GetPersonStatuses(
        datashare_pb2.GetPersonStatusesRequest(person_id=person), metadata=INTERNAL
    )
    return [
        (period.status, period.agency, as_date(period.valid_from), as_date(period.valid_to))
        for period in answer.periods
    ]


def hub_assertions(hub: datashare_pb2_grpc.DatashareServiceStub, person: str) -> list[Any]:
    answer = hub.ListStatusAssertions(
        datashare_pb2.ListStatusAssertionsRequest(person_id=person), metadata=INTERNAL
    )
    return list(answer.assertions)


def engine_of(service: RunningService, directory: Path) -> sqlalchemy.Engine:
    url = service.env.get("DOUDI_DATABASE_URL") or f"sqlite:///{directory / 'assistance.db'}"
    return sqlalchemy.create_engine(url)


def test_an_approval_while_the_hub_is_down_reaches_it_once_it_is_back(
    tmp_path: Path, database_url: str, backend: str
) -> None:
    (hub_port,) = free_ports(1)
    service = start_assistance(
        tmp_path / "assistance",
        database_url,
        DOUDI_DATASHARE_ADDRESS=f"127.0.0.1:{hub_port}",
        DOUDI_DELIVERY_RETRY_SECONDS="0.3",
    )
    try:
        assistance = AssistanceServiceStub(service.channel())
        application = accept(
            assistance,
            request(kind=pb.APPLICATION_KIND_EXPENDITURE_HARDSHIP, accepted_on="2026-02-10"),
        ).application
        approved = decide(assistance, application.application_id, decided_on="2026-03-02")
        assert approved.state == pb.APPLICATION_STATE_APPROVED
        assert as_date(approved.status_valid_from) == date(2026, 3, 2)
        assert as_date(approved.status_valid_to) == date(2027, 3, 1)
        assert not approved.status_certified  # the hub is down

        with (
            new_database(backend, tmp_path, "hub") as hub_url,
            running_service(
                "datashare",
                tmp_path / "hub",
                database_url=hub_url,
                env={**no_peers(), "DOUDI_PORT": str(hub_port)},
            ) as datashare,
        ):
            hub = datashare_pb2_grpc.DatashareServiceStub(datashare.channel())
            deadline = time.monotonic() + 20
            while not get(assistance, application.application_id).status_certified:
                assert time.monotonic() < deadline, "the status never reached the hub"
                time.sleep(0.1)
            time.sleep(1)  # further rounds of the sender's loop send nothing again
            assert hub_statuses(hub, ZHANG) == [
                (
                    datashare_pb2.STATUS_EXPENDITURE_HARDSHIP,
                    datashare_pb2.AGENCY_CIVIL_AFFAIRS,
                    date(2026, 3, 2),
                    date(2027, 3, 1),
                )
            ]
            (assertion,) = hub_assertions(hub, ZHANG)
            assert assertion.reference == f"assistance-application-{application.application_id}"
            audit = hub.ListAuditEvents(
                datashare_pb2.ListAuditEventsRequest(person_id=ZHANG), metadata=INTERNAL
            ).events
            assert [(event.caller, event.method) for event in audit] == [
                ("platform", "AssertStatus")
            ]
        assert "not yet sent to the datashare service" in service.log()
        engine = engine_of(service, tmp_path)
        with engine.connect() as connection:
            requested = connection.execute(
                sqlalchemy.select(
                    screening_requests.c.person_id,
                    screening_requests.c.year,
                    screening_requests.c.reason,
                )
            ).all()
        engine.dispose()
        assert requested == [(ZHANG, 2026, "expenditure_hardship_certified")]
    finally:
        stop_service(service)


# --- the whole platform --------------------------------------------------------------------


@pytest.fixture(scope="module")
def platforms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Platform]]:
    with demo_platforms(tmp_path_factory, "applications", TODAY.year) as on:
        yield on


def test_an_approved_expenditure_hardship_applies_at_the_next_settlement(
    backend: str, platforms: Callable[[str], Platform]
) -> None:
    from tests.test_settlement_flow import HOSPITAL_KEY, new_person, paid, settle

    platform = platforms(backend)
    client = platform.client(HOSPITAL_KEY)
    person = new_person(platform)  # enrolled in Xixia, no status
    visit = {
        "type": "inpatient",
        "admitted": TODAY.isoformat(),
        "discharged": TODAY.isoformat(),
        "items": [{"code": "X1", "class": "A", "amount_fen": 2_000_000}],
    }
    before = settle(client, person, {"id": "a1", **visit})
    assert before.status_code == 201, before.text
    assert paid(before.json())["medical_assistance"] == 0

    assistance = AssistanceServiceStub(platform.services["assistance"].channel())
    application = accept(
        assistance, request(person=person, kind=pb.APPLICATION_KIND_EXPENDITURE_HARDSHIP)
    ).application
    approved = decide(assistance, application.application_id)
    assert approved.status_certified  # the hub had it before the answer

    hub = datashare_pb2_grpc.DatashareServiceStub(platform.services["datashare"].channel())
    assert [period[:3] for period in hub_statuses(hub, person)] == [
        (datashare_pb2.STATUS_EXPENDITURE_HARDSHIP, datashare_pb2.AGENCY_CIVIL_AFFAIRS, TODAY)
    ]
    after = settle(client, person, {"id": "a2", **visit})
    assert after.status_code == 201, after.text
    assert paid(after.json())["medical_assistance"] > 0

    engine = engine_of(platform.services["assistance"], platform.directory)
    with engine.connect() as connection:
        requested = connection.execute(
            sqlalchemy.select(
                screening_requests.c.person_id,
                screening_requests.c.year,
                screening_requests.c.source,
            )
        ).all()
        state = connection.execute(
            sqlalchemy.select(applications.c.state).where(
                applications.c.application_id == application.application_id
            )
        ).scalar_one()
    engine.dispose()
    assert (person, TODAY.year, f"application {application.application_id}") in requested
    assert state == "approved"


def test_an_agency_may_not_assert_for_another_agency(
    backend: str, platforms: Callable[[str], Platform]
) -> None:
    platform = platforms(backend)
    hub = datashare_pb2_grpc.DatashareServiceStub(platform.services["datashare"].channel())
    message = datashare_pb2.AssertStatusRequest(
        person_id=LI,
        household_id="h-1",
        status=datashare_pb2.STATUS_EXPENDITURE_HARDSHIP,
        valid_from=day("2026-01-01"),
        reference="union-for-civil-affairs",
    )
    error = refusal(
        lambda: hub.AssertStatus(
            message,
            metadata=(*bearer(demo.POVERTY_OFFICE_KEY), ("doudi-acting-for", "civil_affairs")),
        )
    )
    assert error.code == grpc.StatusCode.PERMISSION_DENIED
    error = refusal(lambda: hub.AssertStatus(message, metadata=INTERNAL))
    assert error.code == grpc.StatusCode.PERMISSION_DENIED
    error = refusal(
        lambda: hub.AssertStatus(message, metadata=(*INTERNAL, ("doudi-acting-for", "hospital")))
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert hub_assertions(hub, LI) == []


# --- doudi applications ----------------------------------------------------------------------


@pytest.fixture
def address(tmp_path: Path, database_url: str) -> Iterator[str]:
    service = start_assistance(tmp_path, database_url)
    try:
        yield service.address
    finally:
        stop_service(service)


def doudi(capsys: pytest.CaptureFixture[str], address: str, *argv: str) -> tuple[int, str, str]:
    """``doudi applications ...`` in this process (argparse's refusals exit)."""
    try:
        return run_cli(["applications", *argv, "--assistance", address], capsys)
    except SystemExit as exit:
        captured = capsys.readouterr()
        return int(exit.code or 0), captured.out, captured.err


def test_the_window_accepts_lists_and_decides_from_the_command_line(
    address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    accept_argv = [
        "accept", "--person", ZHANG, "--household", "h-1", "--region", "411323",
        "--kind", "temporary", "--accepted-on", "2025-09-26", "--received", "身份证",
        "--missing", "诊断证明=2025-10-15", "--commitment", "家庭收入证明",
        "--case-worker", "王芳", "--json",
    ]  # fmt: skip
    code, out, err = doudi(capsys, address, *accept_argv)
    assert (code, err) == (0, "")
    accepted = json.loads(out)
    assert accepted["deadline"] == "2025-11-13"
    assert accepted["missing_documents"] == [
        {"name": "诊断证明", "due_on": "2025-10-15", "supplied_on": None}
    ]
    code, out, _ = doudi(capsys, address, *accept_argv)  # run again: the same application
    assert json.loads(out)["application_id"] == accepted["application_id"]

    code, out, _ = doudi(capsys, address, "list", "--overdue")
    assert code == 0
    assert "逾期" in out
    assert "\033[" not in out  # no colour when not on a terminal
    assert ZHANG not in out  # masked in the table

    number = str(accepted["application_id"])
    code, _, err = doudi(
        capsys, address, "decide", number, "--approve", "--amount", "5200", "--reason", "属实",
        "--case-worker", "李", "--on", "2025-10-20",
    )  # fmt: skip
    assert code == 1
    assert "诊断证明" in err  # still missing
    code, _, _ = doudi(
        capsys, address, "supply", number, "--document", "诊断证明", "--on", "2025-10-14"
    )
    assert code == 0
    code, out, _ = doudi(
        capsys, address, "decide", number, "--approve", "--amount", "5200.50", "--reason", "属实",
        "--case-worker", "李", "--on", "2025-10-20", "--json",
    )  # fmt: skip
    assert code == 0
    assert json.loads(out)["approved_amount_fen"] == 520_050
    code, out, _ = doudi(capsys, address, "show", number)
    assert "5200.50 yuan" in out
    code, _, err = doudi(
        capsys, address, "decide", number, "--refuse", "--reason", "再议", "--case-worker", "李"
    )
    assert code == 1
    assert "already approved" in err


def test_bad_input_on_the_command_line_exits_2_naming_it(
    address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["accept", "--household", "h-1", "--region", "411323", "--kind", "temporary",
            "--case-worker", "王芳"]  # fmt: skip
    code, _, err = doudi(capsys, address, *base, "--person", "411323")
    assert code == 2
    assert "person_id" in err
    code, _, err = doudi(capsys, address, *base, "--person", ZHANG, "--accepted-on", "2026-02-30")
    assert code == 2
    assert "--accepted-on" in err
    code, _, err = doudi(capsys, address, "decide", "1", "--approve", "--amount", "-5",
                         "--reason", "x", "--case-worker", "李")  # fmt: skip
    assert code == 2
    assert "--amount" in err
    code, out, _ = doudi(capsys, address, "list", "--json")
    assert json.loads(out) == []


def test_an_overdue_line_is_red_on_a_terminal(assistance: AssistanceServiceStub) -> None:
    late = accept(assistance, request("late", accepted_on="2025-09-26")).application
    fresh = accept(assistance, request("fresh")).application
    lines = cli_applications.table([late, fresh], color=True).splitlines()
    assert lines[1].startswith(cli_applications.RED)
    assert cli_applications.RED not in lines[2]
    assert "逾期" in lines[1]
    assert "30" in lines[2].split()
