"""The web console's accounts (``/console``): the bureau's staff and the agencies' clerks.

Plain functions on a database connection, as in ``service.py``; ``server.py`` runs them
through :func:`doudi.common.db.read_in_thread` / :func:`~doudi.common.db.write_in_thread`.
A password is kept only as its argon2id hash (argon2-cffi's ``PasswordHasher`` with its
default parameters). Hashing and verifying take a tenth of a second of CPU each, so the
servicer runs them in a worker thread outside any transaction (:func:`hash_password`,
:func:`verify`) and hands the handlers the hash, or whether it matched.

Logins: :func:`record_login` counts a failure in SQL (``failed_logins + 1`` in the
``UPDATE``, never read in Python and written back), so that concurrent attempts each
count; the failure that reaches ``attempts`` locks the account until ``now +
lock_for``; while it is locked nothing changes the count or the lock, and a success
clears both. Every attempt is audited in ``audit_events`` (caller
``console:<username>``, method ``AuthenticateConsoleUser``, the outcome as the subject).

A console user's view of a person's page is audited too (:func:`record_person_view`):
an agency clerk may view only the agency's own persons (:func:`within_agency_data`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import and_, case, insert, literal, null, or_, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError

from doudi.common import paging
from doudi.common.errors import AlreadyExists, NotFound
from doudi.core.errors import InvalidInput
from doudi.core.identity import read_resident_id
from doudi.core.names import check_visible
from doudi.core.statuses import AGENCIES
from services.datashare import service
from services.datashare.rosters import CURRENT
from services.datashare.tables import (
    audit_events,
    console_users,
    register_persons,
    roster_rows,
    roster_submissions,
    status_assertions,
    warnings,
)
from services.datashare.warnings import RECEIVERS

AGENCY_CLERK: Final = "agency_clerk"
ROLES: Final = ("case_worker", "analyst", "supervisor", "administrator", AGENCY_CLERK)
"""The console's roles: the bureau's staff, and the agencies' clerks."""
USERNAME: Final = re.compile(r"[a-z0-9._-]{3,32}")
REGION: Final = re.compile(r"[0-9]{6}")
MIN_PASSWORD_LENGTH: Final = 12
MAX_PASSWORD_LENGTH: Final = 256
MAX_DISPLAY_NAME_LENGTH: Final = 64

LOGIN_METHOD: Final = "AuthenticateConsoleUser"
LOGIN_PURPOSE: Final = "console login"
VIEW_METHOD: Final = "ConsolePersonView"
SUCCESS: Final = "success"
FAILURE: Final = "failure"
LOCKED: Final = "locked"
REFUSED: Final = "refused"

_HASHER: Final = PasswordHasher()


# --- passwords (no database: the servicer runs these in a worker thread) ---------------


def hash_password(password: str) -> str:
    """The password's argon2id hash (salted: never the same twice)."""
    return _HASHER.hash(password)


def verify(password_hash: str, password: str) -> bool:
    """Whether ``password`` is the one hashed; a hash that is not argon2's matches nothing."""
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with other parameters than the hasher's now."""
    try:
        return _HASHER.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


# --- values ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    """An account as stored, without its password hash."""

    username: str
    display_name: str
    role: str
    agency: str | None  # an agency clerk's; None for staff
    regions: tuple[str, ...]  # an agency clerk's; () for every region (and staff)
    disabled: bool
    created_at: datetime
    password_changed_at: datetime
    failed_logins: int
    locked_until: datetime | None  # as stored: may have run out

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now

    def lock_in_force(self, now: datetime) -> datetime | None:
        """Until when the account is locked, or None when it is not (any more)."""
        return self.locked_until if self.locked(now) else None

    @property
    def served_regions(self) -> frozenset[str] | None:
        """The regions a clerk serves, as an agency key's (None: every region)."""
        return frozenset(self.regions) if self.regions else None


@dataclass(frozen=True, slots=True)
class NewAccount:
    """An account to create, checked (:func:`checked_account`)."""

    username: str
    display_name: str
    role: str
    agency: str | None
    regions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Stored:
    """An account with its password hash, for a login."""

    user: ConsoleUser
    password_hash: str


@dataclass(frozen=True, slots=True)
class Login:
    """What a login attempt came to: ``success`` (the account), ``failure`` (a wrong
    password, an unknown username, a disabled account) or ``locked`` (the account, with
    its lock)."""

    outcome: str
    user: ConsoleUser | None


@dataclass(frozen=True, slots=True)
class View:
    """A view of a person's page recorded: the audit event, and why it was refused if it
    was (None: allowed)."""

    event_id: int  # 0: none recorded
    refused: str | None
    field: str = ""  # the field to blame for a refusal


def username_of(value: str, field: str = "username") -> str:
    """The username in lower case, or InvalidInput on ``field``."""
    name = value.strip().lower()
    if not USERNAME.fullmatch(name):
        raise InvalidInput(field, "a username is 3 to 32 characters of a-z, 0-9, '.', '_' and '-'")
    return name


def known_username(value: str) -> str | None:
    """The username if it is well formed (it may name an account), else None."""
    name = value.strip().lower()
    return name if USERNAME.fullmatch(name) else None


def check_password(password: str, field: str = "password") -> str:
    """The password if its length is allowed (12 to 256 characters), else InvalidInput
    (which says nothing of the password but its length)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(field, f"at least {MIN_PASSWORD_LENGTH} characters, got {len(password)}")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(field, f"at most {MAX_PASSWORD_LENGTH} characters, got {len(password)}")
    return password


def checked_account(
    *,
    username: str,
    display_name: str,
    role: str,
    agency: str,
    regions: list[str],
    password: str,
    known_regions: frozenset[str],
) -> NewAccount:
    """An account to create, every field checked (InvalidInput on the first bad one):
    an agency clerk names an agency and may name regions among ``known_regions`` (those
    of the hub's packs); staff name neither."""
    name = username_of(username)
    shown = display_name.strip()
    if not shown:
        raise InvalidInput("display_name", "required: the name shown")
    if len(shown) > MAX_DISPLAY_NAME_LENGTH:
        raise InvalidInput(
            "display_name", f"at most {MAX_DISPLAY_NAME_LENGTH} characters, got {len(shown)}"
        )
    check_visible(shown, "display_name")
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")  # the servicer reads the enum
    code = agency.strip()
    if role == AGENCY_CLERK:
        if not code:
            raise InvalidInput("agency", "required: an agency clerk's agency")
        if code not in AGENCIES:
            raise InvalidInput("agency", f"unknown agency (one of {', '.join(sorted(AGENCIES))})")
        served = served_regions(regions, known_regions)
    else:
        if code:
            raise InvalidInput("agency", f"only an agency clerk has an agency, not a {role}")
        if regions:
            raise InvalidInput("regions", f"only an agency clerk serves regions, not a {role}")
        served = ()
    check_password(password)
    return NewAccount(name, shown, role, code or None, served)


def served_regions(regions: list[str], known: frozenset[str]) -> tuple[str, ...]:
    """Pooling regions given by a caller, checked against those the hub has a pack of."""
    for index, region in enumerate(regions):
        if not REGION.fullmatch(region):
            raise InvalidInput(f"regions[{index}]", "a 6-digit pooling region code")
        if region not in known:
            raise InvalidInput(
                f"regions[{index}]",
                f"{region} is not a pooling region with a policy pack "
                f"(known: {', '.join(sorted(known))})",
            )
    return tuple(sorted(set(regions)))


def checked_purpose(purpose: str) -> str:
    """Why a console user views a person's page: required, short, and all visible."""
    why = service.checked_purpose(purpose, "required: why the person's page is viewed")
    check_visible(why, "purpose")
    return why


# --- the accounts -----------------------------------------------------------------------


def create(
    *, connection: sqlalchemy.Connection, account: NewAccount, password_hash: str, now: datetime
) -> ConsoleUser:
    """Store the account; ALREADY_EXISTS when its username is taken (nothing changes)."""
    values: dict[str, Any] = {
        "username": account.username,
        "display_name": account.display_name,
        "role": account.role,
        "agency": account.agency,
        "regions": " ".join(account.regions),
        "password_hash": password_hash,
        "disabled": False,
        "failed_logins": 0,
        "locked_until": None,
        "created_at": now,
        "password_changed_at": now,
    }
    taken = AlreadyExists(
        f"a console user {account.username!r} exists already",
        reason="CONSOLE_USER_EXISTS",
        field="username",
    )
    if find(connection=connection, username=account.username) is not None:
        raise taken
    try:
        with connection.begin_nested():
            connection.execute(insert(console_users).values(**values))
    except IntegrityError:  # created meanwhile by another request (PostgreSQL)
        raise taken from None
    return _user(values)


def get(*, connection: sqlalchemy.Connection, username: str) -> ConsoleUser:
    """The account; NOT_FOUND when there is none."""
    found = find(connection=connection, username=username_of(username))
    if found is None:
        raise _not_found(username)
    return found


def find(*, connection: sqlalchemy.Connection, username: str) -> ConsoleUser | None:
    """The account ``username`` (checked) names, if any."""
    stored = find_stored(connection=connection, username=username)
    return None if stored is None else stored.user


def find_stored(*, connection: sqlalchemy.Connection, username: str) -> Stored | None:
    """The account with its hash, if ``username`` (checked) names one."""
    row = connection.execute(
        select(console_users).where(console_users.c.username == username)
    ).one_or_none()
    return None if row is None else Stored(_user(row._asdict()), row.password_hash)


def list_users(
    *, connection: sqlalchemy.Connection, page_size: int, page_token: str
) -> tuple[list[ConsoleUser], str]:
    """A page of the accounts in username order."""
    rows, token = paging.keyset_page(
        connection, select(console_users), console_users.c.username, page_size, page_token
    )
    return [_user(row._asdict()) for row in rows], token


def disable(*, connection: sqlalchemy.Connection, username: str) -> ConsoleUser:
    """Disable the account (again: no change); NOT_FOUND when there is none."""
    return _change(connection, username, disabled=True)


def reset_password(
    *, connection: sqlalchemy.Connection, username: str, password_hash: str, now: datetime
) -> ConsoleUser:
    """A new password, and no failed logins nor lock; a disabled account stays disabled."""
    return _change(
        connection,
        username,
        password_hash=password_hash,
        password_changed_at=now,
        failed_logins=0,
        locked_until=None,
    )


def _change(connection: sqlalchemy.Connection, username: str, **values: Any) -> ConsoleUser:
    row = connection.execute(
        update(console_users)
        .where(console_users.c.username == username_of(username))
        .values(**values)
        .returning(*console_users.c)
    ).one_or_none()
    if row is None:
        raise _not_found(username)
    return _user(row._asdict())


def _not_found(username: str) -> NotFound:
    return NotFound(
        f"no console user {username.strip().lower()!r}",
        reason="CONSOLE_USER_NOT_FOUND",
        field="username",
    )


def _user(values: dict[str, Any]) -> ConsoleUser:
    locked_until = values["locked_until"]
    return ConsoleUser(
        username=values["username"],
        display_name=values["display_name"],
        role=values["role"],
        agency=values["agency"],
        regions=tuple(values["regions"].split()),
        disabled=bool(values["disabled"]),
        created_at=service.utc(values["created_at"]),
        password_changed_at=service.utc(values["password_changed_at"]),
        failed_logins=int(values["failed_logins"]),
        locked_until=None if locked_until is None else service.utc(locked_until),
    )


# --- logins -----------------------------------------------------------------------------


def record_login(
    *,
    connection: sqlalchemy.Connection,
    given: str,
    stored: Stored | None,
    matched: bool | None,
    rehashed: str | None,
    now: datetime,
    attempts: int,
    lock_for: timedelta,
) -> Login:
    """Record a login attempt on the account ``stored`` (as read before the password was
    verified; None: no such account) under the username ``given``: ``matched`` says
    whether the password matched its hash (None: not verified, the account being locked);
    ``rehashed`` is the password hashed anew when the stored hash's parameters are
    outdated. Answers the outcome, audited in this transaction."""
    outcome, user = FAILURE, None
    if stored is not None and not stored.user.disabled:
        name = stored.user.username
        if matched is None:
            outcome, user = LOCKED, stored.user
        else:
            open_ = _not_locked(now)
            c = console_users.c
            if matched:
                cleared: dict[str, Any] = {"failed_logins": 0, "locked_until": None}
                if rehashed is not None:
                    cleared["password_hash"] = rehashed
                # Only if the password checked is still the account's.
                changed = _update_returning(
                    connection,
                    update(console_users)
                    .where(c.username == name, c.disabled.is_(False), open_)
                    .where(c.password_hash == stored.password_hash)
                    .values(**cleared),
                )
                outcome = SUCCESS
            else:
                changed = _update_returning(
                    connection,
                    update(console_users)
                    .where(c.username == name, c.disabled.is_(False), open_)
                    .values(**_failure(now, attempts, now + lock_for)),
                )
            if changed is None:  # changed meanwhile: locked, disabled, its password reset
                again = find(connection=connection, username=name)
                locked = again is not None and not again.disabled and again.locked(now)
                outcome, user = (LOCKED, again) if locked else (FAILURE, None)
            elif outcome == SUCCESS:
                user = changed
    _audit_login(connection, given, outcome, now)
    return Login(outcome, user)


def _not_locked(now: datetime) -> sqlalchemy.ColumnElement[bool]:
    c = console_users.c
    return or_(c.locked_until.is_(None), c.locked_until <= _moment(now))


def _failure(now: datetime, attempts: int, until: datetime) -> dict[str, Any]:
    """One more failure, counted in SQL from the row as it is when written (each of
    concurrent failures counts): after a lock ran out the count starts again at 1; the
    failure that reaches ``attempts`` locks the account until ``until``."""
    c = console_users.c
    lapsed = and_(c.locked_until.is_not(None), c.locked_until <= _moment(now))
    count = case((lapsed, literal(1)), else_=c.failed_logins + 1)
    return {
        "failed_logins": count,
        "locked_until": case(
            (count >= attempts, _moment(until)), (lapsed, null()), else_=c.locked_until
        ),
    }


def _moment(moment: datetime) -> sqlalchemy.ColumnElement[Any]:
    """A moment bound as the table's moments are stored (SQLite: ISO text in UTC)."""
    return literal(moment, console_users.c.locked_until.type)


def _update_returning(
    connection: sqlalchemy.Connection, statement: sqlalchemy.Update
) -> ConsoleUser | None:
    row = connection.execute(statement.returning(*console_users.c)).one_or_none()
    return None if row is None else _user(row._asdict())


def _audit_login(
    connection: sqlalchemy.Connection, given: str, outcome: str, now: datetime
) -> None:
    connection.execute(
        insert(audit_events).values(
            caller=_console_caller(given),
            method=LOGIN_METHOD,
            person_id=None,
            subject=outcome,
            purpose=LOGIN_PURPOSE,
            event_time=now,
        )
    )


def _console_caller(given: str) -> str:
    """``console:<username>``; a text no account could have is not recorded as it was
    typed (it may be anything, a password typed in the wrong field too)."""
    name = known_username(given)
    return f"console:{name if name is not None else '?'}"


# --- views of a person's page -----------------------------------------------------------


def record_person_view(
    *,
    connection: sqlalchemy.Connection,
    username: str,
    person_id: str,
    purpose: str,
    now: datetime,
) -> View:
    """Audit a console user's view of a person's page: allowed for an enabled account,
    and for an agency clerk only of a person within the agency's data
    (:func:`within_agency_data`); a disabled account's or a clerk's refused view is
    audited too (subject ``refused``). An unknown username is PERMISSION_DENIED, with
    nothing recorded (the servicer raises it for :attr:`View.refused`)."""
    why = checked_purpose(purpose)
    number = read_resident_id(person_id, "person_id").number
    name = known_username(username)
    user = None if name is None else find(connection=connection, username=name)
    if user is None:
        return View(0, f"no console user {username.strip().lower()[:40]!r}", "username")
    refused, field = None, ""
    if user.disabled:
        refused, field = f"the console user {user.username!r} is disabled", "username"
    elif user.role == AGENCY_CLERK and not within_agency_data(
        connection, str(user.agency), user.served_regions, number
    ):
        refused = f"the person is not within {user.agency}'s data in the regions it serves"
        field = "person_id"
    event_id = connection.execute(
        insert(audit_events)
        .values(
            caller=f"console:{user.username}",
            method=VIEW_METHOD,
            person_id=number,
            subject=REFUSED if refused else None,
            purpose=why,
            event_time=now,
        )
        .returning(audit_events.c.event_id)
    ).scalar_one()
    return View(event_id, refused, field)


def within_agency_data(
    connection: sqlalchemy.Connection,
    agency: str,
    regions: frozenset[str] | None,
    person_id: str,
) -> bool:
    """Whether the person is the agency's business: it asserted a status of theirs (for a
    clerk of some regions, of a person the register places in one of them), or
    they are on its current roster of a region in ``regions`` (None: every region), or
    (civil affairs and the poverty office, whom warnings go to) a member of a warning of
    such a region."""
    asserted = select(literal(1)).where(
        status_assertions.c.person_id == person_id, status_assertions.c.agency == agency
    )
    listed = (
        select(literal(1))
        .select_from(roster_submissions)
        .join(roster_rows, roster_rows.c.submission_id == roster_submissions.c.submission_id)
        .where(
            roster_submissions.c.agency == agency,
            roster_submissions.c.state == CURRENT,
            roster_rows.c.person_id == person_id,
        )
    )
    warned = select(literal(1)).select_from(warnings).where(_member(connection, person_id))
    if regions is not None:
        served = sorted(regions)
        # A status the agency asserted counts for a clerk of some regions only when the
        # register places the person in one of them: another county's civil affairs
        # asserts statuses too, and those persons are not this clerk's.
        asserted = asserted.where(
            select(literal(1))
            .where(
                register_persons.c.person_id == person_id,
                register_persons.c.region.in_(served),
            )
            .exists()
        )
        listed = listed.where(roster_submissions.c.region.in_(served))
        warned = warned.where(warnings.c.region.in_(served))
    queries = [asserted, listed] + ([warned] if agency in RECEIVERS else [])
    return any(connection.execute(query.limit(1)).first() is not None for query in queries)


def _member(
    connection: sqlalchemy.Connection, person_id: str
) -> sqlalchemy.ColumnElement[bool] | sqlalchemy.TextClause:
    """The warning has the person among its members (``[[person_id, name, burden], ...]``)."""
    if connection.dialect.name == "postgresql":
        return sqlalchemy.cast(warnings.c.members, postgresql.JSONB).contains([[person_id]])
    return text(
        "EXISTS (SELECT 1 FROM json_each(warnings.members) AS member "
        "WHERE json_extract(member.value, '$[0]') = :member_id)"
    ).bindparams(member_id=person_id)
