"""``doudi roster submit``: a clerk submits an agency's roster file to the datashare hub.

Each test that needs the hub starts ``python -m services.datashare`` as a real process
on each backend and runs ``doudi`` in this process. The hub knows the demo keys and
one real key of the trade union's.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import termios
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import select

from doudi.cli import roster_client
from doudi.cli.demo import DEMO_AGENCY_KEYS
from doudi.cli.main import main
from doudi.cli.roster_file import LineError
from doudi.common.db import create_engine_for
from doudi.core.identity import mask
from doudi.datashare.v1 import datashare_pb2 as pb
from doudi.datashare.v1.datashare_pb2_grpc import DatashareServiceStub
from services.datashare import rosters
from services.datashare.tables import roster_submissions
from tests.services import INTERNAL, free_port, no_peers, running_service
from tests.support import run_cli, with_check_digit
from tests.test_cli_manners import DOUDI
from tests.test_datashare_service import statuses_on
from tests.test_rosters import counts

WANG = with_check_digit("41132319500315001")
LI = with_check_digit("41132319820704002")
ZHAO = with_check_digit("41132319700101003")
QIAN = with_check_digit("41132319900505004")
_SUN = with_check_digit("41132319881111005")
SUN_BAD_DIGIT = _SUN[:-1] + ("1" if _SUN[-1] == "0" else "0")
PERSONS = (WANG, LI, ZHAO, QIAN, SUN_BAD_DIGIT)

TRADE_UNION_KEY = "trade-union-0123456789abcdef"  # a real key: not a demo key, 24+ characters
XIXIA = "411323"
HEADER = ["身份证号码", "姓名", "户编号", "救助类别", "认定日期", "终止日期", "业务编号"]

# Civil affairs' roster: two good rows and four bad ones, two of each kind.
CIVIL_AFFAIRS_ROWS = [
    [WANG, "王秀英", "H-1", "低保", "2024/3/1", "", "民政-1"],  # line 2: good
    [SUN_BAD_DIGIT, "孙立", "H-2", "低保", "2024-03-01", "", "民政-2"],  # 3: the hub rejects
    [LI, "李娜", "H-3", "临时救助", "2024-03-01", "", "民政-3"],  # 4: unknown status (file)
    [ZHAO, "赵强", "H-4", "建档立卡贫困户", "2024-03-01", "", "民政-4"],  # 5: poverty office's
    [QIAN, "钱芳", "H-5", "特困供养", "2024-02-30", "", "民政-5"],  # 6: no such day (file)
    [LI, "李娜", "H-3", "孤儿", "2024年3月1日", "2025-12-31", "民政-6"],  # 7: good
]
# What the report counts of either first roster (CSV or Excel): 6 rows, 2 good.
FIRST_COUNTS = {
    "rows": 6,
    "accepted": 2,
    "rejected": 4,
    "asserted": 2,
    "changed": 0,
    "revoked": 0,
    "unchanged": 0,
}
EXPECTED_REJECTIONS = [
    (3, "person_id", "wrong check digit"),
    (4, "status", "unknown status '临时救助'"),
    (5, "status", "civil_affairs may not certify registered_poor"),
    (6, "valid_from", "'2024-02-30' is not a real calendar date"),
]


@dataclass
class Hub:
    address: str
    stub: DatashareServiceStub
    database_url: str

    def submissions(self) -> list[pb.RosterSubmission]:
        answer = self.stub.ListRosterSubmissions(
            pb.ListRosterSubmissionsRequest(), metadata=INTERNAL
        )
        return list(answer.submissions)


@pytest.fixture(autouse=True)
def no_client_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests say the address and key; the environment they run in does not."""
    monkeypatch.delenv(roster_client.ADDRESS_ENV, raising=False)
    monkeypatch.delenv(roster_client.KEY_ENV, raising=False)


@pytest.fixture
def hub(tmp_path: Path, database_url: str) -> Iterator[Hub]:
    keys = {**DEMO_AGENCY_KEYS, TRADE_UNION_KEY: "trade_union"}
    env = {**no_peers(), "DOUDI_AGENCY_KEYS": json.dumps(keys)}
    with running_service("datashare", tmp_path, database_url=database_url, env=env) as running:
        yield Hub(running.address, DatashareServiceStub(running.channel()), database_url)
    log = running.log()
    for number in PERSONS:
        assert number not in log, "the service logged a full identity number"


def write_csv(path: Path, rows: list[list[str]], encoding: str = "utf-8") -> Path:
    path.write_bytes("".join(",".join(row) + "\r\n" for row in [HEADER, *rows]).encode(encoding))
    return path


def submit(
    path: Path,
    address: str,
    *options: str,
    agency: str = "civil_affairs",
    as_of: str = "2026-03-01",
) -> list[str]:
    return [
        "roster",
        "submit",
        "--agency",
        agency,
        "--region",
        XIXIA,
        "--as-of",
        as_of,
        "--address",
        address,
        *options,
        str(path),
    ]


def rejected_lines(out: str) -> list[str]:
    """The report's lines below ``rejected lines``."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("rejected lines"))
    return lines[start + 1 :]


def report_counts(out: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and line.startswith("  ") and not line.startswith("  line"):
            counts[parts[0]] = int(parts[1].replace(",", ""))
    return counts


def unused_address() -> str:
    return f"127.0.0.1:{free_port()}"  # nothing listens there


# -- a roster stored ------------------------------------------------------------------------


def test_a_csv_roster_is_stored_with_its_bad_lines_reported_and_the_same_file_again_is_a_replay(
    hub: Hub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(tmp_path / "民政低保.csv", CIVIL_AFFAIRS_ROWS, encoding="gb18030")
    code, out, err = run_cli(submit(path, hub.address), capsys)
    assert code == 0, err
    assert "demo key of civil_affairs" in err  # no --key: the demo key, and the clerk is told
    assert out.startswith(
        "民政低保.csv (CSV, GB18030): roster of civil_affairs for region 411323 as of 2026-03-01\n"
    )
    [submission] = hub.submissions()
    assert f"submission {submission.submission_id}: stored\n" in out
    assert report_counts(out) == FIRST_COUNTS
    reported = rejected_lines(out)
    assert len(reported) == len(EXPECTED_REJECTIONS)
    for text, (line, field, reason) in zip(reported, EXPECTED_REJECTIONS, strict=True):
        assert text.split()[:3] == ["line", str(line), field]
        assert reason in text
    for number in PERSONS:
        assert number not in out
    # The good persons hold their statuses; nothing of the bad lines was recorded.
    assert statuses_on(hub.stub, WANG, "2026-02-01") == [pb.STATUS_DIBAO]
    assert statuses_on(hub.stub, LI, "2025-12-31") == [pb.STATUS_ORPHAN]
    assert statuses_on(hub.stub, LI, "2026-01-01") == []
    for person in (ZHAO, QIAN):
        assert statuses_on(hub.stub, person, "2026-02-01") == []
    before = counts(hub.database_url)
    assert before[0] == 2  # two assertions

    code, again, err = run_cli(submit(path, hub.address, "--key", "demo-civil-affairs"), capsys)
    assert (code, err) == (0, "")
    assert (
        f"submission {submission.submission_id}: replayed: the hub already holds this roster; "
        "nothing changed" in again
    )
    assert report_counts(again) == {**FIRST_COUNTS, "asserted": 0, "unchanged": 2}
    assert rejected_lines(again) == reported
    assert counts(hub.database_url) == before

    # Later Wang has left the roster: his status ends on its date.
    later = write_csv(tmp_path / "later.csv", CIVIL_AFFAIRS_ROWS[1:])
    code, out, err = run_cli(
        submit(later, hub.address, "--confirm-revocations", "1", as_of="2026-06-01"), capsys
    )
    assert code == 0, err
    assert report_counts(out) == {
        "rows": 5,
        "accepted": 1,
        "rejected": 4,
        "asserted": 0,
        "changed": 0,
        "revoked": 1,
        "unchanged": 1,
    }
    assert statuses_on(hub.stub, WANG, "2026-05-31") == [pb.STATUS_DIBAO]
    assert statuses_on(hub.stub, WANG, "2026-06-01") == []


def test_an_xlsx_roster_with_json_output(
    hub: Hub, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["身份证号", "姓名", "家庭编号", "人员类别", "开始日期", "终止日期", "业务编号"])
    march = datetime(2024, 3, 1)
    sheet.append([WANG, "王秀英", "H-1", "低保", march, None, "R-1"])  # 2: good
    sheet.append([int(LI), "李娜", "H-3", "低保", march, None, "R-2"])  # 3: a number cell
    sheet.append([SUN_BAD_DIGIT, "孙立", "H-2", "低保", march, None, "R-3"])  # 4: check digit
    sheet.append([ZHAO, "赵强", "H-4", "困难职工", march, None, "R-4"])  # 5: the trade union's
    sheet.append([QIAN, "钱芳", "H-5", "边缘家庭", "2024.03.01", None, "R-5"])  # 6: date form
    sheet.append([QIAN, "钱芳", "H-5", "特困供养", "20240301", 20251231, "R-6"])  # 7: good
    path = tmp_path / "roster.xlsx"
    workbook.save(path)
    # The address and the key from the environment.
    monkeypatch.setenv(roster_client.ADDRESS_ENV, hub.address)
    monkeypatch.setenv(roster_client.KEY_ENV, "demo-civil-affairs")
    argv = [
        "roster",
        "submit",
        "--json",
        "--agency=civil_affairs",
        "--region=411323",
        "--as-of=2026-03-01",
        str(path),
    ]

    code, out, err = run_cli(argv, capsys)
    assert (code, err) == (0, "")
    report = json.loads(out)
    [submission] = hub.submissions()
    assert {key: value for key, value in report.items() if key != "rejections"} == {
        "file": "roster.xlsx",
        "encoding": "xlsx",
        "agency": "civil_affairs",
        "region": XIXIA,
        "as_of": "2026-03-01",
        "submission_id": submission.submission_id,
        "replayed": False,
        "preview": False,
        "counts": FIRST_COUNTS,
        "revocations": [],
    }
    assert [(r["line"], r["field"]) for r in report["rejections"]] == [
        (3, "person_id"),
        (4, "person_id"),
        (5, "status"),
        (6, "valid_from"),
    ]
    reasons = [r["reason"] for r in report["rejections"]]
    assert "format the column as text" in reasons[0]
    assert "wrong check digit" in reasons[1]
    assert reasons[2] == "civil_affairs may not certify difficult_worker"
    assert "'2024.03.01' is not a date written" in reasons[3]
    assert statuses_on(hub.stub, WANG, "2026-02-01") == [pb.STATUS_DIBAO]
    assert statuses_on(hub.stub, QIAN, "2025-12-31") == [pb.STATUS_EXTREME_POVERTY]
    assert statuses_on(hub.stub, ZHAO, "2026-02-01") == []

    code, out, err = run_cli(argv, capsys)
    assert (code, err) == (0, "")
    again = json.loads(out)
    assert again["replayed"] is True
    assert again["submission_id"] == submission.submission_id
    assert again["counts"] == {**report["counts"], "asserted": 0, "unchanged": 2}
    assert again["rejections"] == report["rejections"]


def test_rows_too_many_for_one_message_go_in_several_and_the_header_only_in_the_first(
    hub: Hub, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert roster_client.ROWS_PER_MESSAGE == rosters.MAX_ROWS_PER_MESSAGE
    monkeypatch.setattr(roster_client, "MESSAGE_BYTES", 200)  # about two rows a message
    rows = [
        [
            with_check_digit(f"4113231960010100{i}"),
            f"人{i}",
            f"H-{i}",
            "低保",
            "2024-01-01",
            "",
            f"R{i}",
        ]
        for i in range(7)
    ]
    path = write_csv(tmp_path / "roster.csv", rows)
    code, out, err = run_cli(submit(path, hub.address, "--json"), capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["counts"]["accepted"] == report["counts"]["asserted"] == 7
    assert report["rejections"] == []


# -- nothing stored -------------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"


def test_a_file_that_is_not_a_roster_is_refused_and_nothing_is_sent(
    hub: Hub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    header_only = ",".join(HEADER).encode()
    unreadable = write_csv(
        tmp_path / "unreadable.csv",
        [r for r in CIVIL_AFFAIRS_ROWS if "临时救助" in r or "2024-02-30" in r],
    )
    cases = [
        ("photo.csv", PNG, "photo.csv: is a PNG image, not CSV text"),
        ("noise.csv", bytes(range(256)) * 4, "noise.csv: is not CSV text: byte 0x00 at offset 0"),
        ("roster.pdf", b"%PDF-1.7\n", "must be a CSV (.csv) or Excel (.xlsx) file, not .pdf"),
        ("roster.xlsx", header_only, "roster.xlsx: is not an Excel (.xlsx) workbook"),
        ("empty.csv", header_only, "empty.csv: has no rows below the header"),
        (
            unreadable.name,
            unreadable.read_bytes(),
            "none of its 2 rows can be read (line 2, status",
        ),
    ]
    for name, content, message in cases:
        path = tmp_path / name
        path.write_bytes(content)
        code, out, err = run_cli(submit(path, hub.address), capsys)
        assert (code, out) == (2, ""), name
        assert err.startswith("doudi: error: "), name
        assert err.count("\n") == 1, err
        assert message in err
        assert err.endswith("; nothing was sent\n")
    assert hub.submissions() == []
    assert counts(hub.database_url) == (0, 0, 0)


def test_a_file_unreadable_part_way_through_is_refused_before_anything_is_sent(
    hub: Hub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    many = [
        [
            with_check_digit(f"41132319600101{i:03d}"),
            "某人",
            f"H-{i}",
            "低保",
            "2024-01-01",
            "",
            f"R{i}",
        ]
        for i in range(1000)
    ]
    rows = many * (roster_client.ROWS_PER_MESSAGE // len(many))  # a full first message
    rows.append([WANG, "x" * 200_000, "H", "低保", "2024-01-01", "", "R"])  # not CSV any more
    path = write_csv(tmp_path / "roster.csv", rows)
    code, out, err = run_cli(submit(path, hub.address), capsys)
    assert (code, out) == (2, "")
    line = roster_client.ROWS_PER_MESSAGE + 2
    assert f"roster.csv: line {line}: a value of more than 32,767 characters" in err
    # The whole file is read before the first batch (roster_file.read_roster_batches):
    # the hub receives nothing, no roster of the agency's is current, nothing is in the
    # registry, and the next roster starts afresh.
    assert "nothing was sent" in err
    engine = create_engine_for(hub.database_url)
    try:
        with engine.connect() as connection:
            states = connection.execute(select(roster_submissions.c.state)).scalars().all()
    finally:
        engine.dispose()
    assert rosters.CURRENT not in states
    assert counts(hub.database_url)[0] == 0
    assert statuses_on(hub.stub, many[0][0], "2026-02-01") == []
    code, out, err = run_cli(submit(write_csv(path, many[:3]), hub.address, "--json"), capsys)
    assert code == 0, err
    assert json.loads(out)["counts"] == {
        "rows": 3,
        "accepted": 3,
        "rejected": 0,
        "asserted": 3,
        "changed": 0,
        "revoked": 0,
        "unchanged": 0,
    }


def test_the_hub_refusing_the_roster_exits_1_saying_why(
    hub: Hub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(tmp_path / "roster.csv", CIVIL_AFFAIRS_ROWS)
    argv = submit(path, hub.address)
    argv[argv.index(XIXIA)] = "999999"  # no policy pack: not a pooling region
    code, out, err = run_cli(argv, capsys)
    assert (code, out) == (1, "")
    assert err.splitlines()[-1] == (
        f"doudi: error: the datashare hub at {hub.address} refused the roster as invalid: "
        "header.region: '999999' is not a pooling region with a policy pack (known: 120000, "
        "411323, 440781, 540400); nothing was stored"
    )
    assert counts(hub.database_url)[0] == 0


def test_an_unreachable_hub_exits_1_naming_the_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(tmp_path / "roster.csv", CIVIL_AFFAIRS_ROWS)
    address = unused_address()
    code, out, err = run_cli(submit(path, address, "--key", "demo-civil-affairs"), capsys)
    assert (code, out) == (1, "")
    assert err.startswith(
        f"doudi: error: the datashare hub at {address} could not be reached (no connection "
    )
    assert err.endswith("; nothing was sent\n")


# -- keys -------------------------------------------------------------------------------------


def test_a_key_of_another_agency_is_refused_before_anything_is_sent(
    hub: Hub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(tmp_path / "roster.csv", CIVIL_AFFAIRS_ROWS)
    # A demo key: its agency is known here.
    code, out, err = run_cli(submit(path, hub.address, "--key", "demo-poverty-office"), capsys)
    assert (code, out) == (1, "")
    assert err == (
        "doudi: error: the key demo-poverty-office is the demo key of poverty_office, not of "
        "civil_affairs; nothing was sent\n"
    )
    # A real key of another agency: the hub refuses the stream by its header, before it
    # stores anything, whether or not that agency has submitted before.
    union = [[WANG, "王秀英", "T-1", "困难职工", "2024-01-01", "", "工会-1"]]
    union_path = write_csv(tmp_path / "union.csv", union)
    for _ in range(2):
        code, out, err = run_cli(submit(path, hub.address, "--key", TRADE_UNION_KEY), capsys)
        assert (code, out) == (1, "")
        assert err == (
            f"doudi: error: the datashare hub at {hub.address} refused the roster: "
            "the key is trade_union's, not civil_affairs's; nothing was stored\n"
        )
        assert TRADE_UNION_KEY not in err
        assert [s.state for s in hub.submissions()] in ([], [pb.ROSTER_STATE_CURRENT])
        code, _out, err = run_cli(
            submit(union_path, hub.address, "--key", TRADE_UNION_KEY, agency="trade_union"),
            capsys,
        )
        assert code == 0, err
    # A key the hub does not know.
    code, out, err = run_cli(submit(path, hub.address, "--key", "not-a-key"), capsys)
    assert (code, out) == (1, "")
    assert err == (
        f"doudi: error: the datashare hub at {hub.address} did not accept the key: "
        "unknown token; nothing was sent\n"
    )
    assert len(hub.submissions()) == 1
    assert statuses_on(hub.stub, WANG, "2026-02-01") == [pb.STATUS_DIFFICULT_WORKER]


# -- bad command lines --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("--as-of", "2026-02-30"), "argument --as-of: '2026-02-30' is not a real calendar date"),
        (("--as-of", "2026/03/01"), "argument --as-of: expected a date as YYYY-MM-DD"),
        (("--agency", "hospital"), "argument --agency: unknown agency 'hospital' (known: "),
        (("--region", "41132"), "argument --region: '41132' is not a 6-digit region code"),
    ],
)
def test_bad_command_line_input_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: tuple[str, str], message: str
) -> None:
    path = write_csv(tmp_path / "roster.csv", CIVIL_AFFAIRS_ROWS)
    argv = submit(path, unused_address())
    argv[argv.index(change[0]) + 1] = change[1]
    with pytest.raises(SystemExit) as exited:  # argparse's way out
        main(argv)
    out, err = capsys.readouterr()
    assert (exited.value.code, out) == (2, "")
    assert err.startswith("usage: doudi roster submit")
    assert err.splitlines()[-1].startswith(f"doudi: error: {message}")


def test_a_missing_file_exits_2_without_calling_the_hub(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(submit(tmp_path / "missing.csv", unused_address()), capsys)
    assert (code, out) == (2, "")
    assert (
        err == f"doudi: error: cannot read {tmp_path / 'missing.csv'}: No such file or directory\n"
    )


# -- the report -------------------------------------------------------------------------------


def test_the_files_and_the_hubs_rejections_merge_by_line_with_identity_numbers_masked() -> None:
    merged = roster_client.merge_rejections(
        [LineError(7, "name", f"copied from {WANG}"), LineError(2, "status", "unknown")],
        [pb.RowRejection(line=4, field="person_id", reason=f"{LI} is on an earlier row")],
    )
    assert merged == (
        LineError(2, "status", "unknown"),
        LineError(4, "person_id", f"{mask(LI)} is on an earlier row"),
        LineError(7, "name", f"copied from {mask(WANG)}"),
    )


# -- the bureau's commands: refusals in words ---------------------------------------------


def test_the_bureaus_commands_say_in_words_what_the_services_answered(
    hub: Hub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "gap.csv"
    argv = ["roster", "export", "99", "--output", str(output), "--datashare", hub.address]
    code, out, err = run_cli(argv, capsys)
    assert (code, out) == (1, "")
    assert err == "doudi: error: comparison 99 does not exist\n"
    assert not output.exists()
    code, out, err = run_cli(
        ["roster", "compare", "--region", "999999", "--year", "2026", "--datashare", hub.address],
        capsys,
    )
    assert (code, out) == (1, "")
    assert err.startswith(
        f"doudi: error: the datashare hub at {hub.address} refused the request as invalid: "
    )
    assert "'999999' is not a pooling region" in err
    address = unused_address()
    code, out, err = run_cli(["roster", "enrol", "1", "--enrollment", address], capsys)
    assert (code, out) == (1, "")
    assert err == (
        f"doudi: error: the enrollment service at {address} could not be reached (is it "
        "running, and is that its address?)\n"
    )


# -- progress on a terminal, quiet when piped -------------------------------------------------


def many_rows(count: int) -> list[list[str]]:
    """``count`` dibao rows of distinct persons of Xixia."""
    rows = []
    for n in range(count):
        born = date(1940, 1, 1) + timedelta(days=n // 1000)
        person = with_check_digit(f"{XIXIA}{born:%Y%m%d}{n % 1000:03d}")
        rows.append([person, f"人{n}", f"H-{n}", "低保", "2024-01-01", "", f"R{n}"])
    return rows


def on_terminal(argv: list[str]) -> tuple[int, str, str]:
    """Run the real ``doudi`` with stderr on a pseudo-terminal and stdout on a pipe: its exit
    code, stdout, and what the terminal was sent."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # 120 columns
    try:
        with subprocess.Popen(
            [DOUDI, *argv], stdout=subprocess.PIPE, stderr=terminal, stdin=subprocess.DEVNULL
        ) as process:
            os.close(terminal)
            shown = bytearray()
            while True:
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # EIO: the command has closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
            assert process.stdout is not None
            out = process.stdout.read()
            code = process.wait(timeout=120)
    finally:
        os.close(controller)
    return code, out.decode(), shown.decode(errors="replace")


def piped(argv: list[str]) -> tuple[int, str, str]:
    done = subprocess.run(
        [DOUDI, *argv], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )
    return done.returncode, done.stdout, done.stderr


def test_long_work_shows_progress_on_a_terminal_and_nothing_when_piped(
    hub: Hub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = 2 * roster_client.ROWS_PER_MESSAGE + 5  # three batches
    path = write_csv(tmp_path / "roster.csv", many_rows(rows))
    argv = submit(path, hub.address, "--key", "demo-civil-affairs")
    code, out, shown = on_terminal(argv)
    assert code == 0, shown
    assert report_counts(out)["accepted"] == rows
    # A bar of the file's lines, header and all, drawn on the terminal.
    assert "roster.csv to the hub:" in shown
    assert "%|" in shown
    assert f"/{rows + 1} [" in shown
    assert "lines/s" in shown
    # Piped, the same command prints its report and nothing on stderr.
    code, out, err = piped(argv)
    assert (code, err) == (0, "")
    assert report_counts(out)["unchanged"] == rows

    code, out, err = run_cli(
        ["roster", "compare", "--region", XIXIA, "--year", "2026", "--datashare", hub.address],
        capsys,
    )
    assert code == 0, err
    comparison_id = out.split(":")[0].removeprefix("comparison ")
    output = tmp_path / "all.csv"
    export = ["roster", "export", comparison_id, "--output", output, "--datashare", hub.address]
    code, out, shown = on_terminal([str(word) for word in export])
    assert (code, out) == (0, f"{output}: {rows:,} persons of comparison {comparison_id}\n")
    assert "all.csv:" in shown
    assert "%|" in shown
    assert f"/{rows} [" in shown
    assert "persons/s" in shown
    code, out, err = piped([str(word) for word in export])
    assert (code, err) == (0, "")
    assert out == f"{output}: {rows:,} persons of comparison {comparison_id}\n"
    assert len(output.read_text("utf-8-sig").splitlines()) == rows + 1
