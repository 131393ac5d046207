"""Everyone poor is insured, end to end (issue 5): agencies submit rosters, the hub
compares them with the register that enrollment keeps it a copy of, enrollment enrols
the gap with the premiums of the region's pack, and a person added to a roster is
recognised at the next settlement through the gateway.

The real platform (four services and the gateway, subprocesses) on each backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest
from openpyxl import load_workbook

from doudi.cli import demo
from doudi.common.roster_stream import ended
from doudi.core.packs import PackRegistry
from doudi.core.subsidy import subsidised_premium
from doudi.datashare.v1 import datashare_pb2 as ds
from doudi.datashare.v1 import datashare_pb2_grpc
from doudi.enrollment.v1 import enrollment_pb2 as en
from doudi.enrollment.v1 import enrollment_pb2_grpc
from tests.platform import Platform, demo_platforms
from tests.services import INTERNAL, bearer
from tests.support import run_cli, with_check_digit
from tests.test_datashare_service import day
from tests.test_settlement_flow import HOSPITAL_KEY, poverty_layers_paid

YEAR = date.today().year
XIXIA = "411323"
TIANJIN = "120000"
POVERTY_OFFICE = bearer(demo.POVERTY_OFFICE_KEY)
CIVIL_AFFAIRS = bearer("demo-civil-affairs")
DISABLED_FEDERATION = bearer("demo-disabled-persons-federation")


@pytest.fixture(scope="module")
def platforms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Platform]]:
    """The platform on a backend, kept for the module (its own: a comparison takes in every
    roster of a region)."""
    with demo_platforms(tmp_path_factory, "subsidised", YEAR) as on:
        yield on


@pytest.fixture
def platform(backend: str, platforms: Callable[[str], Platform]) -> Platform:
    return platforms(backend)


def person(region: str, serial: int) -> str:
    return with_check_digit(f"{region[:6]}19900202{serial:03d}")


def hub(platform: Platform) -> datashare_pb2_grpc.DatashareServiceStub:
    return datashare_pb2_grpc.DatashareServiceStub(platform.services["datashare"].channel())


def enrollment(platform: Platform) -> enrollment_pb2_grpc.EnrollmentServiceStub:
    return enrollment_pb2_grpc.EnrollmentServiceStub(platform.services["enrollment"].channel())


def register(platform: Platform, number: str, name: str, region: str, enrolled: bool) -> None:
    stub = enrollment(platform)
    stub.CreatePerson(
        en.CreatePersonRequest(
            person=en.Person(person_id=number, name=name, household_id="H-0", region=region)
        ),
        metadata=INTERNAL,
    )
    if enrolled:
        stub.CreateEnrolment(
            en.CreateEnrolmentRequest(
                enrolment=en.Enrolment(
                    person_id=number,
                    year=YEAR,
                    scheme=en.SCHEME_RESIDENT,
                    premium_fen=25_000,
                    premium_payer=en.PREMIUM_PAYER_PERSON,
                )
            ),
            metadata=INTERNAL,
        )


def submit(
    platform: Platform, region: str, metadata: object, rows: list[tuple[str, str, int]]
) -> None:
    """A full roster of the region: (person, name, status) per row."""
    header = ds.RosterHeader(region=region, as_of=day(f"{YEAR}-01-01"))
    messages = [
        ds.SubmitRosterRequest(
            header=header,
            rows=[
                ds.RosterRow(
                    line=line,
                    person_id=number,
                    name=name,
                    household_id=f"H-{line}",
                    status=status,
                    valid_from=day(f"{YEAR - 1}-01-01"),
                    reference=f"R-{line}",
                )
                for line, (number, name, status) in enumerate(rows, start=2)
            ],
        )
    ]
    hub(platform).SubmitRoster(ended(messages), metadata=metadata)


def compare(platform: Platform, region: str) -> ds.Comparison:
    return (
        hub(platform)
        .CompareRosters(ds.CompareRostersRequest(region=region, year=YEAR), metadata=INTERNAL)
        .comparison
    )


def enrol_gap(platform: Platform, comparison: ds.Comparison) -> en.EnrolGapResponse:
    answer: en.EnrolGapResponse = enrollment(platform).EnrolGap(
        en.EnrolGapRequest(comparison_id=comparison.comparison_id), metadata=INTERNAL
    )
    return answer


def enrolment(platform: Platform, number: str) -> en.Enrolment:
    return (
        enrollment(platform)
        .GetEnrolment(en.GetEnrolmentRequest(person_id=number, year=YEAR), metadata=INTERNAL)
        .enrolment
    )


def totals(
    answer: en.EnrolGapResponse | en.GetSubsidySummaryResponse,
) -> dict[str, tuple[int, ...]]:
    return {
        t.category: (t.person_count, t.premium_fen, t.assistance_fund_fen, t.person_fen)
        for t in answer.totals
    }


def test_the_gap_is_enrolled_once_with_the_packs_premium_and_recognised_at_once(
    platform: Platform,
) -> None:
    insured = person(XIXIA, 1)
    unknown = person(XIXIA, 2)  # on the roster, not in the register
    lapsed = person(XIXIA, 3)  # registered, not enrolled this year
    dibao_only = person(XIXIA, 4)  # a status Xixia's pack does not subsidise
    register(platform, insured, "王建国", XIXIA, enrolled=True)
    register(platform, lapsed, "李秀英", XIXIA, enrolled=False)
    poor = ds.STATUS_REGISTERED_POOR
    submit(
        platform,
        XIXIA,
        POVERTY_OFFICE,
        [(insured, "王建国", poor), (unknown, "吴敏", poor), (lapsed, "李秀英", poor)],
    )
    submit(platform, XIXIA, CIVIL_AFFAIRS, [(dibao_only, "郑强", ds.STATUS_DIBAO)])

    # The register's copy reached the hub when enrollment answered: no waiting.
    before = compare(platform, XIXIA)
    gap = {
        e.person_id: e.gap_reason
        for e in hub(platform)
        .ListComparisonEntries(
            ds.ListComparisonEntriesRequest(
                comparison_id=before.comparison_id, **{"class": ds.COMPARISON_CLASS_NOT_INSURED}
            ),
            metadata=INTERNAL,
        )
        .entries
    }
    assert gap == {
        unknown: ds.GAP_REASON_NOT_REGISTERED,
        lapsed: ds.GAP_REASON_NOT_ENROLLED,
        dibao_only: ds.GAP_REASON_NOT_REGISTERED,
    }

    first = enrol_gap(platform, before)
    # Xixia's pack: the registered poor's premium (180 yuan, assumed) paid in full.
    assert (first.enrolled_count, first.registered_count) == (2, 1)
    assert (first.already_enrolled_count, first.not_subsidised_count) == (0, 1)
    assert totals(first) == {"registered_poor": (2, 36_000, 36_000, 0)}
    for number in (unknown, lapsed):
        stored = enrolment(platform, number)
        assert (stored.scheme, stored.premium_fen, stored.subsidy_fen) == (
            en.SCHEME_RESIDENT,
            18_000,
            18_000,
        )
        assert stored.premium_payer == en.PREMIUM_PAYER_ASSISTANCE_FUND
        assert stored.subsidy_category == "registered_poor"
    registered = enrollment(platform).GetPerson(
        en.GetPersonRequest(person_id=unknown), metadata=INTERNAL
    )
    assert (registered.person.name, registered.person.region) == ("吴敏", XIXIA)
    assert enrolment(platform, insured).subsidy_fen == 0, "the insured are left alone"

    # Again: nobody enrolled twice, no premium charged twice.
    second = enrol_gap(platform, before)
    assert (second.enrolled_count, second.already_enrolled_count) == (0, 2)
    assert second.not_subsidised_count == 1
    assert list(second.totals) == []
    summary = enrollment(platform).GetSubsidySummary(
        en.GetSubsidySummaryRequest(region=XIXIA, year=YEAR), metadata=INTERNAL
    )
    assert totals(summary) == {"registered_poor": (2, 36_000, 36_000, 0)}

    # The hub's copy of the register has the new enrolments: the gap is closed.
    after = compare(platform, XIXIA)
    assert (after.not_insured_count, after.insured_count) == (1, 3)

    # Added to a roster, enrolled by the bureau: the next settlement, through the
    # gateway, pays the poverty-only layers, with no other step.
    client = platform.client(HOSPITAL_KEY)
    assert poverty_layers_paid(client, unknown)


def test_tianjins_tiers_move_the_poor_up_and_pay_their_premium(platform: Platform) -> None:
    dibao = person(TIANJIN, 1)
    margin = person(TIANJIN, 2)
    disabled_dibao = person(TIANJIN, 3)
    submit(
        platform,
        TIANJIN,
        CIVIL_AFFAIRS,
        [
            (dibao, "钱一", ds.STATUS_DIBAO),
            (margin, "钱二", ds.STATUS_LOW_INCOME),
            (disabled_dibao, "钱三", ds.STATUS_DIBAO),
        ],
    )
    submit(
        platform,
        TIANJIN,
        DISABLED_FEDERATION,
        [(disabled_dibao, "钱三", ds.STATUS_SEVERELY_DISABLED)],
    )
    answer = enrol_gap(platform, compare(platform, TIANJIN))
    assert answer.enrolled_count == 3

    pack = PackRegistry.load().in_force(TIANJIN, date(YEAR, 1, 1))
    assert pack is not None
    for number, statuses in (
        (dibao, {"dibao"}),
        (margin, {"low_income"}),
        (disabled_dibao, {"dibao", "severely_disabled"}),
    ):
        wanted = subsidised_premium(pack, statuses)
        assert wanted is not None
        stored = enrolment(platform, number)
        assert (stored.premium_fen, stored.subsidy_fen, stored.subsidy_category) == (
            wanted.premium_fen,
            wanted.subsidy_fen,
            wanted.category,
        )
    # tianjin-2017: dibao moved from the low tier to the middle one (350 yuan personal, paid);
    # the severely disabled among them to the high tier (650 yuan personal), fully paid.
    assert enrolment(platform, dibao).tier == en.TIER_ADULT_MID
    assert enrolment(platform, dibao).premium_fen == 35_000
    assert enrolment(platform, dibao).premium_payer == en.PREMIUM_PAYER_ASSISTANCE_FUND
    assert enrolment(platform, disabled_dibao).tier == en.TIER_ADULT_HIGH
    assert enrolment(platform, disabled_dibao).premium_fen == 65_000
    # The margin pays part of it itself.
    assert enrolment(platform, margin).premium_payer == en.PREMIUM_PAYER_PERSON
    assert 0 < enrolment(platform, margin).subsidy_fen < enrolment(platform, margin).premium_fen


def test_a_clerk_compares_exports_and_enrols_with_the_doudi_command(
    platform: Platform,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    region = "540400"  # Linzhi: no subsidy section, so the gap stays for a case worker
    dibao = person(region, 1)
    submit(platform, region, CIVIL_AFFAIRS, [(dibao, "次仁", ds.STATUS_DIBAO)])
    monkeypatch.setenv("DOUDI_DATASHARE_ADDRESS", platform.services["datashare"].address)
    monkeypatch.setenv("DOUDI_ENROLLMENT_ADDRESS", platform.services["enrollment"].address)

    code, out, err = run_cli(["roster", "compare", "--region", region, "--year", str(YEAR)], capsys)
    assert code == 0, err
    comparison_id = int(out.split(":")[0].removeprefix("comparison "))
    assert "not insured (gap)           1" in out

    output = tmp_path / "gap.xlsx"
    argv = ["roster", "export", str(comparison_id), "--output", str(output)]
    code, out, err = run_cli([*argv, "--class", "not_insured"], capsys)
    assert (code, out) == (0, f"{output}: 1 persons of comparison {comparison_id}\n"), err
    sheet = load_workbook(output, read_only=True).active
    assert sheet is not None
    lines = list(sheet.iter_rows(values_only=True))
    assert lines[1][:5] == (dibao, "次仁", None, "未参保", "未登记参保")

    code, out, err = run_cli(["roster", "enrol", str(comparison_id)], capsys)
    assert code == 0, err
    assert out.startswith("enrolled 0 (of them 0 newly registered); already enrolled 0; ")
    assert "no subsidised status 1" in out

    code, out, err = run_cli(["roster", "enrol", "999999"], capsys)
    assert (code, out) == (1, "")
    assert err == "doudi: error: comparison 999999 does not exist\n"
    code, out, err = run_cli([*argv[:3], "--output", str(tmp_path / "gap.pdf")], capsys)
    assert (code, out) == (2, "")
    assert "write a .csv or .xlsx file" in err
