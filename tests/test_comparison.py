"""Everyone poor is insured (issue 5): the agencies' rosters compared with the enrolment
register, each certified person classed once, against a real datashare process on each
backend.

The register's copy is filled as the enrollment service fills it (``RecordRegister``,
internal); the rosters come in as agencies send them (``SubmitRoster``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from doudi.datashare.v1 import datashare_pb2 as pb
from doudi.datashare.v1.datashare_pb2_grpc import DatashareServiceStub
from tests.services import INTERNAL, no_peers, running_service
from tests.support import with_check_digit
from tests.test_datashare_service import audit_trail, day, fields, refused
from tests.test_rosters import CIVIL_AFFAIRS, XIXIA, submit

TIANJIN = "120000"
YEAR = 2026
UNION = (("authorization", "Bearer demo-trade-union"),)


def number(serial: int) -> str:
    return with_check_digit(f"41132319800101{serial:03d}")


INSURED = number(1)
NOT_REGISTERED = number(2)
NOT_ENROLLED = number(3)
ELSEWHERE = number(4)
SPACED_NAME = number(5)  # the same name, written with a full-width space
OTHER_NAME = number(6)
TRADITIONAL = number(7)  # the same name in traditional characters
ON_TWO_ROSTERS = number(8)
LEFT_BEFORE_THE_YEAR = number(9)
NAMES_DISAGREE = number(10)  # two agencies, one of them with another name

# person -> (registered name, region, years enrolled); absent: not registered.
REGISTER: dict[str, tuple[str, str, tuple[int, ...]]] = {
    INSURED: ("王建国", XIXIA, (2025, YEAR)),
    NOT_ENROLLED: ("李秀英", XIXIA, (2025,)),
    ELSEWHERE: ("赵丽", TIANJIN, (YEAR,)),
    SPACED_NAME: ("欧阳明", XIXIA, (YEAR,)),
    OTHER_NAME: ("张伟", XIXIA, (YEAR,)),
    TRADITIONAL: ("陈东", XIXIA, (YEAR,)),
    ON_TWO_ROSTERS: ("刘洋", XIXIA, (YEAR,)),
    LEFT_BEFORE_THE_YEAR: ("周杰", XIXIA, ()),
    NAMES_DISAGREE: ("孙梅", XIXIA, (YEAR,)),
}


@pytest.fixture
def hub(tmp_path: Path, database_url: str) -> Iterator[DatashareServiceStub]:
    with running_service(
        "datashare", tmp_path, database_url=database_url, env=no_peers()
    ) as running:
        yield DatashareServiceStub(running.channel())
    log = running.log()
    for person in REGISTER:
        assert person not in log, "the service logged a full identity number"


def register(hub: DatashareServiceStub, version: int = 3) -> list[int]:
    answer = hub.RecordRegister(
        pb.RecordRegisterRequest(
            persons=[
                pb.RegisteredPerson(
                    person_id=person, version=version, name=name, region=region, years=years
                )
                for person, (name, region, years) in REGISTER.items()
            ]
        ),
        metadata=INTERNAL,
    )
    return list(answer.versions)


def row(line: int, person: str, name: str, status: int, **period: str) -> pb.RosterRow:
    message = pb.RosterRow(
        line=line,
        person_id=person,
        name=name,
        household_id=f"H-{line}",
        status=status,
        valid_from=day(period.get("start", "2020-01-01")),
        reference=f"R-{line}",
    )
    if "end" in period:
        message.valid_to.CopyFrom(day(period["end"]))
    return message


def submit_rosters(hub: DatashareServiceStub) -> None:
    poor = pb.STATUS_REGISTERED_POOR
    submit(
        hub,
        [
            row(2, INSURED, "王建国", poor),
            row(3, NOT_REGISTERED, "吴敏", poor),
            row(4, NOT_ENROLLED, "李秀英", poor),
            row(5, ELSEWHERE, "赵丽", poor),
            row(6, SPACED_NAME, "欧阳\u3000明", poor),
            row(7, OTHER_NAME, "张卫", poor),
            row(8, TRADITIONAL, "陳東", poor),
            row(9, ON_TWO_ROSTERS, "刘洋", poor),
            row(10, LEFT_BEFORE_THE_YEAR, "周杰", poor, end="2025-06-30"),
            row(11, NAMES_DISAGREE, "孙梅", poor),
        ],
        batch=4,
    )
    submit(
        hub,
        [
            row(2, ON_TWO_ROSTERS, "刘洋", pb.STATUS_DIBAO),
            row(3, ON_TWO_ROSTERS, "刘洋", pb.STATUS_ORPHAN),
            row(4, NAMES_DISAGREE, "孙美", pb.STATUS_DIBAO),
        ],
        metadata=CIVIL_AFFAIRS,
    )


def compare(hub: DatashareServiceStub, year: int = YEAR) -> pb.Comparison:
    answer = hub.CompareRosters(
        pb.CompareRostersRequest(region=XIXIA, year=year), metadata=INTERNAL
    )
    return answer.comparison


def entries(
    hub: DatashareServiceStub,
    comparison_id: int,
    metadata: object = INTERNAL,
    page_size: int = 0,
    **filters: object,
) -> list[pb.ComparisonEntry]:
    found: list[pb.ComparisonEntry] = []
    token = ""
    while True:
        answer = hub.ListComparisonEntries(
            pb.ListComparisonEntriesRequest(
                comparison_id=comparison_id, page_size=page_size, page_token=token, **filters
            ),
            metadata=metadata,
        )
        found.extend(answer.entries)
        token = answer.next_page_token
        if not token:
            return found


def test_each_certified_person_is_classed_once_and_the_gap_says_why(
    hub: DatashareServiceStub,
) -> None:
    assert register(hub) == [3] * len(REGISTER)
    submit_rosters(hub)
    comparison = compare(hub)

    listed = {
        entry.person_id: entry for entry in entries(hub, comparison.comparison_id, page_size=3)
    }
    classes = {
        person: (getattr(entry, "class"), entry.gap_reason) for person, entry in listed.items()
    }
    assert classes == {
        INSURED: (pb.COMPARISON_CLASS_INSURED, 0),
        NOT_REGISTERED: (pb.COMPARISON_CLASS_NOT_INSURED, pb.GAP_REASON_NOT_REGISTERED),
        NOT_ENROLLED: (pb.COMPARISON_CLASS_NOT_INSURED, pb.GAP_REASON_NOT_ENROLLED),
        ELSEWHERE: (pb.COMPARISON_CLASS_INSURED_ELSEWHERE, 0),
        SPACED_NAME: (pb.COMPARISON_CLASS_INSURED, 0),
        OTHER_NAME: (pb.COMPARISON_CLASS_NAME_DIFFERS, 0),
        TRADITIONAL: (pb.COMPARISON_CLASS_INSURED, 0),
        ON_TWO_ROSTERS: (pb.COMPARISON_CLASS_INSURED, 0),
        NAMES_DISAGREE: (pb.COMPARISON_CLASS_NAME_DIFFERS, 0),
    }, "the person who left the roster before the year is not compared"
    twice = listed[ON_TWO_ROSTERS]
    assert twice.duplicate
    assert list(twice.agencies) == [pb.AGENCY_CIVIL_AFFAIRS, pb.AGENCY_POVERTY_OFFICE]
    assert sorted(twice.statuses) == sorted(
        [pb.STATUS_REGISTERED_POOR, pb.STATUS_DIBAO, pb.STATUS_ORPHAN]
    )
    assert [p for p, e in listed.items() if e.duplicate] == [ON_TWO_ROSTERS, NAMES_DISAGREE]
    assert (listed[OTHER_NAME].roster_name, listed[OTHER_NAME].registered_name) == ("张卫", "张伟")
    assert listed[ELSEWHERE].registered_region == TIANJIN
    assert listed[NOT_REGISTERED].registered_name == ""

    assert (
        comparison.person_count,
        comparison.insured_count,
        comparison.not_insured_count,
        comparison.insured_elsewhere_count,
        comparison.name_differs_count,
        comparison.duplicate_count,
    ) == (9, 4, 2, 1, 2, 2)
    assert len(comparison.submission_ids) == 2

    gap = entries(hub, comparison.comparison_id, **{"class": pb.COMPARISON_CLASS_NOT_INSURED})
    assert [entry.person_id for entry in gap] == [NOT_REGISTERED, NOT_ENROLLED]
    duplicates = entries(hub, comparison.comparison_id, duplicates_only=True)
    assert [entry.person_id for entry in duplicates] == [ON_TWO_ROSTERS, NAMES_DISAGREE]

    # Stored: it can be read again and listed, newest first.
    again = hub.GetComparison(
        pb.GetComparisonRequest(comparison_id=comparison.comparison_id), metadata=INTERNAL
    )
    assert again.comparison == comparison
    later = compare(hub, year=2025)
    listed_comparisons = hub.ListComparisons(pb.ListComparisonsRequest(), metadata=INTERNAL)
    assert [c.comparison_id for c in listed_comparisons.comparisons] == [
        later.comparison_id,
        comparison.comparison_id,
    ]
    # In 2025 the one who left mid-2025 is certified, and enrolled nowhere that year.
    assert later.person_count == 10


def test_a_person_enrolled_since_the_last_comparison_is_insured_in_the_next(
    hub: DatashareServiceStub,
) -> None:
    register(hub)
    submit_rosters(hub)
    assert compare(hub).not_insured_count == 2
    hub.RecordRegister(
        pb.RecordRegisterRequest(
            persons=[
                pb.RegisteredPerson(
                    person_id=NOT_ENROLLED,
                    version=4,
                    name="李秀英",
                    region=XIXIA,
                    years=[2025, YEAR],
                ),
                # Late and older (before the person's enrolments): changes nothing.
                pb.RegisteredPerson(person_id=INSURED, version=2, name="王建国", region=XIXIA),
            ]
        ),
        metadata=INTERNAL,
    )
    after = compare(hub)
    assert (after.not_insured_count, after.insured_count) == (1, 5)


def test_an_agency_sees_only_its_own_persons_and_statuses_and_each_read_is_audited(
    hub: DatashareServiceStub,
) -> None:
    register(hub)
    submit_rosters(hub)
    comparison = compare(hub)
    cid = comparison.comparison_id

    seen = entries(hub, cid, metadata=CIVIL_AFFAIRS, purpose="enrolment drive")
    assert [entry.person_id for entry in seen] == [ON_TWO_ROSTERS, NAMES_DISAGREE]
    assert all(list(entry.agencies) == [pb.AGENCY_CIVIL_AFFAIRS] for entry in seen)
    assert sorted(seen[0].statuses) == sorted([pb.STATUS_DIBAO, pb.STATUS_ORPHAN])
    assert not any(entry.duplicate for entry in seen), "another agency's roster is not told"
    own = hub.GetComparison(pb.GetComparisonRequest(comparison_id=cid), metadata=CIVIL_AFFAIRS)
    assert (own.comparison.person_count, own.comparison.name_differs_count) == (2, 1)
    assert len(own.comparison.submission_ids) == 1

    trail = audit_trail(hub)
    assert [(e.caller, e.method, e.person_id) for e in trail] == [
        ("civil_affairs", "ListComparisonEntries", ON_TWO_ROSTERS),
        ("civil_affairs", "ListComparisonEntries", NAMES_DISAGREE),
        ("civil_affairs", "GetComparison", ""),
    ]
    assert trail[0].purpose == "enrolment drive"
    assert trail[2].subject == f"comparison {cid}"

    # An agency needs a purpose, and cannot see a comparison of no roster of its own.
    error = refused(lambda: entries(hub, cid, metadata=CIVIL_AFFAIRS))
    assert fields(error) == ["purpose"]
    with pytest.raises(grpc.RpcError) as caught:
        hub.GetComparison(pb.GetComparisonRequest(comparison_id=cid), metadata=UNION)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    assert hub.ListComparisons(pb.ListComparisonsRequest(), metadata=UNION).comparisons == []
    # Comparing and recording the register are the platform's.
    for call in (
        lambda: hub.CompareRosters(
            pb.CompareRostersRequest(region=XIXIA, year=YEAR), metadata=CIVIL_AFFAIRS
        ),
        lambda: hub.RecordRegister(pb.RecordRegisterRequest(), metadata=CIVIL_AFFAIRS),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            call()
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]


def test_bad_requests_say_which_field_and_store_nothing(hub: DatashareServiceStub) -> None:
    for request, field in (
        (pb.CompareRostersRequest(region="999999", year=YEAR), "region"),
        (pb.CompareRostersRequest(region=XIXIA, year=1800), "year"),
    ):
        error = refused(lambda r=request: hub.CompareRosters(r, metadata=INTERNAL))  # type: ignore[misc]
        assert fields(error) == [field]
    assert hub.ListComparisons(pb.ListComparisonsRequest(), metadata=INTERNAL).comparisons == []
    wrong_digit = INSURED[:-1] + ("1" if INSURED[-1] != "1" else "2")
    bad = pb.RegisteredPerson(person_id=wrong_digit, version=1, name="王", region=XIXIA)
    error = refused(
        lambda: hub.RecordRegister(pb.RecordRegisterRequest(persons=[bad]), metadata=INTERNAL)
    )
    assert fields(error) == ["persons[0].person_id"]
