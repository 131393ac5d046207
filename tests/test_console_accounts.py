"""The web console's accounts at the datashare hub: creating, reading, disabling and
resetting them, logins with their lock-out, the audit of logins and of views of a person's
page, calls made for a console user (``doudi-console-user``), and ``doudi admin user``.

Each test starts ``python -m services.datashare`` as a real process on each backend
(locking an account after 3 failed logins, for a minute) and calls it as the platform
(the internal token), as the gateway's console does, and as the agencies (demo keys).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import select, update

from doudi.cli import demo
from doudi.common.db import create_engine_for, write_transaction
from doudi.common.protos import from_date
from doudi.datashare.v1 import datashare_pb2 as pb
from doudi.datashare.v1.datashare_pb2_grpc import DatashareServiceStub
from services.datashare.tables import console_users
from tests.services import INTERNAL, bearer, free_port, no_peers, running_service
from tests.support import run_cli, with_check_digit
from tests.test_datashare_service import assert_request, fields, refused
from tests.test_rosters import row, submit

XIXIA = "411323"
TIANJIN = "120000"
WANG = with_check_digit("41132319500315001")  # on the poverty office's roster
LI = with_check_digit("41132319820704002")  # a member of a warning of Xixia
ZHAO = with_check_digit("12010119800101005")  # a member of a warning of Tianjin
SUN = with_check_digit("41132319881111005")  # no one's
PERSONS = (WANG, LI, ZHAO, SUN)
PASSWORD = "correct horse battery"
WRONG = "wrong horse battery"
ATTEMPTS = 3
CONSOLE_USER = "doudi-console-user"

CASE_WORKER = pb.CONSOLE_ROLE_CASE_WORKER
CLERK = pb.CONSOLE_ROLE_AGENCY_CLERK


@dataclass
class Hub:
    stub: DatashareServiceStub
    database_url: str
    address: str


@pytest.fixture
def hub(tmp_path: Path, database_url: str) -> Iterator[Hub]:
    env = {
        **no_peers(),
        "DOUDI_CONSOLE_LOCKOUT_ATTEMPTS": str(ATTEMPTS),
        "DOUDI_CONSOLE_LOCKOUT_MINUTES": "1",
    }
    with running_service("datashare", tmp_path, database_url=database_url, env=env) as running:
        yield Hub(DatashareServiceStub(running.channel()), database_url, running.address)
    log = running.log()
    assert "listening" in log
    for secret in (PASSWORD, WRONG, *PERSONS):
        assert secret not in log, "the service logged a password or an identity number"


def create(
    hub: Hub,
    username: str,
    role: int = CASE_WORKER,
    agency: str = "",
    regions: tuple[str, ...] = (),
    password: str = PASSWORD,
    display_name: str = "王芳",
) -> pb.ConsoleUser:
    user: pb.ConsoleUser = hub.stub.CreateConsoleUser(
        pb.CreateConsoleUserRequest(
            username=username,
            display_name=display_name,
            role=role,  # type: ignore[arg-type]
            agency=agency,
            regions=regions,
            password=password,
        ),
        metadata=INTERNAL,
    ).user
    return user


def login(hub: Hub, username: str, password: str = PASSWORD) -> pb.ConsoleUser:
    user: pb.ConsoleUser = hub.stub.AuthenticateConsoleUser(
        pb.AuthenticateConsoleUserRequest(username=username, password=password),
        metadata=INTERNAL,
    ).user
    return user


def get(hub: Hub, username: str) -> pb.ConsoleUser:
    user: pb.ConsoleUser = hub.stub.GetConsoleUser(
        pb.GetConsoleUserRequest(username=username), metadata=INTERNAL
    ).user
    return user


def audit(hub: Hub, person: str = "") -> list[pb.AuditEvent]:
    return list(
        hub.stub.ListAuditEvents(
            pb.ListAuditEventsRequest(person_id=person, page_size=1000), metadata=INTERNAL
        ).events
    )


def logins(hub: Hub) -> list[tuple[str, str, str]]:
    """Every login audited: who, the outcome, why."""
    return [
        (event.caller, event.subject, event.purpose)
        for event in audit(hub)
        if event.method == "AuthenticateConsoleUser"
    ]


def stored_users(database_url: str) -> list[dict[str, Any]]:
    engine = create_engine_for(database_url)
    try:
        with engine.connect() as connection:
            return [row._asdict() for row in connection.execute(select(console_users))]
    finally:
        engine.dispose()


def as_console(user: str) -> tuple[tuple[str, str], ...]:
    """The gateway's metadata for a call made for a console user."""
    return (*INTERNAL, (CONSOLE_USER, user))


def view(hub: Hub, username: str, person: str, purpose: str = "核对救助资格") -> int:
    event_id: int = hub.stub.RecordPersonView(
        pb.RecordPersonViewRequest(username=username, person_id=person, purpose=purpose),
        metadata=INTERNAL,
    ).event_id
    return event_id


def record_warnings(hub: Hub) -> None:
    """A warning of Xixia (LI's household) and one of Tianjin (ZHAO's), as assistance
    sends them."""
    raised_at = datetime.now(UTC) - timedelta(days=2)
    warnings = []
    for warning_id, region, person, household in (
        (1, XIXIA, LI, "411323-0002"),
        (2, TIANJIN, ZHAO, "120000-0001"),
    ):
        warning = pb.Warning(
            warning_id=warning_id,
            version=1,
            kind=pb.WARNING_KIND_IMPOVERISHMENT,
            household_id=household,
            region=region,
            year=raised_at.year,
            burden_fen=2_000_000,
            threshold_fen=1_169_700,
            members=[
                pb.WarningMember(person_id=person, name="李桂兰", personal_burden_fen=2_000_000)
            ],
            raised_by="assistance",
            due_on=from_date((raised_at + timedelta(days=30)).date()),
            policy="xixia-2017",
        )
        warning.raised_at.FromDatetime(raised_at)
        warnings.append(warning)
    hub.stub.RecordWarnings(pb.RecordWarningsRequest(warnings=warnings), metadata=INTERNAL)


# -- the accounts -------------------------------------------------------------------------


def test_accounts_are_created_read_listed_disabled_and_reset(hub: Hub) -> None:
    before = datetime.now(UTC)
    staff = create(hub, "Wang.Fang", display_name=" 王芳 ")
    clerk = create(
        hub, "civil", CLERK, "civil_affairs", (XIXIA, TIANJIN, XIXIA), display_name="李梅"
    )

    assert (staff.username, staff.display_name, staff.role) == ("wang.fang", "王芳", CASE_WORKER)
    assert (staff.agency, list(staff.regions), staff.disabled) == ("", [], False)
    assert staff.created_at.ToDatetime(tzinfo=UTC) >= before.replace(microsecond=0)
    assert staff.password_changed_at == staff.created_at
    assert (staff.failed_logins, staff.HasField("locked_until")) == (0, False)
    assert (clerk.role, clerk.agency, list(clerk.regions)) == (
        CLERK,
        "civil_affairs",
        [TIANJIN, XIXIA],
    )
    assert get(hub, "WANG.FANG") == staff
    assert get(hub, "civil") == clerk
    # The hash is stored, never the password.
    stored = {row["username"]: row for row in stored_users(hub.database_url)}
    assert stored["civil"]["password_hash"].startswith("$argon2id$")
    assert all(PASSWORD not in str(row) for row in stored.values())

    # A page at a time, in username order.
    seen, token = [], ""
    while True:
        page = hub.stub.ListConsoleUsers(
            pb.ListConsoleUsersRequest(page_size=1, page_token=token), metadata=INTERNAL
        )
        seen += [user.username for user in page.users]
        token = page.next_page_token
        if not token:
            break
    assert seen == ["civil", "wang.fang"]

    disabled = hub.stub.DisableConsoleUser(
        pb.DisableConsoleUserRequest(username="civil"), metadata=INTERNAL
    ).user
    assert disabled.disabled
    again = hub.stub.DisableConsoleUser(
        pb.DisableConsoleUserRequest(username="civil"), metadata=INTERNAL
    ).user
    assert again == disabled

    reset = hub.stub.ResetConsolePassword(
        pb.ResetConsolePasswordRequest(username="civil", password="a new password 2"),
        metadata=INTERNAL,
    ).user
    assert reset.disabled, "a reset does not enable the account again"
    assert reset.password_changed_at.ToDatetime() > clerk.password_changed_at.ToDatetime()

    for call in (
        lambda: get(hub, "nobody"),
        lambda: hub.stub.DisableConsoleUser(
            pb.DisableConsoleUserRequest(username="nobody"), metadata=INTERNAL
        ),
        lambda: hub.stub.ResetConsolePassword(
            pb.ResetConsolePasswordRequest(username="nobody", password=PASSWORD),
            metadata=INTERNAL,
        ),
    ):
        error = refused(call)
        assert (error.code, error.reason, fields(error)) == (
            grpc.StatusCode.NOT_FOUND,
            "CONSOLE_USER_NOT_FOUND",
            ["username"],
        )


BAD_ACCOUNTS = [
    ({"username": "ab"}, "username"),
    ({"username": "a" * 33}, "username"),
    ({"username": "wang fang"}, "username"),
    ({"username": "王芳"}, "username"),
    ({"username": "wang\x00"}, "username"),
    ({"display_name": "  "}, "display_name"),
    ({"display_name": "王" * 65}, "display_name"),
    ({"display_name": "王\u200b芳"}, "display_name"),
    ({"role": 0}, "role"),
    ({"role": 99}, "role"),
    ({"agency": "civil_affairs"}, "agency"),  # staff have none
    ({"regions": [XIXIA]}, "regions"),  # nor regions
    ({"role": CLERK}, "agency"),  # a clerk has one
    ({"role": CLERK, "agency": "bureau"}, "agency"),
    ({"role": CLERK, "agency": "civil_affairs", "regions": ["4113"]}, "regions[0]"),
    ({"role": CLERK, "agency": "civil_affairs", "regions": [XIXIA, "999999"]}, "regions[1]"),
    ({"password": "eleven char"}, "password"),
    ({"password": "x" * 257}, "password"),
]


def test_bad_input_is_refused_naming_the_field_and_stores_nothing(hub: Hub) -> None:
    good: dict[str, Any] = {
        "username": "wang",
        "display_name": "王芳",
        "role": CASE_WORKER,
        "agency": "",
        "regions": [],
        "password": PASSWORD,
    }
    for bad, field in BAD_ACCOUNTS:
        request = pb.CreateConsoleUserRequest(**{**good, **bad})
        error = refused(lambda r=request: hub.stub.CreateConsoleUser(r, metadata=INTERNAL))
        assert (error.code, fields(error)) == (grpc.StatusCode.INVALID_ARGUMENT, [field]), bad
    assert stored_users(hub.database_url) == []

    create(hub, "wang")
    error = refused(
        lambda: hub.stub.ResetConsolePassword(
            pb.ResetConsolePasswordRequest(username="wang", password="short"), metadata=INTERNAL
        )
    )
    assert (error.code, fields(error)) == (grpc.StatusCode.INVALID_ARGUMENT, ["password"])
    for purpose in ("", " ", "为" * 201):
        error = refused(lambda p=purpose: view(hub, "wang", WANG, p))  # type: ignore[misc]
        assert (error.code, fields(error)) == (grpc.StatusCode.INVALID_ARGUMENT, ["purpose"])
    error = refused(lambda: view(hub, "wang", WANG[:-1] + "X"))
    assert (error.code, fields(error)) == (grpc.StatusCode.INVALID_ARGUMENT, ["person_id"])
    assert [user["username"] for user in stored_users(hub.database_url)] == ["wang"]
    assert audit(hub) == []


def test_a_taken_username_is_already_exists_and_changes_nothing(hub: Hub) -> None:
    first = create(hub, "wang")
    error = refused(lambda: create(hub, "WANG", pb.CONSOLE_ROLE_ADMINISTRATOR, password=WRONG))
    assert (error.code, fields(error)) == (grpc.StatusCode.ALREADY_EXISTS, ["username"])
    assert get(hub, "wang") == first
    assert login(hub, "wang").role == CASE_WORKER


def test_only_the_platform_manages_accounts(hub: Hub) -> None:
    create(hub, "civil", CLERK, "civil_affairs")
    calls: list[tuple[str, Any]] = [
        ("CreateConsoleUser", pb.CreateConsoleUserRequest(username="x")),
        ("GetConsoleUser", pb.GetConsoleUserRequest(username="civil")),
        ("ListConsoleUsers", pb.ListConsoleUsersRequest()),
        ("DisableConsoleUser", pb.DisableConsoleUserRequest(username="civil")),
        ("ResetConsolePassword", pb.ResetConsolePasswordRequest(username="civil")),
        ("AuthenticateConsoleUser", pb.AuthenticateConsoleUserRequest(username="civil")),
        ("RecordPersonView", pb.RecordPersonViewRequest(username="civil", person_id=WANG)),
    ]
    for method, request in calls:
        for metadata in (bearer(demo.CIVIL_AFFAIRS_KEY), as_console("civil")):
            error = refused(
                lambda m=method, r=request, md=metadata: getattr(hub.stub, m)(r, metadata=md)
            )
            assert error.code == grpc.StatusCode.PERMISSION_DENIED, (method, metadata)
    assert not get(hub, "civil").disabled


# -- logins -------------------------------------------------------------------------------


def test_a_login_answers_the_account_and_every_refusal_is_the_same(hub: Hub) -> None:
    create(hub, "wang")
    create(hub, "gone")
    hub.stub.DisableConsoleUser(pb.DisableConsoleUserRequest(username="gone"), metadata=INTERNAL)

    user = login(hub, " Wang ")
    assert (user.username, user.failed_logins) == ("wang", 0)

    answers = [
        refused(lambda u=username, p=password: login(hub, u, p))  # type: ignore[misc]
        for username, password in (
            ("wang", WRONG),  # a wrong password
            ("nobody", PASSWORD),  # an unknown user
            ("gone", PASSWORD),  # a disabled account, the right password
            ("not a name!", PASSWORD),
        )
    ]
    assert {(a.code, a.reason, a.message) for a in answers} == {
        (grpc.StatusCode.UNAUTHENTICATED, "BAD_CREDENTIALS", "wrong username or password")
    }
    assert get(hub, "wang").failed_logins == 1
    assert get(hub, "gone").failed_logins == 0
    assert logins(hub) == [
        ("console:wang", "success", "console login"),
        ("console:wang", "failure", "console login"),
        ("console:nobody", "failure", "console login"),
        ("console:gone", "failure", "console login"),
        ("console:?", "failure", "console login"),
    ]
    # A success clears the count.
    login(hub, "wang")
    assert get(hub, "wang").failed_logins == 0


def test_failed_logins_lock_the_account_until_a_reset(hub: Hub) -> None:
    create(hub, "wang")
    for attempt in range(1, ATTEMPTS + 1):
        error = refused(lambda: login(hub, "wang", WRONG))
        assert error.reason == "BAD_CREDENTIALS"
        assert get(hub, "wang").failed_logins == attempt
    locked = get(hub, "wang")
    until = locked.locked_until.ToDatetime(tzinfo=UTC)
    assert timedelta(seconds=50) < until - datetime.now(UTC) <= timedelta(minutes=1)

    # Locked: the right password too is refused; attempts neither count nor extend the lock.
    for password in (PASSWORD, WRONG, PASSWORD):
        error = refused(lambda p=password: login(hub, "wang", p))  # type: ignore[misc]
        assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "LOCKED")
        assert datetime.fromisoformat(error.metadata["locked_until"]) == until
    assert get(hub, "wang") == locked
    assert [subject for _, subject, _ in logins(hub)] == ["failure"] * ATTEMPTS + ["locked"] * 3

    # An administrator's reset unlocks it.
    reset = hub.stub.ResetConsolePassword(
        pb.ResetConsolePasswordRequest(username="wang", password=PASSWORD), metadata=INTERNAL
    ).user
    assert (reset.failed_logins, reset.HasField("locked_until")) == (0, False)
    assert login(hub, "wang").failed_logins == 0

    # A lock that ran out: the right password signs in; a failure counts from 1 again.
    for _ in range(ATTEMPTS):
        refused(lambda: login(hub, "wang", WRONG))
    assert get(hub, "wang").HasField("locked_until")
    engine = create_engine_for(hub.database_url)
    try:
        with write_transaction(engine) as connection:
            connection.execute(
                update(console_users).values(locked_until=datetime.now(UTC) - timedelta(seconds=1))
            )
    finally:
        engine.dispose()
    assert not get(hub, "wang").HasField("locked_until")
    refused(lambda: login(hub, "wang", WRONG))
    assert get(hub, "wang").failed_logins == 1
    assert login(hub, "wang").failed_logins == 0


def test_concurrent_failures_each_count_once(hub: Hub) -> None:
    """Eight wrong passwords at once: exactly ATTEMPTS of them count (and lock the
    account); the others find it locked. A count read and written back in Python would
    lose some and let more through."""
    create(hub, "wang")
    start = threading.Barrier(8)

    def attempt(_: int) -> str:
        start.wait()
        return refused(lambda: login(hub, "wang", WRONG)).reason

    with ThreadPoolExecutor(8) as pool:
        reasons = sorted(pool.map(attempt, range(8)))
    assert reasons == ["BAD_CREDENTIALS"] * ATTEMPTS + ["LOCKED"] * (8 - ATTEMPTS)
    user = get(hub, "wang")
    assert (user.failed_logins, user.HasField("locked_until")) == (ATTEMPTS, True)
    assert sorted(subject for _, subject, _ in logins(hub)) == ["failure"] * ATTEMPTS + [
        "locked"
    ] * (8 - ATTEMPTS)


# -- views of a person's page -------------------------------------------------------------


def test_views_of_a_persons_page_are_audited_and_a_clerk_sees_only_its_agencys(
    hub: Hub,
) -> None:
    create(hub, "wang")
    create(hub, "poverty", CLERK, "poverty_office", (XIXIA,))
    create(hub, "civil", CLERK, "civil_affairs", (XIXIA,))
    create(hub, "tianjin", CLERK, "civil_affairs", (TIANJIN,))
    create(hub, "union", CLERK, "trade_union", (XIXIA,))  # warnings are not its business
    create(hub, "gone")
    hub.stub.DisableConsoleUser(pb.DisableConsoleUserRequest(username="gone"), metadata=INTERNAL)
    submit(hub.stub, [row(2, WANG)])  # the poverty office's roster of Xixia
    record_warnings(hub)
    before = datetime.now(UTC).replace(microsecond=0)

    # Staff may view anyone; a clerk the agency's persons: its statuses and roster, the
    # members of a warning of a region it serves.
    allowed = [("wang", SUN), ("poverty", WANG), ("civil", LI), ("poverty", LI), ("tianjin", ZHAO)]
    for username, person in allowed:
        assert view(hub, username, person) > 0
    denied = [("civil", WANG), ("tianjin", LI), ("union", LI), ("civil", SUN)]
    for username, person in denied:
        error = refused(lambda u=username, p=person: view(hub, u, p))  # type: ignore[misc]
        assert (error.code, fields(error)) == (grpc.StatusCode.PERMISSION_DENIED, ["person_id"])
    for username in ("gone", "nobody"):
        error = refused(lambda u=username: view(hub, u, SUN))  # type: ignore[misc]
        assert (error.code, fields(error)) == (grpc.StatusCode.PERMISSION_DENIED, ["username"])
    # A civil-affairs status makes the person civil affairs' business: for a clerk of some
    # regions only, once the register places the person in one of them (another county's
    # civil affairs asserts statuses too).
    hub.stub.AssertStatus(
        assert_request(person=SUN, status=pb.STATUS_DIBAO, reference="MZ-1"),
        metadata=bearer(demo.CIVIL_AFFAIRS_KEY),
    )
    error = refused(lambda: view(hub, "tianjin", SUN, "低保复核"))
    assert (error.code, fields(error)) == (grpc.StatusCode.PERMISSION_DENIED, ["person_id"])
    hub.stub.RecordRegister(
        pb.RecordRegisterRequest(
            persons=[
                pb.RegisteredPerson(
                    person_id=SUN, version=2, name="孙德福", region=TIANJIN, years=[2026]
                )
            ]
        ),
        metadata=INTERNAL,
    )
    view(hub, "tianjin", SUN, "低保复核")

    # Who viewed whom, when and why, refusals included: ListAuditEvents by person.
    trail = [
        (event.caller, event.subject, event.purpose)
        for event in audit(hub, SUN)
        if event.method == "ConsolePersonView"
    ]
    assert trail == [
        ("console:wang", "", "核对救助资格"),
        ("console:civil", "refused", "核对救助资格"),
        ("console:gone", "refused", "核对救助资格"),
        ("console:tianjin", "refused", "低保复核"),
        ("console:tianjin", "", "低保复核"),
    ]
    events = [event for event in audit(hub, WANG) if event.method == "ConsolePersonView"]
    assert [(e.caller, e.person_id, e.subject) for e in events] == [
        ("console:poverty", WANG, ""),
        ("console:civil", WANG, "refused"),
    ]
    assert all(e.event_time.ToDatetime(tzinfo=UTC) >= before for e in events)


# -- calls made for a console user --------------------------------------------------------


def test_a_clerks_calls_are_the_agencys_within_its_regions_and_audited_with_its_name(
    hub: Hub,
) -> None:
    create(hub, "wang")
    create(hub, "civil", CLERK, "civil_affairs", (XIXIA,))
    create(hub, "everywhere", CLERK, "civil_affairs")
    create(hub, "union", CLERK, "trade_union")
    create(hub, "gone", CLERK, "civil_affairs")
    hub.stub.DisableConsoleUser(pb.DisableConsoleUserRequest(username="gone"), metadata=INTERNAL)
    record_warnings(hub)

    def listed(metadata: Any, region: str = "") -> list[int]:
        answer = hub.stub.ListWarnings(
            pb.ListWarningsRequest(region=region, purpose="双预警核查"), metadata=metadata
        )
        return [warning.warning_id for warning in answer.warnings]

    assert listed(as_console("civil")) == [1]  # Xixia's only, as a key of Xixia
    assert listed(as_console("everywhere")) == [2, 1]  # no regions: every region
    assert listed(as_console("wang")) == [2, 1]  # staff: the platform
    assert listed(INTERNAL) == [2, 1]
    error = refused(lambda: listed(as_console("civil"), TIANJIN))
    assert (error.code, fields(error)) == (grpc.StatusCode.PERMISSION_DENIED, ["region"])
    error = refused(
        lambda: hub.stub.GetWarning(
            pb.GetWarningRequest(warning_id=2, purpose="核查"), metadata=as_console("civil")
        )
    )
    assert error.code == grpc.StatusCode.NOT_FOUND
    # The agency's limits: the trade union gets no warnings, a purpose is required.
    assert refused(lambda: listed(as_console("union"))).code == grpc.StatusCode.PERMISSION_DENIED
    error = refused(
        lambda: hub.stub.ListWarnings(pb.ListWarningsRequest(), metadata=as_console("civil"))
    )
    assert (error.code, fields(error)) == (grpc.StatusCode.INVALID_ARGUMENT, ["purpose"])
    # An unknown or disabled account, or one named by an agency, is refused.
    for metadata in (
        as_console("gone"),
        as_console("nobody"),
        (*bearer(demo.CIVIL_AFFAIRS_KEY), (CONSOLE_USER, "civil")),
    ):
        assert refused(lambda m=metadata: listed(m)).code == grpc.StatusCode.PERMISSION_DENIED
    # A clerk may not call the platform's methods, nor record statuses, through the console.
    error = refused(lambda: audit_as(hub, as_console("civil")))
    assert (error.code, fields(error)) == (grpc.StatusCode.PERMISSION_DENIED, [CONSOLE_USER])
    error = refused(
        lambda: hub.stub.AssertStatus(
            assert_request(person=LI, status=pb.STATUS_DIBAO),
            metadata=(*as_console("civil"), ("doudi-acting-for", "civil_affairs")),
        )
    )
    assert error.code == grpc.StatusCode.PERMISSION_DENIED
    assert len(audit_as(hub, as_console("wang"))) > 0  # staff: the platform

    # The clerk decides as the agency; the decision is the agency's, as with its key.
    decided = hub.stub.DecideWarning(
        pb.DecideWarningRequest(
            warning_id=1, dismiss=pb.WarningDismissal(reason="已享受低保，无需认定")
        ),
        metadata=as_console("civil"),
    ).warning
    assert decided.decision.decided_by == pb.AGENCY_CIVIL_AFFAIRS
    assert decided.decision.state == pb.WARNING_STATE_DISMISSED
    # Its statuses only, as the agency's key reads them.
    hub.stub.AssertStatus(
        assert_request(person=LI, status=pb.STATUS_REGISTERED_POOR),
        metadata=bearer(demo.POVERTY_OFFICE_KEY),
    )
    periods = hub.stub.GetPersonStatuses(
        pb.GetPersonStatusesRequest(person_id=LI, purpose="核对身份"),
        metadata=as_console("civil"),
    ).periods
    assert list(periods) == []

    # Audited as the agency's reads, the purpose naming the console user.
    trail = [
        (event.caller, event.method, event.purpose)
        for event in audit(hub, LI)
        if event.method != "AssertStatus"
    ]
    assert trail == [
        ("civil_affairs", "ListWarnings", "console civil: 双预警核查"),
        ("civil_affairs", "ListWarnings", "console everywhere: 双预警核查"),
        ("civil_affairs", "DecideWarning", "console civil: deciding a warning"),
        ("civil_affairs", "GetPersonStatuses", "console civil: 核对身份"),
    ]
    # The purpose and the prefix fit the audit's 200 characters together.
    error = refused(
        lambda: hub.stub.GetPersonStatuses(
            pb.GetPersonStatusesRequest(person_id=LI, purpose="为" * 195),
            metadata=as_console("civil"),
        )
    )
    assert (error.code, fields(error)) == (grpc.StatusCode.INVALID_ARGUMENT, ["purpose"])


def audit_as(hub: Hub, metadata: Any) -> list[pb.AuditEvent]:
    return list(hub.stub.ListAuditEvents(pb.ListAuditEventsRequest(), metadata=metadata).events)


# -- doudi admin user ---------------------------------------------------------------------


def admin(
    hub: Hub,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    *words: str,
    stdin: str = "",
) -> tuple[int, str, str]:
    """``doudi admin user ...`` in this process, against the hub; ``stdin`` is not a
    terminal (one line: the password)."""
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    try:
        return run_cli(["admin", "user", *words, "--datashare", hub.address], capsys)
    except SystemExit as exited:  # argparse's own refusal
        captured = capsys.readouterr()
        return int(exited.code or 0), captured.out, captured.err


def test_admin_user_adds_lists_resets_and_disables(
    hub: Hub, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = admin(
        hub, capsys, monkeypatch, "add", "wang", "--role", "case_worker", "--name", "王芳",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert "wang" in out
    assert login(hub, "wang").display_name == "王芳"

    code, out, err = admin(
        hub, capsys, monkeypatch, "add", "civil", "--role", "agency_clerk", "--name", "李梅",
        "--agency", "civil_affairs", "--region", XIXIA, "--generate",
    )  # fmt: skip
    assert (code, err) == (0, "")
    [generated] = [line.split()[-1] for line in out.splitlines() if "password" in line]
    assert len(generated) >= 16
    assert login(hub, "civil", generated).agency == "civil_affairs"

    for _ in range(ATTEMPTS):
        refused(lambda: login(hub, "wang", WRONG))
    code, out, err = admin(hub, capsys, monkeypatch, "list")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    [wang] = [line for line in lines if line.startswith("wang")]
    [civil] = [line for line in lines if line.startswith("civil")]
    assert wang.split()[:3] == ["wang", "王芳", "case_worker"]
    assert civil.split()[:5] == ["civil", "李梅", "agency_clerk", "civil_affairs", XIXIA]
    # Locked until, in Asia/Shanghai; never a hash or a password.
    assert "+08:00" in wang or "(Asia/Shanghai)" in out
    assert not any(secret in out for secret in ("argon2", generated, PASSWORD))

    code, out, err = admin(hub, capsys, monkeypatch, "reset", "wang", stdin="a new password 3\n")
    assert (code, err) == (0, "")
    assert login(hub, "wang", "a new password 3").failed_logins == 0

    code, out, err = admin(hub, capsys, monkeypatch, "disable", "civil")
    assert (code, err) == (0, "")
    assert get(hub, "civil").disabled
    assert refused(lambda: login(hub, "civil", generated)).reason == "BAD_CREDENTIALS"


def test_admin_user_refuses_bad_input_with_2_and_a_refusal_with_1(
    hub: Hub, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    create(hub, "wang")
    bad: list[tuple[list[str], str, str]] = [
        (["add", "lili", "--role", "boss", "--name", "李"], PASSWORD, "--role"),  # argparse
        (["add", "lili", "--role", "analyst"], PASSWORD, "--name"),
        (["add", "lili", "--role", "analyst", "--name", "李", "--region", "41"], PASSWORD, "41"),
        (["add", "li", "--role", "analyst", "--name", "李"], PASSWORD, "username"),  # the hub
        (["add", "lili", "--role", "analyst", "--name", "李"], "short\n", "password"),
        (["add", "lili", "--role", "agency_clerk", "--name", "李"], PASSWORD, "agency"),
        (
            ["add", "lili", "--role", "analyst", "--name", "李", "--agency", "trade_union"],
            PASSWORD,
            "agency",
        ),
        (["add", "lili", "--role", "analyst", "--name", "李"], "", "standard input"),
        (["reset", "wang"], "short\n", "password"),
    ]
    for words, stdin, named in bad:
        code, out, err = admin(hub, capsys, monkeypatch, *words, stdin=stdin)
        assert (code, out) == (2, ""), (words, err)
        assert "error" in err, (words, err)
        assert named in err, (words, err)
    assert [user.username for user in listed_users(hub)] == ["wang"]

    for words in (["add", "WANG", "--role", "analyst", "--name", "王"], ["disable", "nobody"]):
        code, out, err = admin(hub, capsys, monkeypatch, *words, stdin=PASSWORD + "\n")
        assert (code, out) == (1, ""), (words, err)
    # The hub unreachable.
    code, out, err = run_cli(
        ["admin", "user", "list", "--datashare", f"127.0.0.1:{free_port()}"], capsys
    )
    assert (code, out) == (1, "")
    assert "could not be reached" in err


def listed_users(hub: Hub) -> list[pb.ConsoleUser]:
    return list(hub.stub.ListConsoleUsers(pb.ListConsoleUsersRequest(), metadata=INTERNAL).users)


def test_admin_user_answers_help(capsys: pytest.CaptureFixture[str]) -> None:
    for words in (["admin"], ["admin", "user"], ["admin", "user", "add"]):
        with pytest.raises(SystemExit) as exited:
            run_cli([*words, "--help"], capsys)
        assert exited.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: doudi {' '.join(words)} ")


def test_the_demo_accounts_have_a_password_each_long_enough() -> None:
    assert set(demo.DEMO_CONSOLE_USERS) >= {
        "caseworker",
        "analyst",
        "supervisor",
        "admin",
        "civil",
        "poverty",
    }
    for username, account in demo.DEMO_CONSOLE_USERS.items():
        assert account.password == f"demo-{username}-pass"
        assert len(account.password) >= 12
        assert (account.agency is not None) == (account.role == "agency_clerk")


def test_the_demo_accounts_load_once_and_again(hub: Hub) -> None:
    channel = grpc.insecure_channel(hub.address)
    try:
        token = INTERNAL[0][1].removeprefix("Bearer ")
        demo.load_console_users(datashare=channel, internal_token=token)
        demo.load_console_users(datashare=channel, internal_token=token)  # idempotent
    finally:
        channel.close()
    assert [user.username for user in listed_users(hub)] == sorted(demo.DEMO_CONSOLE_USERS)
    for username, account in demo.DEMO_CONSOLE_USERS.items():
        user = login(hub, username, account.password)
        assert (user.display_name, user.agency or None, tuple(user.regions)) == (
            account.display_name,
            account.agency,
            account.regions,
        )
