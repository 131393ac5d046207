"""The dual early warning at the hub (docs/domain.md section 7): the agencies' side.

The assistance service raises warnings and sends them here (``RecordWarnings``; the hub
keeps the newest version of what assistance raised, and what the agencies did stays).
Civil affairs and the poverty office, each with its own key, list the warnings of the
regions the key serves (``DOUDI_AGENCY_KEYS``), acknowledge them and decide once:
certify a status the agency owns of every member of the household (recorded as the
agency's own assertions, which reach settlement as any other) or dismiss the warning with
a reason. Every act grows the warning's ``hub_version`` and queues it in
``warning_decision_deliveries`` for the assistance service (doudi.common.outbox). Every
agency read is audited in the transaction that reads, one record per member seen.
"""

from __future__ import annotations

import contextvars
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

import sqlalchemy
from sqlalchemy import select

from doudi.common import outbox, paging
from doudi.common.errors import FailedPrecondition, NotFound, PermissionDenied
from doudi.common.warnings import (
    ACKNOWLEDGED,
    CERTIFIED,
    DISMISSED,
    MAX_REASON_LENGTH,
    RAISED,
    RAISED_COLUMNS,
    UNDECIDED,
    Warning,
    filtered,
    from_row,
)
from doudi.core.errors import InvalidInput
from doudi.core.names import check_visible
from doudi.core.statuses import ASSERT, owns
from services.datashare import service
from services.datashare.tables import warning_decision_deliveries, warnings

RECEIVERS: Final = frozenset({"civil_affairs", "poverty_office"})
"""The agencies warnings go to."""
CERTIFIABLE: Final = frozenset({"low_income", "expenditure_hardship", "at_risk"})
"""The statuses a warning may be decided by (each certified by its own agency)."""
SUBSCRIBERS: Final = (outbox.ASSISTANCE,)
"""Who keeps a copy of the decisions: the raiser."""
_RAISED_COLUMNS: Final = ("warning_id", *RAISED_COLUMNS)

# --- which regions the caller's key serves ----------------------------------------------

_regions: contextvars.ContextVar[frozenset[str] | None] = contextvars.ContextVar(
    "key_regions", default=None
)


def serving(regions: frozenset[str] | None) -> None:
    """The authenticator's note, for the call: the regions the caller's key serves (None:
    every region)."""
    _regions.set(regions)


def key_regions() -> frozenset[str] | None:
    return _regions.get()


@dataclass(frozen=True, slots=True)
class Reader:
    """Who reads or acts: an agency and the regions of its key (None: every region), or
    the platform (``agency`` None)."""

    agency: str | None
    regions: frozenset[str] | None

    @classmethod
    def of(cls, agency: str | None, regions: frozenset[str] | None) -> Reader:
        """The reader, if warnings go to it (PermissionDenied otherwise)."""
        if agency is not None and agency not in RECEIVERS:
            raise PermissionDenied(
                f"warnings go to civil affairs and the poverty office, not {agency}"
            )
        return cls(agency, regions)

    def sees(self, region: str) -> bool:
        return self.regions is None or region in self.regions


@dataclass(frozen=True, slots=True)
class Certification:
    status: str
    valid_from: date
    valid_to: date | None


# --- receiving what assistance raised ---------------------------------------------------


def record_warnings(*, connection: sqlalchemy.Connection, received: Sequence[Warning]) -> list[int]:
    """Store each warning unless a later version is stored; what agencies did stays.
    Answers the version now stored of each."""
    rows = [
        {
            **warning.raised_row(),
            "state": RAISED,
            "hub_version": 0,
        }
        for warning in received
    ]
    # Only the raiser's columns are replaced by a newer version.
    statement = outbox.dialect_module(connection).insert(warnings)
    upsert = statement.on_conflict_do_update(
        index_elements=[warnings.c.warning_id],
        set_={name: statement.excluded[name] for name in _RAISED_COLUMNS[1:]},
        where=warnings.c.version < statement.excluded.version,
    )
    connection.execute(upsert, rows)
    stored = {
        row[0]: row[1]
        for row in connection.execute(
            select(warnings.c.warning_id, warnings.c.version).where(
                warnings.c.warning_id.in_({warning.warning_id for warning in received})
            )
        )
    }
    return [int(stored[warning.warning_id]) for warning in received]


# --- the agencies' reads ----------------------------------------------------------------


def list_warnings(
    *,
    connection: sqlalchemy.Connection,
    agency: str | None,
    regions: frozenset[str] | None,
    region: str,
    year: int,
    kind: str | None,
    state: str | None,
    overdue_on: date | None,
    purpose: str,
    page_size: int,
    page_token: str,
) -> tuple[list[Warning], str]:
    """A page of the warnings the reader may see, newest first, filtered as asked."""
    reader = Reader.of(agency, regions)
    why = service.checked_purpose(purpose) if reader.agency is not None else ""
    query = select(warnings)
    if region:
        if not reader.sees(region):
            raise PermissionDenied(
                f"the key of {reader.agency} does not serve region {region}", field="region"
            )
        query = query.where(warnings.c.region == region)
    elif reader.regions is not None:
        query = query.where(warnings.c.region.in_(sorted(reader.regions)))
    if year:
        query = query.where(warnings.c.year == year)
    query = filtered(query, warnings, kind=kind, state=state, overdue_on=overdue_on)
    rows, token = paging.keyset_page(
        connection, query, warnings.c.warning_id, page_size, page_token, newest_first=True
    )
    found = [from_row(row) for row in rows]
    _audit(connection, reader, "ListWarnings", why, found, subject=f"warnings {region}")
    return found, token


def get_warning(
    *,
    connection: sqlalchemy.Connection,
    agency: str | None,
    regions: frozenset[str] | None,
    warning_id: int,
    purpose: str,
) -> Warning:
    reader = Reader.of(agency, regions)
    why = service.checked_purpose(purpose) if reader.agency is not None else ""
    warning = _visible(connection, reader, warning_id)
    _audit(connection, reader, "GetWarning", why, [warning])
    return warning


def _audit(
    connection: sqlalchemy.Connection,
    reader: Reader,
    method: str,
    purpose: str,
    seen: Collection[Warning],
    subject: str | None = None,
) -> None:
    """An agency's read recorded: one row per member of the warnings it saw (one naming
    the ``subject`` when it saw none); nothing for the platform."""
    if reader.agency is None:
        return
    persons = sorted({member.person_id for warning in seen for member in warning.members})
    service.record_reads(
        connection,
        agency=reader.agency,
        method=method,
        purpose=purpose,
        person_ids=persons,
        subject=None if persons else (subject or "warnings")[:64],
    )


def _visible(
    connection: sqlalchemy.Connection, reader: Reader, warning_id: int, *, lock: bool = False
) -> Warning:
    """The warning, if the reader's key serves its region; NotFound otherwise (as if there
    were none: another region's warnings are not the agency's business)."""
    if warning_id < 1:
        raise InvalidInput("warning_id", "required: a positive id")
    query = select(warnings).where(warnings.c.warning_id == warning_id)
    if lock:
        query = query.with_for_update()
    row = connection.execute(query).one_or_none()
    if row is None or not reader.sees(row.region):
        raise NotFound(f"no warning {warning_id}", reason="WARNING_NOT_FOUND", field="warning_id")
    return from_row(row)


# --- the agencies' acts -----------------------------------------------------------------


def acknowledge(
    *,
    connection: sqlalchemy.Connection,
    agency: str,
    regions: frozenset[str] | None,
    warning_id: int,
    now: datetime,
) -> Warning:
    """The agency has seen the warning. Again, or by the other agency: no change."""
    reader = Reader.of(agency, regions)
    warning = _visible(connection, reader, warning_id, lock=True)
    state = warning.decision.state
    if state not in UNDECIDED:
        raise FailedPrecondition(
            f"warning {warning_id} is already {state}",
            reason="WARNING_DECIDED",
            field="warning_id",
        )
    if state == RAISED:
        _act(
            connection,
            warning,
            now,
            state=ACKNOWLEDGED,
            acknowledged_by=reader.agency,
            acknowledged_at=now,
        )
    _audit(connection, reader, "AcknowledgeWarning", "acknowledging a warning", [warning])
    return _visible(connection, reader, warning_id)


def decide(
    *,
    connection: sqlalchemy.Connection,
    agency: str,
    regions: frozenset[str] | None,
    warning_id: int,
    certification: Certification | None,
    reason: str | None,
    now: datetime,
) -> tuple[Warning, list[str]]:
    """Decide the warning once: certify (the status asserted for every member, in this
    transaction) or dismiss with a reason. Answers the warning and the persons whose
    statuses changed. Nothing changes when it refuses."""
    reader = Reader.of(agency, regions)
    if certification is not None:
        if not owns(agency, certification.status):
            raise PermissionDenied(
                f"{agency} may not certify {certification.status}", field="certify.status"
            )
        if certification.status not in CERTIFIABLE:
            raise InvalidInput(
                "certify.status",
                f"a warning is decided by {', '.join(sorted(CERTIFIABLE))}, "
                f"not {certification.status}",
            )
        if certification.valid_to is not None and certification.valid_to < certification.valid_from:
            raise InvalidInput("certify.valid_to", "is before certify.valid_from")
    else:
        reason = _reason(reason)
    warning = _visible(connection, reader, warning_id, lock=True)
    if warning.decision.state not in UNDECIDED:
        raise FailedPrecondition(
            f"warning {warning_id} is already {warning.decision.state}",
            reason="WARNING_DECIDED",
            field="warning_id",
        )
    changed: list[str] = []
    decided: dict[str, Any] = {"decided_by": agency, "decided_at": now}
    if warning.decision.acknowledged_by is None:
        decided |= {"acknowledged_by": agency, "acknowledged_at": now}
    if certification is None:
        _act(connection, warning, now, state=DISMISSED, reason=reason, **decided)
    else:
        for member in warning.members:
            service.record_status(
                connection=connection,
                kind=ASSERT,
                agency=agency,
                person_id=member.person_id,
                household_id=warning.household_id,
                status=certification.status,
                valid_from=certification.valid_from,
                valid_to=certification.valid_to,
                reference=f"warning:{warning_id}:{member.person_id}",
            )
            changed.append(member.person_id)
        _act(
            connection,
            warning,
            now,
            state=CERTIFIED,
            certified_status=certification.status,
            valid_from=certification.valid_from,
            valid_to=certification.valid_to,
            **decided,
        )
    _audit(connection, reader, "DecideWarning", "deciding a warning", [warning])
    return _visible(connection, reader, warning_id), changed


def _reason(reason: str | None) -> str:
    text = (reason or "").strip()
    if not text:
        raise InvalidInput("dismiss.reason", "required: why the warning is dismissed")
    if len(text) > MAX_REASON_LENGTH:
        raise InvalidInput(
            "dismiss.reason", f"at most {MAX_REASON_LENGTH} characters, got {len(text)}"
        )
    check_visible(text, "dismiss.reason")
    return text


def _act(connection: sqlalchemy.Connection, warning: Warning, now: datetime, **values: Any) -> None:
    """Record an agency's act on the warning and queue it for assistance."""
    version = warning.decision.version + 1
    connection.execute(
        sqlalchemy.update(warnings)
        .where(warnings.c.warning_id == warning.warning_id)
        .values(hub_version=version, **values)
    )
    outbox.queue_many(
        connection,
        warning_decision_deliveries,
        [(str(warning.warning_id), version)],
        now,
        SUBSCRIBERS,
    )


def decisions_to_deliver(
    *, connection: sqlalchemy.Connection, warning_ids: list[int]
) -> list[Warning]:
    """The warnings whose decisions assistance is to receive (those acted on)."""
    rows = connection.execute(
        select(warnings)
        .where(warnings.c.warning_id.in_(warning_ids), warnings.c.hub_version > 0)
        .order_by(warnings.c.warning_id)
    )
    return [from_row(row) for row in rows]
