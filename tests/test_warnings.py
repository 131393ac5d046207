"""The dual early warning (双预警, issue 18 item 3, docs/domain.md section 7): raised by
assistance when a household's yearly burden passes its line, once per household, kind
and year; delivered to civil affairs and the poverty office of the household's region
through the datashare hub; acknowledged and decided there; the decision back in
assistance; overdue after the pack's 30 days.

Assistance and the hub run as real processes on each backend, each pointed at the other
(assistance's sender of warnings, the hub's sender of decisions), called as settlement,
enrollment and the agencies call them.

The lines, by hand from the packs' reference incomes (docs/domain.md section 7):
Xixia (Henan 2016) 11,697 yuan: 因病致贫 above 1,169,700 fen, 因病返贫 above 584,850;
Tianjin (2016) 20,076 yuan: 因病致贫 above 2,007,600 fen.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import grpc
import pytest
from google.type import date_pb2

from doudi.assistance.v1 import assistance_pb2 as pb
from doudi.assistance.v1.assistance_pb2_grpc import AssistanceServiceStub
from doudi.cli import demo
from doudi.common.enums import (
    HUB_WARNING_KINDS,
    HUB_WARNING_STATES,
    WARNING_KINDS,
    WARNING_STATES,
)
from doudi.datashare.v1 import datashare_pb2 as hub_pb
from doudi.datashare.v1.datashare_pb2_grpc import DatashareServiceStub
from tests.conftest import new_database
from tests.platform import Platform, demo_platforms
from tests.services import (
    INTERNAL,
    RunningService,
    bearer,
    free_port,
    start_service,
    stop_service,
)
from tests.support import run_cli, with_check_digit
from tests.test_assistance_copies import WANG, held, period, send_persons, send_statuses
from tests.test_assistance_intake import LI, ZHANG, record, refusal
from tests.test_datashare_service import day
from tests.test_settlement_flow import HOSPITAL_KEY, YEAR, new_person, paid, settle, stay

TIANJIN_PERSON = with_check_digit("12010119800101005")  # not sent by enrollment
XIXIA = "411323"
TIANJIN = "120000"
IMPOVERISHMENT_LINE = 1_169_700  # 100% of 11,697 yuan
RETURN_LINE = 584_850  # 50% of it
TIANJIN_LINE = 2_007_600  # 100% of 20,076 yuan

CIVIL_AFFAIRS = "civil-affairs-of-xixia-key"
POVERTY_OFFICE = "poverty-office-of-xixia-key"
TIANJIN_CIVIL_AFFAIRS = "civil-affairs-of-tianjin-key"
TRADE_UNION = "trade-union-key-of-xixia"
AGENCY_KEYS = {
    CIVIL_AFFAIRS: {"agency": "civil_affairs", "regions": [XIXIA]},
    POVERTY_OFFICE: {"agency": "poverty_office", "regions": [XIXIA]},
    TIANJIN_CIVIL_AFFAIRS: {"agency": "civil_affairs", "regions": [TIANJIN]},
    TRADE_UNION: "trade_union",  # a bare agency code: every region, as before
}
PURPOSE = "双预警核查"

T = TypeVar("T")


@dataclass
class Pair:
    """Assistance and the hub, each pointed at the other; either may be stopped and
    started again on its own port and database."""

    directory: Path
    urls: dict[str, str | None]
    ports: dict[str, int]
    running: dict[str, RunningService]

    def start(self, name: str) -> None:
        peer = "datashare" if name == "assistance" else "assistance"
        nowhere = f"127.0.0.1:{free_port()}"
        self.running[name] = start_service(
            name,
            self.directory,
            database_url=self.urls[name],
            env={
                "DOUDI_PORT": str(self.ports[name]),
                f"DOUDI_{peer.upper()}_ADDRESS": f"127.0.0.1:{self.ports[peer]}",
                "DOUDI_SETTLEMENT_ADDRESS": nowhere,  # the hub's statuses: not tested here
                "DOUDI_AGENCY_KEYS": json.dumps(AGENCY_KEYS),
                "DOUDI_DELIVERY_RETRY_SECONDS": "0.2",
            },
        )

    def stop(self, name: str) -> None:
        stop_service(self.running.pop(name))

    @property
    def assistance(self) -> AssistanceServiceStub:
        return AssistanceServiceStub(self.running["assistance"].channel())

    @property
    def hub(self) -> DatashareServiceStub:
        return DatashareServiceStub(self.running["datashare"].channel())


@pytest.fixture
def pair(tmp_path: Path, backend: str) -> Iterator[Pair]:
    with (
        new_database(backend, tmp_path, "assistance") as assistance_url,
        new_database(backend, tmp_path, "datashare") as hub_url,
    ):
        found = Pair(
            tmp_path,
            {"assistance": assistance_url, "datashare": hub_url},
            {"assistance": free_port(), "datashare": free_port()},
            {},
        )
        try:
            found.start("assistance")
            found.start("datashare")
            yield found
        finally:
            for name in list(found.running):
                found.stop(name)
    for name in ("assistance", "datashare"):
        log = (tmp_path / f"{name}.log").read_text(errors="replace")
        assert ZHANG not in log, f"{name} logged a full identity number"


def visit(
    event_id: int,
    person: str,
    self_pay_fen: int,
    *,
    kind: int = pb.SETTLEMENT_EVENT_KIND_SETTLED,
    settlement: str = "",
    region: str = XIXIA,
) -> pb.SettlementEvent:
    """An outpatient visit of 1,000 yuan paid by the basic fund plus what the person paid."""
    return pb.SettlementEvent(
        event_id=event_id,
        kind=kind,
        settlement_id=settlement or f"s-{event_id}",
        person_id=person,
        region=region,
        visit_type=pb.VISIT_TYPE_OUTPATIENT_GENERAL,
        settled_on=day("2026-05-20"),
        total_fen=100_000 + self_pay_fen,
        in_scope_fen=100_000 + self_pay_fen,
        out_of_scope_fen=0,
        payments=[pb.FundPayment(layer="basic", fund="390100", paid_fen=100_000)],
        self_pay_fen=self_pay_fen,
        policy="xixia-2017" if region == XIXIA else "tianjin-2017",
    )


def reversal(event_id: int, of: int, person: str, self_pay_fen: int) -> pb.SettlementEvent:
    return visit(
        event_id,
        person,
        self_pay_fen,
        kind=pb.SETTLEMENT_EVENT_KIND_REVERSED,
        settlement=f"s-{of}",
    )


def listed(stub: AssistanceServiceStub, region: str = XIXIA, **filters: Any) -> list[Any]:
    answer = stub.ListWarnings(
        pb.ListWarningsRequest(region=region, year=2026, **filters), metadata=INTERNAL
    )
    return list(answer.warnings)


def seen_by(stub: DatashareServiceStub, key: str, **filters: Any) -> list[Any]:
    answer = stub.ListWarnings(
        hub_pb.ListWarningsRequest(purpose=PURPOSE, **filters), metadata=bearer(key)
    )
    return list(answer.warnings)


def members(warning: Any) -> list[tuple[str, str, int]]:
    return [(m.person_id, m.name, m.personal_burden_fen) for m in warning.members]


def eventually(probe: Callable[[], T], done: Callable[[T], bool], seconds: float = 20) -> T:
    """``probe()`` once ``done`` holds of it (a delivery between services takes a moment)."""
    deadline = time.monotonic() + seconds
    while True:
        found = probe()
        if done(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def household_of_two(stub: AssistanceServiceStub) -> None:
    """Zhang and Wang, one household of Xixia, without statuses."""
    send_persons(
        stub,
        pb.InsuredPerson(person_id=ZHANG, version=1, name="张三", household_id="H-1", region=XIXIA),
        pb.InsuredPerson(person_id=WANG, version=1, name="王五", household_id="H-1", region=XIXIA),
    )


def raised_for_zhang(pair: Pair) -> Any:
    """The household of two past the 因病致贫 line; the warning once the hub has it."""
    household_of_two(pair.assistance)
    record(pair.assistance, visit(1, ZHANG, IMPOVERISHMENT_LINE + 1))
    (warning,) = listed(pair.assistance)
    eventually(lambda: seen_by(pair.hub, CIVIL_AFFAIRS), bool)
    return warning


def hub_warning(pair: Pair, warning_id: int, key: str = CIVIL_AFFAIRS) -> Any:
    return pair.hub.GetWarning(
        hub_pb.GetWarningRequest(warning_id=warning_id, purpose=PURPOSE), metadata=bearer(key)
    ).warning


def decide(pair: Pair, key: str, warning_id: int, **decision: Any) -> Any:
    return pair.hub.DecideWarning(
        hub_pb.DecideWarningRequest(warning_id=warning_id, **decision), metadata=bearer(key)
    ).warning


def assertions_of(pair: Pair, person: str) -> list[Any]:
    return list(
        pair.hub.ListStatusAssertions(
            hub_pb.ListStatusAssertionsRequest(person_id=person), metadata=INTERNAL
        ).assertions
    )


def state_in_assistance(pair: Pair, warning_id: int, state: int) -> Any:
    return eventually(
        lambda: (
            pair.assistance.GetWarning(
                pb.GetWarningRequest(warning_id=warning_id), metadata=INTERNAL
            ).warning
        ),
        lambda found: found.decision.state == state,
    )


# --- raising --------------------------------------------------------------------------


def test_impoverishment_is_raised_once_when_the_households_burden_passes_the_line(
    pair: Pair,
) -> None:
    stub = pair.assistance
    household_of_two(stub)
    record(stub, visit(1, ZHANG, 600_000))
    assert listed(stub) == []
    # Together exactly on the line: not past it.
    record(stub, visit(2, WANG, IMPOVERISHMENT_LINE - 600_000))
    assert listed(stub) == []
    record(stub, visit(3, ZHANG, 1))
    (warning,) = listed(stub)
    assert warning.kind == pb.WARNING_KIND_IMPOVERISHMENT
    assert (warning.household_id, warning.region, warning.year, warning.policy) == (
        "H-1",
        XIXIA,
        2026,
        "xixia-2017",
    )
    assert (warning.burden_fen, warning.threshold_fen) == (
        IMPOVERISHMENT_LINE + 1,
        IMPOVERISHMENT_LINE,
    )
    assert members(warning) == [
        (ZHANG, "张三", 600_001),
        (WANG, "王五", IMPOVERISHMENT_LINE - 600_000),
    ]
    assert warning.raised_by == "settlement event 3"
    assert warning.decision.state == pb.WARNING_STATE_RAISED
    # More burden, a reversal below the line, and past it again: still the one warning.
    record(stub, visit(4, WANG, 100_000))
    record(stub, reversal(5, 1, ZHANG, 600_000))
    assert listed(stub) == [warning]
    record(stub, visit(6, ZHANG, 600_000))
    assert listed(stub) == [warning]
    got = stub.GetWarning(pb.GetWarningRequest(warning_id=warning.warning_id), metadata=INTERNAL)
    assert got.warning == warning


def test_a_household_that_left_poverty_is_warned_of_returning_at_half_the_line(
    pair: Pair,
) -> None:
    stub = pair.assistance
    send_persons(
        stub,
        pb.InsuredPerson(person_id=LI, version=1, name="李四", household_id="H-2", region=XIXIA),
    )
    # Registered poor until 2020: the poverty status ended, the household left poverty.
    send_statuses(stub, held(LI, 1, period(pb.STATUS_REGISTERED_POOR, "2016-01-01", "2020-12-31")))
    record(stub, visit(1, LI, RETURN_LINE))
    assert listed(stub) == []
    record(stub, visit(2, LI, 1))
    (warning,) = listed(stub)
    assert warning.kind == pb.WARNING_KIND_RETURN_TO_POVERTY
    assert (warning.burden_fen, warning.threshold_fen) == (RETURN_LINE + 1, RETURN_LINE)
    assert members(warning) == [(LI, "李四", RETURN_LINE + 1)]
    assert listed(stub, kind=pb.WARNING_KIND_IMPOVERISHMENT) == []


def test_a_person_enrollment_has_not_sent_is_a_household_alone_on_the_regions_line(
    pair: Pair,
) -> None:
    stub = pair.assistance
    record(stub, visit(1, TIANJIN_PERSON, TIANJIN_LINE, region=TIANJIN))
    assert listed(stub, TIANJIN) == []
    record(stub, visit(2, TIANJIN_PERSON, 1, region=TIANJIN))
    (warning,) = listed(stub, TIANJIN)
    assert warning.kind == pb.WARNING_KIND_IMPOVERISHMENT
    assert (warning.household_id, warning.threshold_fen, warning.policy) == (
        TIANJIN_PERSON,
        TIANJIN_LINE,
        "tianjin-2017",
    )
    assert members(warning) == [(TIANJIN_PERSON, "", TIANJIN_LINE + 1)]
    assert listed(stub) == []  # Xixia's


# --- at the hub -----------------------------------------------------------------------


def test_the_warning_reaches_the_agencies_of_its_region_only_and_every_read_is_audited(
    pair: Pair,
) -> None:
    warning = raised_for_zhang(pair)
    for key in (CIVIL_AFFAIRS, POVERTY_OFFICE):
        (seen,) = seen_by(pair.hub, key)
        assert (seen.warning_id, seen.kind, seen.household_id) == (
            warning.warning_id,
            hub_pb.WARNING_KIND_IMPOVERISHMENT,
            "H-1",
        )
        assert members(seen) == members(warning)
        assert seen.decision.state == hub_pb.WARNING_STATE_RAISED
    assert seen_by(pair.hub, CIVIL_AFFAIRS, region=XIXIA, year=2026) == [seen]
    # Tianjin's civil affairs sees nothing of Xixia's.
    assert seen_by(pair.hub, TIANJIN_CIVIL_AFFAIRS) == []
    denied = refusal(lambda: seen_by(pair.hub, TIANJIN_CIVIL_AFFAIRS, region=XIXIA))
    assert (denied.code, denied.violations[0].field) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "region",
    )
    missing = refusal(lambda: hub_warning(pair, warning.warning_id, TIANJIN_CIVIL_AFFAIRS))
    assert missing.code == grpc.StatusCode.NOT_FOUND
    # Warnings are not the trade union's.
    for call in (
        lambda: seen_by(pair.hub, TRADE_UNION),
        lambda: hub_warning(pair, warning.warning_id, TRADE_UNION),
    ):
        assert refusal(call).code == grpc.StatusCode.PERMISSION_DENIED
    no_purpose = refusal(
        lambda: pair.hub.ListWarnings(hub_pb.ListWarningsRequest(), metadata=bearer(CIVIL_AFFAIRS))
    )
    assert (no_purpose.code, no_purpose.violations[0].field) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "purpose",
    )
    audit = pair.hub.ListAuditEvents(
        hub_pb.ListAuditEventsRequest(person_id=WANG), metadata=INTERNAL
    ).events
    # Every read that showed Wang's burden: the first (raised_for_zhang's), then these.
    assert [(event.caller, event.method, event.purpose) for event in audit] == [
        ("civil_affairs", "ListWarnings", PURPOSE),
        ("civil_affairs", "ListWarnings", PURPOSE),
        ("poverty_office", "ListWarnings", PURPOSE),
        ("civil_affairs", "ListWarnings", PURPOSE),
    ]


def test_acknowledged_then_dismissed_with_a_reason_and_the_decision_back_in_assistance(
    pair: Pair,
) -> None:
    warning = raised_for_zhang(pair)
    acknowledged = pair.hub.AcknowledgeWarning(
        hub_pb.AcknowledgeWarningRequest(warning_id=warning.warning_id),
        metadata=bearer(POVERTY_OFFICE),
    ).warning
    assert acknowledged.decision.state == hub_pb.WARNING_STATE_ACKNOWLEDGED
    assert acknowledged.decision.acknowledged_by == hub_pb.AGENCY_POVERTY_OFFICE
    back = state_in_assistance(pair, warning.warning_id, pb.WARNING_STATE_ACKNOWLEDGED)
    assert back.decision.acknowledged_by == pb.AGENCY_POVERTY_OFFICE
    reason = "入户核实: 家庭收入高于预警线"
    dismissed = decide(
        pair, CIVIL_AFFAIRS, warning.warning_id, dismiss=hub_pb.WarningDismissal(reason=reason)
    )
    assert (dismissed.decision.state, dismissed.decision.decided_by, dismissed.decision.reason) == (
        hub_pb.WARNING_STATE_DISMISSED,
        hub_pb.AGENCY_CIVIL_AFFAIRS,
        reason,
    )
    back = state_in_assistance(pair, warning.warning_id, pb.WARNING_STATE_DISMISSED)
    assert (back.decision.decided_by, back.decision.reason) == (pb.AGENCY_CIVIL_AFFAIRS, reason)
    assert listed(pair.assistance, state=pb.WARNING_STATE_DISMISSED) == [back]
    # A second decision, or acknowledging it now: refused, nothing changes.
    for call in (
        lambda: decide(
            pair,
            POVERTY_OFFICE,
            warning.warning_id,
            certify=hub_pb.WarningCertification(
                status=hub_pb.STATUS_AT_RISK, valid_from=day("2026-06-01")
            ),
        ),
        lambda: pair.hub.AcknowledgeWarning(
            hub_pb.AcknowledgeWarningRequest(warning_id=warning.warning_id),
            metadata=bearer(CIVIL_AFFAIRS),
        ),
    ):
        assert refusal(call).code == grpc.StatusCode.FAILED_PRECONDITION
    assert hub_warning(pair, warning.warning_id).decision == dismissed.decision
    assert assertions_of(pair, ZHANG) == []


def test_certifying_records_the_status_of_every_member_as_the_agencys_assertion(
    pair: Pair,
) -> None:
    warning = raised_for_zhang(pair)
    certified = decide(
        pair,
        POVERTY_OFFICE,
        warning.warning_id,
        certify=hub_pb.WarningCertification(
            status=hub_pb.STATUS_AT_RISK, valid_from=day("2026-06-01")
        ),
    )
    assert certified.decision.state == hub_pb.WARNING_STATE_CERTIFIED
    assert certified.decision.certified_status == hub_pb.STATUS_AT_RISK
    for person in (ZHANG, WANG):
        (assertion,) = assertions_of(pair, person)
        assert (
            assertion.status,
            assertion.agency,
            assertion.household_id,
            assertion.reference,
        ) == (
            hub_pb.STATUS_AT_RISK,
            hub_pb.AGENCY_POVERTY_OFFICE,
            "H-1",
            f"warning:{warning.warning_id}:{person}",
        )
        assert (assertion.valid_from.year, assertion.valid_from.month) == (2026, 6)
    back = state_in_assistance(pair, warning.warning_id, pb.WARNING_STATE_CERTIFIED)
    assert (back.decision.certified_status, back.decision.decided_by) == (
        pb.STATUS_AT_RISK,
        pb.AGENCY_POVERTY_OFFICE,
    )
    assert (back.decision.valid_from.year, back.decision.valid_from.month) == (2026, 6)


AT_RISK_FROM_JUNE = {
    "status": hub_pb.STATUS_AT_RISK,
    "valid_from": day("2026-06-01"),
}


@pytest.mark.parametrize(
    ("key", "decision", "code", "field"),
    [
        # Civil affairs does not own at_risk, nor the poverty office low_income.
        (
            CIVIL_AFFAIRS,
            {"certify": hub_pb.WarningCertification(**AT_RISK_FROM_JUNE)},
            grpc.StatusCode.PERMISSION_DENIED,
            "certify.status",
        ),
        (
            POVERTY_OFFICE,
            {
                "certify": hub_pb.WarningCertification(
                    status=hub_pb.STATUS_LOW_INCOME, valid_from=day("2026-06-01")
                )
            },
            grpc.StatusCode.PERMISSION_DENIED,
            "certify.status",
        ),
        # Civil affairs owns dibao, but a warning is not decided by it.
        (
            CIVIL_AFFAIRS,
            {
                "certify": hub_pb.WarningCertification(
                    status=hub_pb.STATUS_DIBAO, valid_from=day("2026-06-01")
                )
            },
            grpc.StatusCode.INVALID_ARGUMENT,
            "certify.status",
        ),
        (
            POVERTY_OFFICE,
            {"certify": hub_pb.WarningCertification(status=hub_pb.STATUS_AT_RISK)},
            grpc.StatusCode.INVALID_ARGUMENT,
            "certify.valid_from",
        ),
        (
            POVERTY_OFFICE,
            {
                "certify": hub_pb.WarningCertification(
                    **AT_RISK_FROM_JUNE, valid_to=day("2026-05-31")
                )
            },
            grpc.StatusCode.INVALID_ARGUMENT,
            "certify.valid_to",
        ),
        (
            POVERTY_OFFICE,
            {
                "certify": hub_pb.WarningCertification(
                    status=hub_pb.STATUS_AT_RISK,
                    valid_from=date_pb2.Date(year=2026, month=2, day=30),
                )
            },
            grpc.StatusCode.INVALID_ARGUMENT,
            "certify.valid_from",
        ),
        (
            CIVIL_AFFAIRS,
            {"dismiss": hub_pb.WarningDismissal(reason="  ")},
            grpc.StatusCode.INVALID_ARGUMENT,
            "dismiss.reason",
        ),
        (
            CIVIL_AFFAIRS,
            {"dismiss": hub_pb.WarningDismissal(reason="x" * 201)},
            grpc.StatusCode.INVALID_ARGUMENT,
            "dismiss.reason",
        ),
        (CIVIL_AFFAIRS, {}, grpc.StatusCode.INVALID_ARGUMENT, "decision"),
        (
            TRADE_UNION,
            {"dismiss": hub_pb.WarningDismissal(reason="not ours")},
            grpc.StatusCode.PERMISSION_DENIED,
            "",
        ),
        (
            TIANJIN_CIVIL_AFFAIRS,
            {"dismiss": hub_pb.WarningDismissal(reason="not ours")},
            grpc.StatusCode.NOT_FOUND,
            "warning_id",
        ),
    ],
    ids=[
        "civil affairs certifies at_risk",
        "poverty office certifies low_income",
        "dibao",
        "no valid_from",
        "valid_to before valid_from",
        "impossible date",
        "blank reason",
        "long reason",
        "no decision",
        "trade union",
        "another region",
    ],
)
def test_a_bad_decision_is_refused_with_its_field_and_changes_nothing(
    pair: Pair, key: str, decision: dict[str, Any], code: grpc.StatusCode, field: str
) -> None:
    warning = raised_for_zhang(pair)
    before = hub_warning(pair, warning.warning_id)
    refused = refusal(lambda: decide(pair, key, warning.warning_id, **decision))
    assert refused.code == code
    assert [v.field for v in refused.violations][:1] == ([field] if field else [])
    assert hub_warning(pair, warning.warning_id) == before
    assert before.decision.state == hub_pb.WARNING_STATE_RAISED
    assert assertions_of(pair, ZHANG) == assertions_of(pair, WANG) == []
    time.sleep(0.5)  # a decision would be back by now
    assert listed(pair.assistance) == [warning]


def test_an_unknown_or_malformed_warning_id_is_refused(pair: Pair) -> None:
    raised_for_zhang(pair)
    dismiss = {"dismiss": hub_pb.WarningDismissal(reason="checked")}
    unknown = refusal(lambda: decide(pair, CIVIL_AFFAIRS, 999, **dismiss))
    assert (unknown.code, unknown.violations[0].field) == (grpc.StatusCode.NOT_FOUND, "warning_id")
    for call in (
        lambda: decide(pair, CIVIL_AFFAIRS, 0, **dismiss),
        lambda: pair.hub.AcknowledgeWarning(
            hub_pb.AcknowledgeWarningRequest(warning_id=-1), metadata=bearer(CIVIL_AFFAIRS)
        ),
    ):
        malformed = refusal(call)
        assert (malformed.code, malformed.violations[0].field) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "warning_id",
        )
    missing = refusal(
        lambda: pair.assistance.GetWarning(pb.GetWarningRequest(warning_id=999), metadata=INTERNAL)
    )
    assert missing.code == grpc.StatusCode.NOT_FOUND
    # Only the platform sends decisions to assistance, well formed.
    sent = pb.RecordWarningDecisionsRequest(
        decisions=[pb.WarningDecision(warning_id=1, version=1, state=pb.WARNING_STATE_CERTIFIED)]
    )
    malformed = refusal(lambda: pair.assistance.RecordWarningDecisions(sent, metadata=INTERNAL))
    assert (malformed.code, malformed.violations[0].field) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "decisions[0].certified_status",
    )
    assert listed(pair.assistance)[0].decision.state == pb.WARNING_STATE_RAISED


def test_a_warning_undecided_for_30_days_is_overdue(pair: Pair) -> None:
    warning = raised_for_zhang(pair)
    raised_on = (
        warning.raised_at.ToDatetime()
        .replace(tzinfo=ZoneInfo("UTC"))
        .astimezone(ZoneInfo("Asia/Shanghai"))
        .date()
    )
    due = raised_on + timedelta(days=30)
    assert date(warning.due_on.year, warning.due_on.month, warning.due_on.day) == due

    def judged(on: date) -> tuple[bool, int, int]:
        as_of = day(on.isoformat())
        got = pair.assistance.GetWarning(
            pb.GetWarningRequest(warning_id=warning.warning_id, as_of=as_of), metadata=INTERNAL
        ).warning
        return (
            got.overdue,
            len(listed(pair.assistance, overdue_only=True, as_of=as_of)),
            len(seen_by(pair.hub, CIVIL_AFFAIRS, overdue_only=True, as_of=as_of)),
        )

    assert judged(due - timedelta(days=1)) == (False, 0, 0)
    assert judged(due) == (True, 1, 1)
    assert listed(pair.assistance)[0].overdue is False  # today
    decide(pair, CIVIL_AFFAIRS, warning.warning_id, dismiss=hub_pb.WarningDismissal(reason="ok"))
    state_in_assistance(pair, warning.warning_id, pb.WARNING_STATE_DISMISSED)
    assert judged(due + timedelta(days=100)) == (False, 0, 0)


def test_a_warning_raised_while_the_hub_is_down_arrives_once_and_the_decision_comes_back_while_assistance_was_down(
    pair: Pair,
) -> None:
    pair.stop("datashare")
    household_of_two(pair.assistance)
    record(pair.assistance, visit(1, ZHANG, IMPOVERISHMENT_LINE + 1))
    (warning,) = listed(pair.assistance)
    time.sleep(1)  # a few failed sends
    pair.start("datashare")
    (seen,) = eventually(lambda: seen_by(pair.hub, CIVIL_AFFAIRS), bool)
    assert (seen.warning_id, seen.version, seen.burden_fen) == (
        warning.warning_id,
        1,
        IMPOVERISHMENT_LINE + 1,
    )
    time.sleep(1)
    assert seen_by(pair.hub, CIVIL_AFFAIRS) == [seen]
    # And back: assistance down while the agency decides.
    pair.stop("assistance")
    decide(pair, CIVIL_AFFAIRS, warning.warning_id, dismiss=hub_pb.WarningDismissal(reason="ok"))
    time.sleep(1)
    pair.start("assistance")
    back = state_in_assistance(pair, warning.warning_id, pb.WARNING_STATE_DISMISSED)
    assert back.decision.reason == "ok"


# --- the bureau's command line --------------------------------------------------------


def test_doudi_warnings_list(pair: Pair, capsys: pytest.CaptureFixture[str]) -> None:
    warning = raised_for_zhang(pair)
    address = ["--assistance", pair.running["assistance"].address]
    code, out, err = run_cli(
        ["warnings", "list", "--region", XIXIA, "--year", "2026", "--json", *address], capsys
    )
    assert (code, err) == (0, "")
    (found,) = json.loads(out)
    assert {key: found[key] for key in ("id", "kind", "household_id", "burden_fen")} == {
        "id": warning.warning_id,
        "kind": "impoverishment",
        "household_id": "H-1",
        "burden_fen": IMPOVERISHMENT_LINE + 1,
    }
    assert (found["threshold_fen"], found["state"], found["overdue"]) == (
        IMPOVERISHMENT_LINE,
        "raised",
        False,
    )
    assert [m["person_id"] for m in found["members"]] == [ZHANG, WANG]
    code, out, err = run_cli(
        ["warnings", "list", "--region", XIXIA, "--year", "2026", *address], capsys
    )
    assert code == 0
    assert "因病致贫" in out
    assert "11,697.01 元 > 预警线 11,697.00 元" in out
    code, out, err = run_cli(
        ["warnings", "list", "--region", XIXIA, "--year", "2025", *address], capsys
    )
    assert (code, out) == (0, f"{XIXIA} 2025: 无预警 (no warnings)\n")
    with pytest.raises(SystemExit) as bad:
        run_cli(["warnings", "list", "--region", "4113", "--year", "2026"], capsys)
    assert bad.value.code == 2
    assert "'4113' is not a 6-digit region code" in capsys.readouterr().err
    nowhere = ["--assistance", f"127.0.0.1:{free_port()}"]
    code, out, err = run_cli(
        ["warnings", "list", "--region", XIXIA, "--year", "2026", *nowhere], capsys
    )
    assert (code, out, err.count("\n")) == (1, "", 1)


# --- the contracts --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raiser", "hub"),
    [
        (pb.Warning, hub_pb.Warning),
        (pb.WarningMember, hub_pb.WarningMember),
        (pb.WarningDecision, hub_pb.WarningDecision),
    ],
    ids=["warning", "member", "decision"],
)
def test_the_hubs_warnings_have_assistances_field_numbers_and_types(raiser: Any, hub: Any) -> None:
    def shape(message: Any) -> dict[str, tuple[int, int]]:
        return {f.name: (f.number, f.type) for f in message.DESCRIPTOR.fields}

    assert shape(hub) == shape(raiser)


@pytest.mark.parametrize(
    ("raiser", "hub"), [(WARNING_KINDS, HUB_WARNING_KINDS), (WARNING_STATES, HUB_WARNING_STATES)]
)
def test_the_hubs_warning_enums_have_assistances_numbers(raiser: Any, hub: Any) -> None:
    assert dict(hub.enum.items()) == dict(raiser.enum.items())


def test_the_day_a_warning_is_due_is_the_bureaus() -> None:
    from doudi.core.monitoring import warning_due_on

    # 20:00 UTC on 31 May is already 1 June in Shanghai.
    assert warning_due_on(datetime(2026, 5, 31, 20, tzinfo=ZoneInfo("UTC")), 30) == date(2026, 7, 1)


# --- the whole platform: a certified status applies at the next settlement -------------


@pytest.fixture(scope="module")
def platforms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Platform]]:
    with demo_platforms(tmp_path_factory, "warnings", YEAR) as on:
        yield on


def event_of(number: int, person: str, settled: dict[str, Any], on: str) -> pb.SettlementEvent:
    """A settlement the gateway answered, as settlement's sender sends it to assistance."""
    return pb.SettlementEvent(
        event_id=number,
        kind=pb.SETTLEMENT_EVENT_KIND_SETTLED,
        settlement_id=settled["id"],
        person_id=person,
        region=XIXIA,
        visit_type=pb.VISIT_TYPE_INPATIENT,
        settled_on=day(on),
        total_fen=settled["total_fen"],
        in_scope_fen=settled["in_scope_fen"],
        out_of_scope_fen=settled["out_of_scope_fen"],
        payments=[
            pb.FundPayment(layer=layer["layer"], fund=layer["fund"], paid_fen=layer["paid_fen"])
            for layer in settled["layers"]
            if layer["paid_fen"]
        ],
        self_pay_fen=settled["self_pay_fen"],
        policy=settled["policy"],
    )


def test_a_status_certified_on_a_warning_applies_at_the_next_settlement_through_the_gateway(
    backend: str, platforms: Callable[[str], Platform]
) -> None:
    platform = platforms(backend)
    client = platform.client(HOSPITAL_KEY)
    person = new_person(platform)  # enrolled in Xixia, no status
    assistance = AssistanceServiceStub(platform.services["assistance"].channel())
    hub = DatashareServiceStub(platform.services["datashare"].channel())
    send_persons(
        assistance,
        pb.InsuredPerson(
            person_id=person, version=1, name="测试", household_id=f"h-{person[-8:]}", region=XIXIA
        ),
    )
    # 15,000 yuan of class C: out of scope, all the patient's, past the 因病致贫 line.
    first = settle(client, person, stay("w1", "03-10", 15_000, item_class="C"))
    assert first.status_code == 201, first.text
    assert first.json()["self_pay_fen"] > IMPOVERISHMENT_LINE
    record(assistance, event_of(1, person, first.json(), f"{YEAR}-03-10"))
    (warning,) = [w for w in listed_in(assistance, YEAR) if w.household_id == f"h-{person[-8:]}"]
    # The demo's poverty office key (a bare agency code: every region) sees it.
    poverty_office = bearer(demo.POVERTY_OFFICE_KEY)
    arrived = eventually(
        lambda: seen_by(hub, demo.POVERTY_OFFICE_KEY, region=XIXIA, year=YEAR),
        lambda found: any(w.warning_id == warning.warning_id for w in found),
    )
    assert warning.warning_id in [w.warning_id for w in arrived]
    hub.DecideWarning(
        hub_pb.DecideWarningRequest(
            warning_id=warning.warning_id,
            certify=hub_pb.WarningCertification(
                status=hub_pb.STATUS_AT_RISK, valid_from=day(f"{YEAR}-01-01")
            ),
        ),
        metadata=poverty_office,
    )
    # The next settlement: medical assistance (at_risk among its statuses, 70% of the
    # in-scope remainder) pays at once.
    second = settle(client, person, stay("w2", "03-20", 20_000))
    assert second.status_code == 201, second.text
    layers = paid(second.json())
    others = sum(fen for layer, fen in layers.items() if layer != "medical_assistance")
    assert layers["medical_assistance"] == (20_000 * 100 - others) * 70 // 100
    assert layers["medical_assistance"] > 0
    back = eventually(
        lambda: (
            assistance.GetWarning(
                pb.GetWarningRequest(warning_id=warning.warning_id), metadata=INTERNAL
            ).warning
        ),
        lambda found: found.decision.state == pb.WARNING_STATE_CERTIFIED,
    )
    assert back.decision.certified_status == pb.STATUS_AT_RISK


def listed_in(stub: AssistanceServiceStub, year: int) -> list[Any]:
    return list(
        stub.ListWarnings(
            pb.ListWarningsRequest(region=XIXIA, year=year), metadata=INTERNAL
        ).warnings
    )


def test_members_settled_at_the_same_moment_raise_their_households_warning_once(
    pair: Pair,
) -> None:
    """Two members' visits recorded by two calls at once, each below the line alone and
    past it together: the crossing is seen once (PostgreSQL runs the two transactions at
    the same time; the household's lock orders them)."""
    households = 12
    people = [
        (with_check_digit(f"4113231980{month:02d}{day_:02d}{serial:03d}"), f"C-{month}")
        for month in range(1, households + 1)
        for serial, day_ in ((1, 1), (2, 2))
    ]
    send_persons(
        pair.assistance,
        *(
            pb.InsuredPerson(
                person_id=person, version=1, name="并发", household_id=household, region=XIXIA
            )
            for person, household in people
        ),
    )
    half = IMPOVERISHMENT_LINE // 2 + 1
    barrier = threading.Barrier(2)
    channel = pair.running["assistance"]

    def send(offset: int) -> None:
        stub = AssistanceServiceStub(channel.channel())
        for index in range(offset, len(people), 2):
            barrier.wait()
            record(stub, visit(index + 1, people[index][0], half))

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(send, (0, 1)))
    found = listed(pair.assistance)
    assert sorted(warning.household_id for warning in found) == sorted(
        f"C-{month}" for month in range(1, households + 1)
    )
    assert {warning.burden_fen for warning in found} == {2 * half}


def test_a_key_may_name_its_agency_and_regions() -> None:
    from pydantic import ValidationError

    from services.datashare.settings import AgencyKey, Settings

    keys = {"k" * 24: {"agency": "civil_affairs", "regions": [XIXIA]}, "j" * 24: "trade_union"}
    settings = Settings(environment="local", agency_keys=keys)
    assert settings.agency_credentials == {
        "k" * 24: AgencyKey(agency="civil_affairs", regions=frozenset({XIXIA})),
        "j" * 24: AgencyKey(agency="trade_union", regions=None),
    }
    for bad in (
        {"k" * 24: {"agency": "hospital", "regions": [XIXIA]}},
        {"k" * 24: {"agency": "civil_affairs", "regions": []}},
        {"k" * 24: {"agency": "civil_affairs", "region": [XIXIA]}},
    ):
        with pytest.raises(ValidationError, match="DOUDI_AGENCY_KEYS") as refused:
            Settings(environment="local", agency_keys=bad)
        assert "k" * 24 not in str(refused.value)  # a key is a secret
