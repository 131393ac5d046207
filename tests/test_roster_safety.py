"""A roster never loses anyone (issue 17): a submission is recorded whole or not at all,
a mass revocation or a roster without an accepted row needs the clerk's confirmation,
and a preview shows what would change while storing nothing.

Each test starts ``python -m services.datashare`` as a real process on each backend, with
a current roster of the poverty office's forty persons, and checks after every refused
or broken stream that the hub holds exactly what it held before: the same records, the
same current roster, the same statuses for every person.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import select, text

from doudi.cli import roster_client
from doudi.common.db import create_engine_for
from doudi.common.errors import decode_status
from doudi.common.roster_stream import RowsDigest, ended
from doudi.core.errors import InvalidInput
from doudi.core.identity import mask
from doudi.datashare.v1 import datashare_pb2 as pb
from doudi.datashare.v1.datashare_pb2_grpc import DatashareServiceStub
from services.datashare.tables import roster_rows, roster_submissions
from tests.services import no_peers, running_service
from tests.support import run_cli, with_check_digit
from tests.test_datashare_service import day, statuses_on
from tests.test_rosters import POVERTY_OFFICE, XIXIA, receiving, row, submit, until

PERSONS = [with_check_digit(f"41132319600101{index:03d}") for index in range(1, 41)]
NAMES = [f"居民{index}" for index in range(1, 41)]
CURRENT = [row(index + 2, person, name=NAMES[index]) for index, person in enumerate(PERSONS)]


@pytest.fixture
def hub(tmp_path: Path, database_url: str) -> Iterator[tuple[DatashareServiceStub, str, str]]:
    with running_service(
        "datashare", tmp_path, database_url=database_url, env=no_peers()
    ) as running:
        stub = DatashareServiceStub(running.channel())
        submit(stub, CURRENT, batch=10)
        yield stub, database_url, running.address
    log = running.log()
    for number in PERSONS:
        assert number not in log, "the service logged a full identity number"


def held(stub: DatashareServiceStub, url: str) -> dict[str, Any]:
    """Everything a broken or refused submission must leave as it was."""
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            records = connection.execute(
                text("SELECT * FROM status_assertions ORDER BY assertion_id")
            ).all()
            rows = connection.execute(
                select(roster_rows).order_by(roster_rows.c.person_id, roster_rows.c.status)
            ).all()
            current = connection.execute(
                select(roster_submissions).where(roster_submissions.c.state == "current")
            ).all()
    finally:
        engine.dispose()
    return {
        "records": [tuple(record) for record in records],
        "roster": [tuple(entry) for entry in rows],
        "current": [tuple(entry) for entry in current],
        "statuses": [statuses_on(stub, person, "2026-12-31") for person in PERSONS],
    }


def refusal(error: pytest.ExceptionInfo[grpc.RpcError]) -> Any:
    return decode_status(error.value)  # type: ignore[arg-type]


def messages(rows: list[pb.RosterRow], header: pb.RosterHeader) -> list[pb.SubmitRosterRequest]:
    first, *rest = [rows[start : start + 10] for start in range(0, len(rows), 10)]
    return [
        pb.SubmitRosterRequest(header=header, rows=first),
        *(pb.SubmitRosterRequest(rows=part) for part in rest),
    ]


NEXT_MONTH = pb.RosterHeader(region=XIXIA, as_of=day("2026-04-01"))


# -- all or nothing ---------------------------------------------------------------------------


def test_a_stream_that_stops_after_half_its_rows_without_its_end_stores_nothing(
    hub: tuple[DatashareServiceStub, str, str],
) -> None:
    stub, url, _address = hub
    before = held(stub, url)
    half = messages(CURRENT[:20], NEXT_MONTH)  # the client half-closes: no end
    with pytest.raises(grpc.RpcError) as caught:
        stub.SubmitRoster(iter(half), metadata=POVERTY_OFFICE)
    error = refusal(caught)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [violation.field for violation in error.violations] == ["end"]
    assert "nothing was stored" in error.message
    assert held(stub, url) == before
    assert receiving(url) == (["current", "abandoned"], 0)


@pytest.mark.parametrize("fault", ["count", "digest"])
def test_an_end_that_does_not_declare_the_rows_received_stores_nothing(
    hub: tuple[DatashareServiceStub, str, str], fault: str
) -> None:
    stub, url, _address = hub
    before = held(stub, url)
    sent = messages(CURRENT[:30], NEXT_MONTH)
    digest = RowsDigest()
    for message in sent:
        digest.add(message)
    end = digest.end()
    if fault == "count":
        end.row_count = 40  # ten rows lost on the way
    else:  # a row altered on the way: the same count
        altered = pb.SubmitRosterRequest()
        altered.CopyFrom(sent[1])
        altered.rows[0].name = "某某"
        sent[1] = altered
    sent[-1].end.CopyFrom(end)
    with pytest.raises(grpc.RpcError) as caught:
        stub.SubmitRoster(iter(sent), metadata=POVERTY_OFFICE)
    error = refusal(caught)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    field = "end.row_count" if fault == "count" else "end.rows_digest"
    assert [violation.field for violation in error.violations] == [field]
    assert "nothing was stored" in error.message
    assert held(stub, url) == before
    assert receiving(url) == (["current", "abandoned"], 0)


def test_a_cancelled_stream_stores_nothing(hub: tuple[DatashareServiceStub, str, str]) -> None:
    stub, url, _address = hub
    before = held(stub, url)
    release = threading.Event()

    def stream() -> Iterator[pb.SubmitRosterRequest]:
        yield from messages(CURRENT[:20], NEXT_MONTH)
        release.wait(30)  # the clerk gives up here

    call = stub.SubmitRoster.future(stream(), metadata=POVERTY_OFFICE)
    until(lambda: receiving(url) == (["current", "receiving"], 20), "the rows never arrived")
    call.cancel()
    release.set()
    until(lambda: receiving(url) == (["current", "abandoned"], 0), "the stream was never abandoned")
    assert call.cancelled()
    assert held(stub, url) == before


def fail_storing_line(url: str, line: int) -> None:
    """Make the hub's database refuse to store the received row of ``line``."""
    engine = create_engine_for(url)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "sqlite":
                connection.execute(
                    text(
                        "CREATE TRIGGER fail BEFORE INSERT ON received_rows "
                        f"WHEN NEW.line = {line} BEGIN SELECT RAISE(ABORT, 'disk failure'); END"
                    )
                )
            else:
                connection.execute(
                    text(
                        "CREATE FUNCTION fail() RETURNS trigger AS $$ BEGIN "
                        f"IF NEW.line = {line} THEN RAISE EXCEPTION 'disk failure'; END IF; "
                        "RETURN NEW; END $$ LANGUAGE plpgsql"
                    )
                )
                connection.execute(
                    text(
                        "CREATE TRIGGER fail BEFORE INSERT ON received_rows "
                        "FOR EACH ROW EXECUTE FUNCTION fail()"
                    )
                )
    finally:
        engine.dispose()


def test_a_server_error_mid_roster_stores_nothing(
    hub: tuple[DatashareServiceStub, str, str],
) -> None:
    stub, url, _address = hub
    before = held(stub, url)
    fail_storing_line(url, 25)  # in the third message of ten rows
    shorter = CURRENT[:30]
    with pytest.raises(grpc.RpcError) as caught:
        stub.SubmitRoster(ended(messages(shorter, NEXT_MONTH)), metadata=POVERTY_OFFICE)
    assert refusal(caught).code == grpc.StatusCode.INTERNAL
    assert held(stub, url) == before
    assert receiving(url) == (["current", "abandoned"], 0)


def test_a_message_too_large_for_the_hub_stores_nothing(
    hub: tuple[DatashareServiceStub, str, str],
) -> None:
    """The clerk's file of the first report: 18 good lines, then a cell of two million
    characters that makes a message larger than the hub receives."""
    stub, url, _address = hub
    before = held(stub, url)
    huge = row(20, PERSONS[19], name="周" * 2_000_000)
    sent = [
        pb.SubmitRosterRequest(header=NEXT_MONTH, rows=CURRENT[:18]),
        pb.SubmitRosterRequest(rows=[huge, *CURRENT[19:]]),
    ]
    with pytest.raises(grpc.RpcError) as caught:
        stub.SubmitRoster(ended(sent), metadata=POVERTY_OFFICE)
    assert refusal(caught).code != grpc.StatusCode.OK
    until(lambda: receiving(url)[0][-1] != "receiving", "the stream was never abandoned")
    assert held(stub, url) == before
    assert receiving(url) == (["current", "abandoned"], 0)


def test_a_row_with_an_invisible_or_control_character_is_rejected_by_its_line(
    hub: tuple[DatashareServiceStub, str, str],
) -> None:
    """Sent over gRPC, not read from a file: the hub stores no name an export could not
    write or a clerk could not see."""
    stub, _url, _address = hub
    rows = [*CURRENT]
    rows[3] = row(5, PERSONS[3], name="居民\u200b4")
    rows[4] = row(6, PERSONS[4], name="居民\x015")
    answer = submit(stub, rows, as_of="2026-04-01", batch=10, confirm=2)
    assert [(r.line, r.field) for r in answer.rejections] == [(5, "name"), (6, "name")]
    assert "U+200B" in answer.rejections[0].reason
    assert "invisible or control character" in answer.rejections[1].reason


# -- revocations need confirming --------------------------------------------------------------


def test_a_mass_revocation_is_refused_unless_confirmed_and_lists_every_person_revoked(
    hub: tuple[DatashareServiceStub, str, str],
) -> None:
    stub, url, _address = hub
    before = held(stub, url)
    staying = CURRENT[3:]  # three of forty gone: 7.5%, more than 5%
    with pytest.raises(grpc.RpcError) as caught:
        submit(stub, staying, as_of="2026-04-01", batch=10)
    error = refusal(caught)
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "MASS_REVOCATION")
    assert error.metadata == {"revocations": "3", "current_rows": "40", "limit_percent": "5"}
    assert "3 of the 40" in error.message
    assert "nothing was stored" in error.message
    assert held(stub, url) == before

    with pytest.raises(grpc.RpcError) as caught:
        submit(stub, staying, as_of="2026-04-01", batch=10, confirm=2)
    error = refusal(caught)
    assert error.reason == "REVOCATIONS_NOT_AS_CONFIRMED"
    assert [violation.field for violation in error.violations] == ["header.confirmed_revocations"]
    assert held(stub, url) == before

    answer = submit(stub, staying, as_of="2026-04-01", batch=10, confirm=3)
    assert answer.submission.state == pb.ROSTER_STATE_CURRENT
    assert answer.submission.revoked_count == 3
    assert [
        (r.person_id, r.name, r.status, r.previous_line, r.reference) for r in answer.revocations
    ] == [(PERSONS[i], NAMES[i], pb.STATUS_REGISTERED_POOR, i + 2, f"PO-{i + 2}") for i in range(3)]
    assert {r.previous_submission_id for r in answer.revocations} == {
        before["current"][0][0]  # the submission id of the roster they were on
    }
    assert statuses_on(stub, PERSONS[0], "2026-04-01") == []
    assert statuses_on(stub, PERSONS[3], "2026-04-01") == [pb.STATUS_REGISTERED_POOR]


def test_revocations_up_to_the_share_need_no_confirmation(
    hub: tuple[DatashareServiceStub, str, str],
) -> None:
    stub, _url, _address = hub
    answer = submit(stub, CURRENT[2:], as_of="2026-04-01", batch=10)  # two of forty: 5%
    assert answer.submission.revoked_count == 2
    assert [revoked.person_id for revoked in answer.revocations] == PERSONS[:2]


def test_a_roster_with_no_accepted_row_is_refused_unless_confirmed(
    hub: tuple[DatashareServiceStub, str, str],
) -> None:
    """Every row another agency's status: stored as it was, it would revoke everyone."""
    stub, url, _address = hub
    before = held(stub, url)
    theirs = [row(line, person, status=pb.STATUS_DIBAO) for line, person in enumerate(PERSONS, 2)]
    with pytest.raises(grpc.RpcError) as caught:
        submit(stub, theirs, as_of="2026-04-01", batch=10)
    error = refusal(caught)
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "NO_ACCEPTED_ROWS")
    assert error.metadata["revocations"] == "40"
    assert held(stub, url) == before

    answer = submit(stub, theirs, as_of="2026-04-01", batch=10, confirm=40)
    assert (answer.submission.accepted_count, answer.submission.revoked_count) == (0, 40)
    assert len(answer.rejections) == 40
    assert all(statuses_on(stub, person, "2026-04-01") == [] for person in PERSONS)


# -- previews ---------------------------------------------------------------------------------


def test_a_preview_stores_nothing_and_lists_the_revocations(
    hub: tuple[DatashareServiceStub, str, str],
) -> None:
    stub, url, _address = hub
    before = held(stub, url)
    newcomer = with_check_digit("41132319990909123")
    rows = [*CURRENT[5:], row(50, newcomer, name="新人")]
    rows[0] = row(7, PERSONS[5], name=NAMES[5], household="H-2")  # changed household
    answer = submit(stub, rows, as_of="2026-04-01", batch=10, preview=True)
    submission = answer.submission
    assert (submission.submission_id, submission.state) == (0, pb.ROSTER_STATE_PREVIEWED)
    assert (
        submission.asserted_count,
        submission.changed_count,
        submission.revoked_count,
        submission.unchanged_count,
    ) == (1, 1, 5, 34)
    assert [revoked.person_id for revoked in answer.revocations] == PERSONS[:5]
    assert held(stub, url) == before
    assert receiving(url) == (["current"], 0)  # not even the preview's submission is kept
    assert statuses_on(stub, newcomer, "2026-12-31") == []

    same = submit(stub, CURRENT, batch=10, preview=True)
    assert same.replayed
    assert held(stub, url) == before


# -- the clerk's command ----------------------------------------------------------------------


def roster_csv(path: Path, persons: range) -> Path:
    lines = ["身份证号码,姓名,户编号,救助类别,认定日期,终止日期,业务编号"]
    lines += [f"{PERSONS[i]},{NAMES[i]},H-1,建档立卡贫困户,2016-01-01,,PO-{i + 2}" for i in persons]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def command(path: Path, address: str, *options: str) -> list[str]:
    return [
        "roster",
        "submit",
        "--agency=poverty_office",
        f"--region={XIXIA}",
        "--as-of=2026-04-01",
        f"--address={address}",
        "--key=demo-poverty-office",
        *options,
        str(path),
    ]


def test_the_command_previews_refuses_a_mass_revocation_and_stores_it_confirmed(
    hub: tuple[DatashareServiceStub, str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stub, url, address = hub
    before = held(stub, url)
    path = roster_csv(tmp_path / "四月.csv", range(4, 40))  # four of forty gone

    code, out, err = run_cli(command(path, address, "--dry-run"), capsys)
    assert (code, err) == (0, "")
    assert "dry run: what the roster would change; nothing was stored" in out
    listed = out.split("who would lose the status from 2026-04-01 (4):\n")[1].splitlines()
    assert [line.split()[3:6] for line in listed] == [
        [mask(PERSONS[i]), NAMES[i], "registered_poor"] for i in range(4)
    ]
    assert all(PERSONS[i] not in out for i in range(4))
    assert held(stub, url) == before

    code, out, err = run_cli(command(path, address), capsys)
    assert (code, out) == (1, "")
    assert "would revoke 4 of the 40 statuses" in err
    assert "--dry-run" in err
    assert "--confirm-revocations 4" in err
    assert "nothing was stored" in err
    assert held(stub, url) == before

    code, out, err = run_cli(command(path, address, "--confirm-revocations", "4"), capsys)
    assert (code, err) == (0, "")
    assert "stored" in out
    assert "who lost the status from 2026-04-01 (4):" in out
    assert statuses_on(stub, PERSONS[0], "2026-04-01") == []


def test_the_command_says_nothing_was_stored_when_the_stream_breaks_before_its_end(
    hub: tuple[DatashareServiceStub, str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The file turns out unreadable after rows were sent: the stream is cancelled."""
    stub, url, address = hub
    before = held(stub, url)
    path = roster_csv(tmp_path / "四月.csv", range(40))
    real = roster_client.read_roster_batches

    def breaking(path: Path, batch_size: int) -> Iterator[Any]:
        for number, batch in enumerate(real(path, 10)):
            if number == 2:
                raise InvalidInput("file", "line 23: the disk could not be read")
            yield batch

    monkeypatch.setattr(roster_client, "read_roster_batches", breaking)
    code, out, err = run_cli(command(path, address), capsys)
    assert (code, out) == (2, "")
    assert "line 23: the disk could not be read" in err
    assert "nothing was stored" in err
    # Cancelled so soon, the stream may not have reached the hub at all.
    until(lambda: receiving(url)[0][-1] != "receiving", "the stream was never abandoned")
    assert held(stub, url) == before
    assert receiving(url)[1] == 0


# -- messages by their encoded size -----------------------------------------------------------


def test_messages_are_split_by_their_encoded_size_whatever_a_field_holds() -> None:
    rows = [row(line, PERSONS[0], name="周" * 100_000) for line in range(2, 42)]  # 300 KB each
    parts = list(roster_client._sized(pb.SubmitRosterRequest(rows=rows)))
    assert len(parts) > 3
    assert [r for part in parts for r in part.rows] == rows
    for part in parts:
        assert part.ByteSize() <= roster_client.MESSAGE_BYTES
    too_large = row(7, PERSONS[0], name="周" * 1_200_000)
    with pytest.raises(InvalidInput, match="line 7: the row is"):
        list(roster_client._sized(pb.SubmitRosterRequest(rows=[rows[0], too_large])))
