"""Agencies' rosters through the datashare hub (issue 5): a full roster replaces the
agency's previous one of the region, and the difference becomes assertions and
revocations; bad rows are reported by line and nothing of them is stored.

Each test starts ``python -m services.datashare`` as a real process on each backend.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.type import date_pb2
from sqlalchemy import func, select

from doudi.common.db import create_engine_for
from doudi.common.errors import decode_status
from doudi.common.roster_stream import RowsDigest, ended
from doudi.datashare.v1 import datashare_pb2 as pb
from doudi.datashare.v1.datashare_pb2_grpc import DatashareServiceStub
from services.datashare import rosters
from services.datashare.tables import (
    received_rows,
    roster_rows,
    roster_submissions,
    status_assertions,
)
from tests.services import (
    INTERNAL,
    bearer,
    no_peers,
    running_service,
    start_service,
    stop_service,
)
from tests.support import with_check_digit
from tests.test_datashare_service import audit_trail, day, history, statuses_on

POVERTY_OFFICE = bearer("demo-poverty-office")
CIVIL_AFFAIRS = bearer("demo-civil-affairs")
XIXIA = "411323"

WANG = with_check_digit("41132319500315001")
LI = with_check_digit("41132319820704002")
ZHAO = with_check_digit("41132319700101003")
PERSONS = (WANG, LI, ZHAO)


@pytest.fixture
def hub(tmp_path: Path, database_url: str) -> Iterator[tuple[DatashareServiceStub, str]]:
    with running_service(
        "datashare", tmp_path, database_url=database_url, env=no_peers()
    ) as running:
        yield DatashareServiceStub(running.channel()), database_url
    log = running.log()
    for number in PERSONS:
        assert number not in log, "the service logged a full identity number"


def row(
    line: int,
    person: str,
    status: int = pb.STATUS_REGISTERED_POOR,
    start: str = "2016-01-01",
    household: str = "H-1",
    name: str = "张三",
) -> pb.RosterRow:
    return pb.RosterRow(
        line=line,
        person_id=person,
        name=name,
        household_id=household,
        status=status,
        valid_from=day(start),
        reference=f"PO-{line}",
    )


def submit(
    hub: DatashareServiceStub,
    rows: list[pb.RosterRow],
    as_of: str = "2026-03-01",
    metadata: Any = POVERTY_OFFICE,
    batch: int = 2,
    *,
    confirm: int | None = None,
    preview: bool = False,
) -> pb.SubmitRosterResponse:
    header = pb.RosterHeader(
        region=XIXIA, as_of=day(as_of), confirmed_revocations=confirm, preview=preview
    )

    def messages() -> Iterator[pb.SubmitRosterRequest]:
        yield pb.SubmitRosterRequest(header=header, rows=rows[:batch])
        for start in range(batch, len(rows), batch):
            yield pb.SubmitRosterRequest(rows=rows[start : start + batch])

    answer: pb.SubmitRosterResponse = hub.SubmitRoster(ended(messages()), metadata=metadata)
    return answer


def counts(database_url: str) -> tuple[int, int, int]:
    """Registry records, roster rows and submissions stored."""
    engine = create_engine_for(database_url)
    try:
        with engine.connect() as connection:
            return tuple(  # type: ignore[return-value]
                connection.execute(select(func.count()).select_from(table)).scalar_one()
                for table in (status_assertions, roster_rows, roster_submissions)
            )
    finally:
        engine.dispose()


def receiving(database_url: str) -> tuple[list[str], int]:
    """The submissions' states, and the rows received and not yet recorded."""
    engine = create_engine_for(database_url)
    try:
        with engine.connect() as connection:
            states = connection.execute(
                select(roster_submissions.c.state).order_by(roster_submissions.c.submission_id)
            ).scalars()
            waiting = connection.execute(select(func.count()).select_from(received_rows))
            return list(states), waiting.scalar_one()
    finally:
        engine.dispose()


def until(condition: Any, what: str, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_roster_asserts_its_persons_and_a_later_one_revokes_who_left(
    hub: tuple[DatashareServiceStub, str],
) -> None:
    stub, _url = hub
    first = submit(stub, [row(2, WANG), row(3, LI), row(4, ZHAO, start="2020-05-01")])
    assert first.submission.accepted_count == 3
    assert first.submission.asserted_count == 3
    assert (first.submission.revoked_count, first.submission.rejected_count) == (0, 0)
    assert not first.replayed
    for person in (WANG, LI, ZHAO):
        assert statuses_on(stub, person, "2026-02-01") == [pb.STATUS_REGISTERED_POOR]

    # Li left the roster; Zhao's household changed.
    second = submit(
        stub,
        [row(2, WANG), row(3, ZHAO, start="2020-05-01", household="H-9")],
        as_of="2026-06-01",
        confirm=1,
    )
    assert second.submission.submission_id != first.submission.submission_id
    assert (
        second.submission.asserted_count,
        second.submission.changed_count,
        second.submission.revoked_count,
        second.submission.unchanged_count,
    ) == (0, 1, 1, 1)
    # Li holds the status up to the day before the roster's date, no longer from it.
    assert statuses_on(stub, LI, "2026-05-31") == [pb.STATUS_REGISTERED_POOR]
    assert statuses_on(stub, LI, "2026-06-01") == []
    kinds = [record.kind for record in history(stub, LI)]
    assert kinds == [pb.ASSERTION_KIND_ASSERT, pb.ASSERTION_KIND_REVOKE]
    revocation = history(stub, LI)[1]
    assert (revocation.valid_from.year, revocation.valid_from.month) == (2026, 6)
    assert [record.household_id for record in history(stub, ZHAO)] == ["H-1", "H-9"]
    assert statuses_on(stub, WANG, "2026-07-01") == [pb.STATUS_REGISTERED_POOR]


def test_the_same_roster_again_changes_nothing(hub: tuple[DatashareServiceStub, str]) -> None:
    stub, url = hub
    rows = [row(2, WANG), row(3, LI)]
    first = submit(stub, rows)
    before = counts(url)
    # The same rows in another order and other batches: the same roster.
    again = submit(stub, list(reversed(rows)), batch=1)
    assert again.replayed
    assert again.submission.submission_id == first.submission.submission_id
    assert counts(url) == before


def test_bad_rows_are_reported_by_line_and_nothing_of_them_is_stored(
    hub: tuple[DatashareServiceStub, str],
) -> None:
    stub, url = hub
    bad_digit = WANG[:-1] + ("0" if WANG[-1] != "0" else "1")
    impossible = row(6, ZHAO)
    impossible.valid_from.CopyFrom(date_pb2.Date(year=2024, month=2, day=30))
    answer = submit(
        stub,
        [
            row(2, WANG),
            row(3, bad_digit),
            row(4, LI, status=pb.STATUS_UNSPECIFIED),
            row(5, LI, status=pb.STATUS_DIBAO),  # civil affairs' status
            impossible,
            row(7, WANG),  # the same person and status again
        ],
    )
    assert [(r.line, r.field, r.code) for r in answer.rejections] == [
        (3, "person_id", "INVALID_ARGUMENT"),
        (4, "status", "INVALID_ARGUMENT"),
        (5, "status", "PERMISSION_DENIED"),  # as AssertStatus would answer it
        (6, "valid_from", "INVALID_ARGUMENT"),
        (7, "person_id", "INVALID_ARGUMENT"),
    ]
    assert "may not certify" in answer.rejections[2].reason
    submission = answer.submission
    assert (submission.row_count, submission.accepted_count, submission.rejected_count) == (
        6,
        1,
        5,
    )
    assert counts(url)[:2] == (1, 1)
    assert history(stub, LI) == []
    assert history(stub, ZHAO) == []


def test_a_bad_header_is_refused_and_stores_nothing(
    hub: tuple[DatashareServiceStub, str],
) -> None:
    stub, url = hub

    def stream() -> Iterator[pb.SubmitRosterRequest]:
        yield pb.SubmitRosterRequest(
            header=pb.RosterHeader(region="999999", as_of=day("2026-03-01")),
            rows=[row(2, WANG)],
        )

    with pytest.raises(grpc.RpcError) as caught:
        stub.SubmitRoster(stream(), metadata=POVERTY_OFFICE)
    error = decode_status(caught.value)  # type: ignore[arg-type]
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [violation.field for violation in error.violations] == ["header.region"]
    assert counts(url) == (0, 0, 0)


def test_a_roster_meant_for_another_agency_is_refused_and_stores_nothing(
    hub: tuple[DatashareServiceStub, str],
) -> None:
    """A clerk's key of the wrong agency: the header names the agency meant."""
    stub, url = hub
    header = pb.RosterHeader(region=XIXIA, as_of=day("2026-03-01"), agency=pb.AGENCY_CIVIL_AFFAIRS)
    with pytest.raises(grpc.RpcError) as caught:
        stub.SubmitRoster(
            ended([pb.SubmitRosterRequest(header=header, rows=[row(2, WANG)])]),
            metadata=POVERTY_OFFICE,
        )
    error = decode_status(caught.value)  # type: ignore[arg-type]
    assert error.code == grpc.StatusCode.PERMISSION_DENIED
    assert "poverty_office's, not civil_affairs's" in error.message
    assert counts(url) == (0, 0, 0)
    header.agency = pb.AGENCY_POVERTY_OFFICE
    answer = stub.SubmitRoster(
        ended([pb.SubmitRosterRequest(header=header, rows=[row(2, WANG)])]),
        metadata=POVERTY_OFFICE,
    )
    assert answer.submission.state == pb.ROSTER_STATE_CURRENT


def test_an_unauthenticated_stream_is_refused(hub: tuple[DatashareServiceStub, str]) -> None:
    stub, url = hub
    with pytest.raises(grpc.RpcError) as caught:
        submit(stub, [row(2, WANG)], metadata=bearer("not-a-key"))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    assert counts(url) == (0, 0, 0)


def test_a_stream_cut_by_a_killed_hub_is_abandoned_and_its_rows_dropped(
    tmp_path: Path, database_url: str
) -> None:
    env = {**no_peers(), "DOUDI_ROSTER_STREAM_MAX_SECONDS": "1"}
    first = start_service("datashare", tmp_path, database_url=database_url, env=env)
    release = threading.Event()

    def stream() -> Iterator[pb.SubmitRosterRequest]:
        header = pb.RosterHeader(region=XIXIA, as_of=day("2026-03-01"))
        yield pb.SubmitRosterRequest(header=header, rows=[row(2, WANG), row(3, LI)])
        release.wait(30)  # the stream stays open until the hub is killed

    with grpc.insecure_channel(first.address) as channel:
        call = DatashareServiceStub(channel).SubmitRoster.future(stream(), metadata=POVERTY_OFFICE)
        until(lambda: receiving(database_url) == (["receiving"], 2), "the rows never arrived")
        assert stop_service(first, signal.SIGKILL) == -signal.SIGKILL
        release.set()
        with pytest.raises(grpc.RpcError):
            call.result()
    assert receiving(database_url) == (["receiving"], 2)  # what the killed process left

    with running_service("datashare", tmp_path, database_url=database_url, env=env) as again:
        until(
            lambda: receiving(database_url) == (["abandoned"], 0),
            "the cut stream was never abandoned",
        )
        assert "abandoned 1 roster submissions receiving rows for more than 1 s" in again.log()
        answer = submit(DatashareServiceStub(again.channel()), [row(2, WANG), row(3, LI)])
    assert answer.submission.asserted_count == 2
    assert counts(database_url) == (2, 2, 2)


def test_a_stream_left_open_too_long_is_refused_at_its_end_and_stores_nothing(
    tmp_path: Path, database_url: str
) -> None:
    env = {**no_peers(), "DOUDI_ROSTER_STREAM_MAX_SECONDS": "1"}
    with running_service("datashare", tmp_path, database_url=database_url, env=env) as hub:

        def stream() -> Iterator[pb.SubmitRosterRequest]:
            header = pb.RosterHeader(region=XIXIA, as_of=day("2026-03-01"))
            digest = RowsDigest()
            first = pb.SubmitRosterRequest(header=header, rows=[row(2, WANG)])
            digest.add(first)
            yield first
            until(
                lambda: receiving(database_url)[0] == ["abandoned"],
                "the open stream was never abandoned",
            )
            last = pb.SubmitRosterRequest(rows=[row(3, LI)])
            digest.add(last)
            last.end.CopyFrom(digest.end())
            yield last

        with pytest.raises(grpc.RpcError) as caught:
            DatashareServiceStub(hub.channel()).SubmitRoster(stream(), metadata=POVERTY_OFFICE)
    error = decode_status(caught.value)  # type: ignore[arg-type]
    assert error.code == grpc.StatusCode.ABORTED
    assert error.reason == "ROSTER_ABANDONED"
    assert "submit the roster again" in error.message
    assert receiving(database_url) == (["abandoned"], 0)
    assert counts(database_url)[:2] == (0, 0)


def test_an_agency_sees_only_its_own_submissions(hub: tuple[DatashareServiceStub, str]) -> None:
    stub, _url = hub
    mine = submit(stub, [row(2, WANG)]).submission
    theirs = submit(stub, [row(2, LI, status=pb.STATUS_DIBAO)], metadata=CIVIL_AFFAIRS).submission
    got = stub.GetRosterSubmission(
        pb.GetRosterSubmissionRequest(submission_id=mine.submission_id), metadata=POVERTY_OFFICE
    )
    assert got.submission == mine
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetRosterSubmission(
            pb.GetRosterSubmissionRequest(submission_id=theirs.submission_id),
            metadata=POVERTY_OFFICE,
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    listed = stub.ListRosterSubmissions(pb.ListRosterSubmissionsRequest(), metadata=POVERTY_OFFICE)
    assert [s.submission_id for s in listed.submissions] == [mine.submission_id]
    everyone = stub.ListRosterSubmissions(pb.ListRosterSubmissionsRequest(), metadata=INTERNAL)
    assert [s.submission_id for s in everyone.submissions] == [
        theirs.submission_id,
        mine.submission_id,
    ]
    # Every agency read is audited (the refused one read nothing); the platform's are not.
    assert [(e.caller, e.method, e.person_id, e.subject) for e in audit_trail(stub)] == [
        (
            "poverty_office",
            "GetRosterSubmission",
            "",
            f"roster submission {mine.submission_id}",
        ),
        ("poverty_office", "ListRosterSubmissions", "", "roster submissions"),
    ]


def test_direct_assertions_stay_idempotent_on_their_reference_beside_rosters(
    hub: tuple[DatashareServiceStub, str],
) -> None:
    stub, url = hub
    submit(stub, [row(2, WANG)])  # reference PO-2, from a roster
    request = pb.AssertStatusRequest(
        person_id=LI,
        household_id="H-2",
        status=pb.STATUS_REGISTERED_POOR,
        valid_from=day("2017-01-01"),
        reference="PO-2",  # the same text as the roster row's: no clash
    )
    first = stub.AssertStatus(request, metadata=POVERTY_OFFICE)
    again = stub.AssertStatus(request, metadata=POVERTY_OFFICE)
    assert first.assertion.assertion_id == again.assertion.assertion_id
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            references = connection.execute(
                select(status_assertions.c.reference, status_assertions.c.submission_id).order_by(
                    status_assertions.c.assertion_id
                )
            ).all()
    finally:
        engine.dispose()
    assert [reference for reference, _ in references] == ["PO-2", "PO-2"]
    assert references[0][1] is not None
    assert references[1][1] is None


def walk(url: str, submission_id: int, limit: int) -> list[list[str]]:
    """The batches of persons the sender walks for a roster (``roster_deliveries``)."""
    engine = create_engine_for(url)
    batches: list[list[str]] = []
    position: str | None = ""
    try:
        with engine.connect() as connection:
            while position is not None:
                persons, position = rosters.changed_persons(
                    connection, submission_id, position, limit
                )
                batches.append(persons)
    finally:
        engine.dispose()
    return batches


def test_the_sender_walks_the_persons_each_roster_changed_and_no_one_else(
    hub: tuple[DatashareServiceStub, str],
) -> None:
    stub, url = hub
    first = submit(stub, [row(2, WANG), row(3, LI), row(4, ZHAO)])
    # A record of no roster between the two rosters' records.
    stub.AssertStatus(
        pb.AssertStatusRequest(
            person_id=WANG,
            household_id="H-1",
            status=pb.STATUS_DIBAO,
            valid_from=day("2026-01-01"),
            reference="CA-1",
        ),
        metadata=CIVIL_AFFAIRS,
    )
    second = submit(
        stub, [row(2, WANG), row(4, ZHAO, household="H-9")], as_of="2026-06-01", confirm=1
    )

    walked = [person for batch in walk(url, first.submission.submission_id, 2) for person in batch]
    assert sorted(walked) == sorted(PERSONS)
    # Zhao's household changed and Li left: Wang, unchanged, is not sent again.
    batches = walk(url, second.submission.submission_id, 1)
    assert batches == [[ZHAO], [LI], []]
