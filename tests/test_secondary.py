"""Secondary assistance (二次救助, issue 18 item 4): who is owed what under the pack's rule,
a run approved once, each person paid once across runs and approvals (concurrent ones
too), a reversal after payment flagged and nothing taken back, bad input refused with
its field, and the bank file.

Each test starts ``python -m services.assistance`` as a real process on each backend,
feeds it settlement events as the settlement service does, and calls it as the bureau's
command line does (the platform's token). Xixia's pack (``xixia-2017``) is the default
rule of docs/domain.md section 7: 50% of the yearly eligible burden above 5,000 yuan, up
to 20,000 a year; the registered poor (建档立卡) are recipients, a difficult worker (困难
职工) is not.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from doudi.assistance.v1 import assistance_pb2 as pb
from doudi.assistance.v1.assistance_pb2_grpc import AssistanceServiceStub
from doudi.cli.main import main
from doudi.core.identity import mask
from tests.services import INTERNAL, running_service
from tests.support import with_check_digit
from tests.test_assistance_intake import record, refusal
from tests.test_datashare_service import day

XIXIA = "411323"
TIANJIN = "120000"
ANNA = with_check_digit("41132319500315001")  # two recipient visits, one after June
BO = with_check_digit("41132319620812002")  # far above the cap
CHEN = with_check_digit("41132319700101003")  # below the threshold
DING = with_check_digit("41132319800202004")  # no status at all
EN = with_check_digit("41132319800303005")  # a status that is not a recipient's
FANG = with_check_digit("12010119600404006")  # a recipient of Tianjin


@dataclass
class Assistance:
    stub: AssistanceServiceStub
    address: str
    ids: Iterator[int]

    def visit(self, person: str, eligible_yuan: int, **options: Any) -> None:
        """Record a visit (see :meth:`event`)."""
        record(self.stub, self.event(person, eligible_yuan, **options))

    def event(
        self,
        person: str,
        eligible_yuan: int,
        *,
        out_of_scope_yuan: int = 0,
        statuses: tuple[pb.Status.ValueType, ...] = (pb.STATUS_REGISTERED_POOR,),
        on: str = "2026-05-20",
        region: str = XIXIA,
        policy: str = "xixia-2017",
        settlement: str | None = None,
        reversed_: bool = False,
    ) -> pb.SettlementEvent:
        """A visit whose person paid ``eligible_yuan`` in scope and ``out_of_scope_yuan`` out
        of it (basic insurance paid 10,000)."""
        event_id = next(self.ids)
        self_pay = (eligible_yuan + out_of_scope_yuan) * 100
        total = self_pay + 1_000_000
        return pb.SettlementEvent(
            event_id=event_id,
            kind=(
                pb.SETTLEMENT_EVENT_KIND_REVERSED if reversed_ else pb.SETTLEMENT_EVENT_KIND_SETTLED
            ),
            settlement_id=settlement or f"s-{event_id}",
            person_id=person,
            region=region,
            visit_type=pb.VISIT_TYPE_INPATIENT,
            settled_on=day(on),
            total_fen=total,
            in_scope_fen=total - out_of_scope_yuan * 100,
            out_of_scope_fen=out_of_scope_yuan * 100,
            payments=[pb.FundPayment(layer="basic", fund="390100", paid_fen=1_000_000)],
            self_pay_fen=self_pay,
            statuses=statuses,
            policy=policy,
        )

    def create(
        self,
        request_id: str,
        *,
        region: str = XIXIA,
        year: int = 2026,
        through: str = "2026-06-30",
        case_worker: str = "王芳",
    ) -> pb.SecondaryRun:
        answer = self.stub.CreateSecondaryRun(
            pb.CreateSecondaryRunRequest(
                request_id=request_id,
                region=region,
                year=year,
                through=day(through),
                case_worker=case_worker,
            ),
            metadata=INTERNAL,
        )
        return answer.run

    def approve(self, run_id: int, approver: str = "李主任") -> pb.SecondaryRun:
        answer = self.stub.ApproveSecondaryRun(
            pb.ApproveSecondaryRunRequest(run_id=run_id, approver=approver), metadata=INTERNAL
        )
        return answer.run

    def entries(
        self, run_id: int, *, paid_only: bool = False, page_size: int = 2
    ) -> list[pb.SecondaryRunEntry]:
        found: list[pb.SecondaryRunEntry] = []
        token = ""
        while True:
            page = self.stub.ListSecondaryRunEntries(
                pb.ListSecondaryRunEntriesRequest(
                    run_id=run_id, paid_only=paid_only, page_size=page_size, page_token=token
                ),
                metadata=INTERNAL,
            )
            found.extend(page.entries)
            token = page.next_page_token
            if not token:
                return found

    def figures(self, run_id: int) -> dict[str, tuple[int, int, int, int, bool, int]]:
        """Per person: eligible burden, owed, paid before, to pay, flagged, paid (fen)."""
        return {
            entry.person_id: (
                entry.eligible_burden_fen,
                entry.owed_fen,
                entry.paid_before_fen,
                entry.to_pay_fen,
                entry.flagged,
                entry.paid_fen,
            )
            for entry in self.entries(run_id)
        }

    def paid_before(self, person: str, request_id: str) -> int:
        """What the ledger holds for ``person`` in 2026, as a new full-year run sees it."""
        run = self.create(request_id, through="2026-12-31")
        return next(e.paid_before_fen for e in self.entries(run.run_id) if e.person_id == person)


@pytest.fixture
def assistance(tmp_path: Path, database_url: str) -> Iterator[Assistance]:
    with running_service("assistance", tmp_path, database_url=database_url) as running:
        yield Assistance(
            AssistanceServiceStub(running.channel()), running.address, itertools.count(1)
        )
    for number in (ANNA, BO, CHEN):
        assert number not in running.log(), "the service logged a full identity number"


def region_of_six(assistance: Assistance) -> None:
    """The small region every test starts from (hand computation beside each person)."""
    # Anna: 8,000 (9,000 paid, 1,000 of it out of scope) + 10,000 = 18,000 eligible by
    # June: 50% of 13,000 = 6,500 owed. A visit as a difficult worker does not count; one
    # in August counts only for a run through then.
    assistance.visit(ANNA, 8_000, out_of_scope_yuan=1_000, on="2026-03-02")
    assistance.visit(ANNA, 10_000, on="2026-06-30")
    assistance.visit(ANNA, 5_000, statuses=(pb.STATUS_DIFFICULT_WORKER,), on="2026-04-01")
    assistance.visit(ANNA, 2_000, on="2026-08-01")
    # Bo: 40,000 + 20,000 = 60,000: 50% of 55,000 = 27,500, capped at 20,000.
    assistance.visit(BO, 40_000, on="2026-02-10", settlement="bo-big")
    assistance.visit(BO, 20_000, on="2026-04-10")
    # Chen: 4,000, not above 5,000: a recipient owed nothing. His 2025 visit is another year.
    assistance.visit(CHEN, 4_000, on="2026-01-15")
    assistance.visit(CHEN, 30_000, on="2025-12-20")
    # Ding (no status) and En (a trade union's status only) are not recipients.
    assistance.visit(DING, 30_000, statuses=())
    assistance.visit(EN, 30_000, statuses=(pb.STATUS_DIFFICULT_WORKER,))
    # Fang is a recipient of Tianjin (its pack counts dibao), not of Xixia.
    assistance.visit(
        FANG, 30_000, statuses=(pb.STATUS_DIBAO,), region=TIANJIN, policy="tianjin-2017"
    )


ANNA_OWED = 650_000
BO_OWED = 2_000_000


def test_owed_to_date_as_computed_by_hand(assistance: Assistance) -> None:
    region_of_six(assistance)
    run = assistance.create("r-1")
    assert assistance.figures(run.run_id) == {
        ANNA: (1_800_000, ANNA_OWED, 0, ANNA_OWED, False, 0),
        BO: (6_000_000, BO_OWED, 0, BO_OWED, False, 0),
        CHEN: (400_000, 0, 0, 0, False, 0),
    }
    assert (run.entry_count, run.payable_count, run.to_pay_fen, run.flagged_count) == (
        3,
        2,
        ANNA_OWED + BO_OWED,
        0,
    )
    assert (run.approver, run.paid_fen, list(run.unjudged_policies)) == ("", 0, [])
    reasons = {entry.person_id: entry.reason for entry in assistance.entries(run.run_id)}
    assert "50% of 13000.00 = 6500.00" in reasons[ANNA]
    assert "capped at the yearly 20000.00" in reasons[BO]
    assert "not above the threshold 5000.00" in reasons[CHEN]
    entry = assistance.entries(run.run_id)[0]
    assert (entry.policy, entry.threshold_fen, entry.share_basis_points, entry.yearly_cap_fen) == (
        "xixia-2017",
        500_000,
        5_000,
        2_000_000,
    )
    # Tianjin's run has Fang alone: 50% of 25,000 = 12,500.
    tianjin = assistance.create("r-tj", region=TIANJIN)
    assert assistance.figures(tianjin.run_id) == {
        FANG: (3_000_000, 1_250_000, 0, 1_250_000, False, 0)
    }


def test_a_year_under_two_packs_is_judged_by_the_latest(assistance: Assistance) -> None:
    # A visit settled under a pack this service does not know is not judged, and said so.
    assistance.visit(ANNA, 8_000, on="2026-03-02")
    assistance.visit(ANNA, 6_000, on="2026-04-02", policy="linzhi-2020")
    assistance.visit(ANNA, 50_000, on="2026-05-02", policy="nowhere-2026")
    run = assistance.create("r-1")
    (entry,) = assistance.entries(run.run_id)
    assert (entry.eligible_burden_fen, entry.owed_fen, entry.policy) == (
        1_400_000,
        450_000,
        "linzhi-2020",
    )
    assert "the rule of linzhi-2020, the latest visit's" in entry.reason
    assert list(run.unjudged_policies) == ["nowhere-2026"]


def test_a_person_is_paid_once_across_runs_and_approvals(assistance: Assistance) -> None:
    region_of_six(assistance)
    first = assistance.create("r-1")
    # The same request again answers the same run; with other figures it is refused.
    assert assistance.create("r-1").run_id == first.run_id
    error = refusal(lambda: assistance.create("r-1", through="2026-07-31"))
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert [violation.field for violation in error.violations] == ["request_id"]

    approved = assistance.approve(first.run_id)
    assert (approved.approver, approved.paid_count, approved.paid_fen) == (
        "李主任",
        2,
        ANNA_OWED + BO_OWED,
    )
    error = refusal(lambda: assistance.approve(first.run_id, "另一人"))
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert (
        assistance.stub.GetSecondaryRun(
            pb.GetSecondaryRunRequest(run_id=first.run_id), metadata=INTERNAL
        ).run
        == approved
    )

    again = assistance.create("r-2")
    assert (again.payable_count, again.to_pay_fen) == (0, 0)
    assert assistance.figures(again.run_id)[ANNA] == (1_800_000, ANNA_OWED, ANNA_OWED, 0, False, 0)
    assert assistance.approve(again.run_id).paid_fen == 0

    # Through December Anna's August visit counts: 50% of 15,000 = 7,500, of it 6,500 paid.
    later = assistance.create("r-3", through="2026-12-31")
    assert assistance.figures(later.run_id)[ANNA] == (
        2_000_000,
        750_000,
        ANNA_OWED,
        100_000,
        False,
        0,
    )
    assert (later.payable_count, later.to_pay_fen) == (1, 100_000)
    assert assistance.approve(later.run_id).paid_fen == 100_000
    assert assistance.paid_before(ANNA, "r-4") == 750_000
    assert assistance.paid_before(BO, "r-5") == BO_OWED


def test_two_runs_made_before_either_is_approved_pay_once(assistance: Assistance) -> None:
    region_of_six(assistance)
    first = assistance.create("r-1")
    second = assistance.create("r-2")
    assert second.to_pay_fen == first.to_pay_fen == ANNA_OWED + BO_OWED
    # Runs of another region and another year touch none of these persons.
    assert (
        assistance.approve(assistance.create("r-tj", region=TIANJIN).run_id).paid_fen == 1_250_000
    )
    last_year = assistance.create("r-2025", year=2025, through="2025-12-31")
    assert assistance.figures(last_year.run_id) == {
        CHEN: (3_000_000, 1_250_000, 0, 1_250_000, False, 0)
    }
    assert assistance.approve(last_year.run_id).paid_fen == 1_250_000

    assert assistance.approve(second.run_id).paid_fen == ANNA_OWED + BO_OWED
    assert assistance.approve(first.run_id).paid_fen == 0
    assert [entry.paid_fen for entry in assistance.entries(first.run_id)] == [0, 0, 0]
    assert assistance.paid_before(ANNA, "r-3") == ANNA_OWED


def test_concurrent_approvals_pay_once(assistance: Assistance) -> None:
    # 200 recipients, each with 10,000 eligible in February and 10,000 in May: a run
    # through March owes each 2,500 and one through June 7,500 (50% of 15,000). The first,
    # approved, puts everyone in the ledger; then six runs through June of the same
    # persons, and the first of them four times over, are approved at once.
    born = date(1990, 1, 1)
    persons = [with_check_digit(f"411323{born + timedelta(days=n):%Y%m%d}007") for n in range(200)]
    events = [
        assistance.event(person, 10_000, on=on)
        for person in persons
        for on in ("2026-02-01", "2026-05-01")
    ]
    for start in range(0, len(events), 1000):
        record(assistance.stub, *events[start : start + 1000])
    assert (
        assistance.approve(assistance.create("march", through="2026-03-31").run_id).paid_fen
        == 200 * 250_000
    )
    runs = [assistance.create(f"june-{n}").run_id for n in range(6)]

    def approve(run_id: int) -> int | str:
        try:
            return assistance.approve(run_id).paid_fen
        except grpc.RpcError as error:
            return str(error.code())

    with ThreadPoolExecutor(max_workers=9) as pool:
        answers = list(pool.map(approve, [*runs, runs[0], runs[0], runs[0]]))
    paid = [answer for answer in answers if isinstance(answer, int)]
    assert sum(paid) == 200 * 500_000
    assert answers.count(str(grpc.StatusCode.FAILED_PRECONDITION)) == 3
    after = assistance.create("after", through="2026-12-31")
    assert {
        entry.paid_before_fen for entry in assistance.entries(after.run_id, page_size=1000)
    } == {750_000}
    assert after.to_pay_fen == 0


def test_a_reversal_after_payment_is_flagged_and_nothing_taken_back(
    assistance: Assistance,
) -> None:
    region_of_six(assistance)
    assistance.approve(assistance.create("r-1").run_id)
    # Bo's 40,000 visit is reversed: 20,000 eligible, 50% of 15,000 = 7,500 owed, 20,000 paid.
    assistance.visit(BO, 40_000, on="2026-02-10", settlement="bo-big", reversed_=True)
    run = assistance.create("r-2")
    assert assistance.figures(run.run_id)[BO] == (2_000_000, 750_000, BO_OWED, 0, True, 0)
    (reason,) = [e.reason for e in assistance.entries(run.run_id) if e.person_id == BO]
    assert "12500.00 overpaid, not taken back" in reason
    assert (run.flagged_count, run.to_pay_fen) == (1, 0)
    assert assistance.approve(run.run_id).paid_fen == 0
    assert assistance.paid_before(BO, "r-3") == BO_OWED


def _create_request(**changes: Any) -> pb.CreateSecondaryRunRequest:
    request = pb.CreateSecondaryRunRequest(
        request_id="r-bad", region=XIXIA, year=2026, through=day("2026-06-30"), case_worker="王芳"
    )
    for name, value in changes.items():
        if name == "through":
            request.through.CopyFrom(value)
        else:
            setattr(request, name, value)
    return request


def _bad_day() -> Any:
    through = day("2026-02-28")
    through.day = 30
    return through


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"request_id": ""}, "request_id"),
        ({"region": "4113"}, "region"),
        ({"region": "41132a"}, "region"),
        ({"year": 1900}, "year"),
        ({"through": _bad_day()}, "through"),
        ({"through": day("2025-12-31")}, "through"),
        ({"case_worker": " "}, "case_worker"),
    ],
)
def test_a_bad_run_request_names_its_field_and_makes_nothing(
    assistance: Assistance, changes: dict[str, Any], field: str
) -> None:
    region_of_six(assistance)
    error = refusal(
        lambda: assistance.stub.CreateSecondaryRun(_create_request(**changes), metadata=INTERNAL)
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [violation.field for violation in error.violations] == [field]
    listed = assistance.stub.ListSecondaryRuns(pb.ListSecondaryRunsRequest(), metadata=INTERNAL)
    assert list(listed.runs) == []


def test_an_unknown_run_or_a_bad_approval_changes_nothing(assistance: Assistance) -> None:
    region_of_six(assistance)
    run = assistance.create("r-1")
    for call in (
        lambda: assistance.approve(run.run_id + 1),
        lambda: assistance.stub.GetSecondaryRun(
            pb.GetSecondaryRunRequest(run_id=run.run_id + 1), metadata=INTERNAL
        ),
        lambda: assistance.entries(run.run_id + 1),
    ):
        error = refusal(call)
        assert (error.code, [v.field for v in error.violations]) == (
            grpc.StatusCode.NOT_FOUND,
            ["run_id"],
        )
    for call, field in (
        (lambda: assistance.approve(run.run_id, ""), "approver"),
        (lambda: assistance.approve(0), "run_id"),
        (lambda: assistance.entries(run.run_id, page_size=-1), "page_size"),
    ):
        error = refusal(call)
        assert (error.code, [v.field for v in error.violations]) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            [field],
        )
    error = refusal(
        lambda: assistance.stub.ListSecondaryRuns(
            pb.ListSecondaryRunsRequest(region="XIXIA"), metadata=INTERNAL
        )
    )
    assert [v.field for v in error.violations] == ["region"]
    stored = assistance.stub.GetSecondaryRun(
        pb.GetSecondaryRunRequest(run_id=run.run_id), metadata=INTERNAL
    ).run
    assert stored == run
    assert assistance.paid_before(ANNA, "r-2") == 0


# --- the command line ---


def doudi(
    assistance: Assistance,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *args: str,
) -> tuple[int, str, str]:
    monkeypatch.setenv("DOUDI_ASSISTANCE_ADDRESS", assistance.address)
    code = main(["secondary", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_bank_file_holds_what_the_approval_paid(
    assistance: Assistance,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    import json

    region_of_six(assistance)
    code, out, _ = doudi(
        assistance, monkeypatch, capsys, "run", "--region", XIXIA, "--year", "2026",
        "--through", "2026-06-30", "--case-worker", "王芳", "--json",
    )  # fmt: skip
    assert code == 0
    created = json.loads(out)
    run_id = created["run_id"]
    assert (created["to_pay_fen"], created["approver"]) == (ANNA_OWED + BO_OWED, None)

    code, _, err = doudi(
        assistance,
        monkeypatch,
        capsys,
        "export",
        str(run_id),
        "--output",
        str(tmp_path / "bank.csv"),
    )
    assert (code, err) == (
        1,
        f"doudi: error: run {run_id} is not approved: approve it before writing its bank file\n",
    )
    assert not (tmp_path / "bank.csv").exists()

    code, out, _ = doudi(assistance, monkeypatch, capsys, "show", str(run_id))
    assert code == 0
    assert mask(ANNA) in out
    assert ANNA not in out
    assert "6,500.00" in out

    code, out, _ = doudi(
        assistance, monkeypatch, capsys, "approve", str(run_id), "--approver", "李主任", "--json"
    )
    assert (code, json.loads(out)["paid_fen"]) == (0, ANNA_OWED + BO_OWED)
    code, _, err = doudi(
        assistance, monkeypatch, capsys, "approve", str(run_id), "--approver", "李主任"
    )
    assert code == 1
    assert "approving again pays nothing" in err

    # Names come from enrollment's copies; one a spreadsheet would take for a formula.
    assistance.stub.RecordPersons(
        pb.RecordPersonsRequest(
            persons=[
                pb.InsuredPerson(
                    person_id=person, version=1, name=name, region=XIXIA, household_id=f"h-{name}"
                )
                for person, name in ((ANNA, "张安娜"), (BO, "=1+1"))
            ]
        ),
        metadata=INTERNAL,
    )
    expected = [
        ["身份证号", "姓名", "年度", "金额(元)", "批次"],
        [ANNA, "张安娜", "2026", "6500.00", str(run_id)],
        [BO, "=1+1", "2026", "20000.00", str(run_id)],
    ]
    code, out, _ = doudi(
        assistance,
        monkeypatch,
        capsys,
        "export",
        str(run_id),
        "--output",
        str(tmp_path / "bank.csv"),
    )
    assert code == 0
    with (tmp_path / "bank.csv").open(encoding="utf-8-sig", newline="") as file:
        # The CSV neutralises the formula with a quote; the xlsx holds it as text.
        assert list(csv.reader(file)) == [*expected[:2], [BO, "'=1+1", *expected[2][2:]]]

    code, out, _ = doudi(
        assistance,
        monkeypatch,
        capsys,
        "export",
        str(run_id),
        "--output",
        str(tmp_path / "bank.xlsx"),
    )
    assert code == 0
    from openpyxl import load_workbook

    sheet = load_workbook(tmp_path / "bank.xlsx").active
    assert sheet is not None
    rows = [[cell.value or "" for cell in row] for row in sheet.iter_rows()]
    assert rows == expected
    assert all(cell.data_type == "s" for row in sheet.iter_rows() for cell in row if cell.value)


def test_the_command_line_refuses_bad_input(
    assistance: Assistance,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    code, out, err = doudi(
        assistance, monkeypatch, capsys, "run", "--region", XIXIA, "--year", "2026",
        "--through", "2025-06-30", "--case-worker", "王芳",
    )  # fmt: skip
    assert (code, out) == (2, "")
    assert "--through: 2025-06-30 is not a day of 2026" in err
    with pytest.raises(SystemExit) as exit_:
        main(["secondary", "run", "--region", "4113", "--year", "2026", "--case-worker", "x"])
    assert exit_.value.code == 2
    assert "argument --region: '4113' is not a 6-digit region code" in capsys.readouterr().err
    code, _, err = doudi(
        assistance, monkeypatch, capsys, "export", "1", "--output", str(tmp_path / "bank.txt")
    )
    assert (code, err) == (
        2,
        f"doudi: error: {tmp_path / 'bank.txt'}: write a .csv or .xlsx file\n",
    )
    code, _, err = doudi(assistance, monkeypatch, capsys, "show", "7")
    assert (code, err) == (1, "doudi: error: secondary run 7 does not exist\n")
