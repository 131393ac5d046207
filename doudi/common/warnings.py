"""The dual early warning (双预警) as both its keepers hold it: the assistance service,
which raises warnings, and the datashare hub, where the agencies decide them and which
sends the decisions back (docs/architecture.md, the warning flows).

Both keep a warning in a table of the same shape (:func:`warnings_table`): what
assistance raised (its ``version``) and what the agencies did (``hub_version``, the
hub's version of it, which only grows). Both contracts have a ``Warning`` and a
``WarningDecision`` message with the same field numbers; the conversions here build
either service's from the values, with that service's enums.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final

import sqlalchemy
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
)

from doudi.assistance.v1 import assistance_pb2
from doudi.common.enums import (
    AGENCIES,
    ASSISTANCE_AGENCIES,
    ASSISTANCE_STATUSES,
    HUB_WARNING_KINDS,
    HUB_WARNING_STATES,
    STATUSES,
    WARNING_KINDS,
    WARNING_STATES,
)
from doudi.common.protos import EnumCodes, from_date, optional_date, to_timestamp
from doudi.core.errors import InvalidInput
from doudi.core.identity import read_resident_id
from doudi.core.monitoring import bureau_day
from doudi.datashare.v1 import datashare_pb2

RAISED: Final = "raised"
ACKNOWLEDGED: Final = "acknowledged"
CERTIFIED: Final = "certified"
DISMISSED: Final = "dismissed"
UNDECIDED: Final = (RAISED, ACKNOWLEDGED)
MAX_REASON_LENGTH = 200
MAX_BATCH = 1000
"""The most warnings or decisions one call carries."""


def warnings_table(metadata: sqlalchemy.MetaData, *, raised_here: bool) -> Table:
    """The table of warnings (``warnings``); ``raised_here``: the raiser's, whose ids it
    makes (the hub keeps the raiser's). Once per household, kind and year (the unique
    constraint: two transactions crossing the line together raise one)."""
    warning_id = (
        Column(
            "warning_id",
            BigInteger().with_variant(Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        )
        if raised_here
        else Column("warning_id", BigInteger, primary_key=True, autoincrement=False)
    )
    table = Table(
        "warnings",
        metadata,
        warning_id,
        Column("version", BigInteger, nullable=False),
        # impoverishment / return_to_poverty
        Column("kind", String(24), nullable=False),
        Column("household_id", String(64), nullable=False),
        Column("region", String(32), nullable=False),
        Column("year", Integer, nullable=False),
        Column("burden_fen", BigInteger, nullable=False),
        Column("threshold_fen", BigInteger, nullable=False),
        # [[person_id, name, personal_burden_fen], ...] in identity-number order.
        Column("members", JSON, nullable=False),
        Column("raised_by", String(64), nullable=False),
        Column("raised_at", DateTime(timezone=True), nullable=False),
        Column("due_on", Date, nullable=False),
        Column("policy", String(64), nullable=False),
        # What the agencies did: raised / acknowledged / certified / dismissed.
        Column("state", String(16), nullable=False),
        Column("hub_version", BigInteger, nullable=False),
        Column("acknowledged_by", String(32), nullable=True),
        Column("acknowledged_at", DateTime(timezone=True), nullable=True),
        Column("decided_by", String(32), nullable=True),
        Column("decided_at", DateTime(timezone=True), nullable=True),
        Column("certified_status", String(32), nullable=True),
        Column("valid_from", Date, nullable=True),
        Column("valid_to", Date, nullable=True),
        Column("reason", String(MAX_REASON_LENGTH), nullable=True),
        UniqueConstraint("household_id", "kind", "year", name="uq_warnings_household_kind_year"),
    )
    Index("ix_warnings_region_year", table.c.region, table.c.year, table.c.warning_id)
    return table


@dataclass(frozen=True, slots=True)
class WarningMember:
    person_id: str
    name: str
    """"" for a person enrollment has not sent."""
    personal_burden_fen: int


@dataclass(frozen=True, slots=True)
class Decision:
    """What the agencies did with a warning (state ``raised``: nothing yet)."""

    warning_id: int
    version: int
    """The hub's version: grows with every act of an agency (0: none yet)."""
    state: str
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    certified_status: str | None = None
    valid_from: date | None = None
    valid_to: date | None = None
    reason: str | None = None


DECISION_COLUMNS: Final = tuple(name for name in Decision.__slots__ if name != "warning_id")
RAISED_COLUMNS: Final = (
    "version",
    "kind",
    "household_id",
    "region",
    "year",
    "burden_fen",
    "threshold_fen",
    "members",
    "raised_by",
    "raised_at",
    "due_on",
    "policy",
)
"""What a warning is raised with, as both the raiser's and the hub's tables keep it."""


@dataclass(frozen=True, slots=True)
class Warning:
    """A warning as raised (``version``: the raiser's), with what the agencies did."""

    warning_id: int
    version: int
    kind: str
    household_id: str
    region: str
    year: int
    burden_fen: int
    threshold_fen: int
    members: tuple[WarningMember, ...]
    raised_by: str
    raised_at: datetime
    due_on: date
    policy: str
    decision: Decision

    def overdue(self, on: date) -> bool:
        """Undecided on ``on``, its due day reached."""
        return self.decision.state in UNDECIDED and self.due_on <= on

    def raised_row(self) -> dict[str, Any]:
        """The raiser's columns (not the decision's)."""
        return {
            "warning_id": self.warning_id,
            "version": self.version,
            "kind": self.kind,
            "household_id": self.household_id,
            "region": self.region,
            "year": self.year,
            "burden_fen": self.burden_fen,
            "threshold_fen": self.threshold_fen,
            "members": [[m.person_id, m.name, m.personal_burden_fen] for m in self.members],
            "raised_by": self.raised_by,
            "raised_at": self.raised_at,
            "due_on": self.due_on,
            "policy": self.policy,
        }


def from_row(row: sqlalchemy.Row[Any]) -> Warning:
    """A row of :func:`warnings_table` (either keeper's)."""
    return Warning(
        warning_id=row.warning_id,
        version=row.version,
        kind=row.kind,
        household_id=row.household_id,
        region=row.region,
        year=row.year,
        burden_fen=row.burden_fen,
        threshold_fen=row.threshold_fen,
        members=tuple(WarningMember(str(p), str(n), int(f)) for p, n, f in row.members),
        raised_by=row.raised_by,
        raised_at=_utc(row.raised_at),
        due_on=row.due_on,
        policy=row.policy,
        decision=Decision(
            warning_id=row.warning_id,
            version=row.hub_version,
            state=row.state,
            acknowledged_by=row.acknowledged_by,
            acknowledged_at=_utc(row.acknowledged_at),
            decided_by=row.decided_by,
            decided_at=_utc(row.decided_at),
            certified_status=row.certified_status,
            valid_from=row.valid_from,
            valid_to=row.valid_to,
            reason=row.reason,
        ),
    )


def _utc(moment: Any) -> Any:
    """SQLite hands back naive datetimes; every one stored is UTC."""
    if isinstance(moment, datetime) and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def filtered(
    query: sqlalchemy.Select[Any],
    table: Table,
    *,
    kind: str | None,
    state: str | None,
    overdue_on: date | None,
) -> sqlalchemy.Select[Any]:
    """``query`` of ``table`` narrowed to a kind, a state, and those overdue on a day."""
    if kind is not None:
        query = query.where(table.c.kind == kind)
    if state is not None:
        query = query.where(table.c.state == state)
    if overdue_on is not None:
        query = query.where(table.c.state.in_(UNDECIDED), table.c.due_on <= overdue_on)
    return query


# --- messages (either service's, with its enums) ----------------------------------------


def as_of(request: Any) -> date:
    """The day a request judges overdue on: its ``as_of``, or the bureau's today."""
    found = None if request is None else optional_date(request, "as_of", "as_of")
    return found or bureau_day(datetime.now(UTC))


def listing_filters(contract: Contract, request: Any) -> dict[str, Any]:
    """A ``ListWarningsRequest``'s kind, state and overdue filters, checked."""
    return {
        "kind": contract.kinds.optional_code(request.kind, "kind"),
        "state": contract.states.optional_code(request.state, "state"),
        "overdue_on": as_of(request) if request.overdue_only else None,
    }


@dataclass(frozen=True, slots=True)
class Contract:
    """A service's messages and enums of warnings."""

    warning: Any
    member: Any
    decision: Any
    kinds: EnumCodes
    states: EnumCodes
    agencies: EnumCodes
    statuses: EnumCodes


def warning_message(contract: Contract, warning: Warning, on: date | None) -> Any:
    """The warning in the contract's ``Warning``; with ``on``, the decision and whether it
    is overdue that day (None: what the raiser sends, fields 1 to 13 only)."""
    message = contract.warning(
        warning_id=warning.warning_id,
        version=warning.version,
        kind=contract.kinds.value(warning.kind),
        household_id=warning.household_id,
        region=warning.region,
        year=warning.year,
        burden_fen=warning.burden_fen,
        threshold_fen=warning.threshold_fen,
        members=[
            contract.member(
                person_id=m.person_id, name=m.name, personal_burden_fen=m.personal_burden_fen
            )
            for m in warning.members
        ],
        raised_by=warning.raised_by,
        raised_at=to_timestamp(warning.raised_at),
        due_on=from_date(warning.due_on),
        policy=warning.policy,
    )
    if on is not None:
        message.decision.CopyFrom(decision_message(contract, warning.decision))
        message.overdue = warning.overdue(on)
    return message


def decision_message(contract: Contract, decision: Decision) -> Any:
    message = contract.decision(
        warning_id=decision.warning_id,
        version=decision.version,
        state=contract.states.value(decision.state),
        acknowledged_by=contract.agencies.value(decision.acknowledged_by),
        decided_by=contract.agencies.value(decision.decided_by),
        certified_status=contract.statuses.value(decision.certified_status),
        reason=decision.reason or "",
    )
    for name in ("acknowledged_at", "decided_at"):
        moment = getattr(decision, name)
        if moment is not None:
            getattr(message, name).CopyFrom(to_timestamp(moment))
    for name in ("valid_from", "valid_to"):
        day = getattr(decision, name)
        if day is not None:
            getattr(message, name).CopyFrom(from_date(day))
    return message


def received_warning(contract: Contract, message: Any, where: str) -> Warning:
    """A warning the raiser sent (fields 1 to 13), checked: InvalidInput names ``where``
    and the field. Its decision is none yet: the receiver keeps its own."""
    if message.warning_id < 1:
        raise InvalidInput(f"{where}.warning_id", "required: a positive id")
    if message.version < 1:
        raise InvalidInput(f"{where}.version", "required: the raiser's version")
    for name in ("household_id", "region", "raised_by", "policy"):
        value = getattr(message, name)
        if not value or len(value) > 64 or not value.isprintable():
            raise InvalidInput(f"{where}.{name}", "required: at most 64 printable characters")
    if not message.members:
        raise InvalidInput(f"{where}.members", "required: at least one member")
    if not message.HasField("raised_at"):
        raise InvalidInput(f"{where}.raised_at", "required")
    due_on = optional_date(message, "due_on", f"{where}.due_on")
    if due_on is None:
        raise InvalidInput(f"{where}.due_on", "required")
    return Warning(
        warning_id=message.warning_id,
        version=message.version,
        kind=contract.kinds.code(message.kind, f"{where}.kind"),
        household_id=message.household_id,
        region=message.region,
        year=message.year,
        burden_fen=message.burden_fen,
        threshold_fen=message.threshold_fen,
        members=tuple(
            WarningMember(
                read_resident_id(m.person_id, f"{where}.members[{index}].person_id").number,
                m.name[:64],
                m.personal_burden_fen,
            )
            for index, m in enumerate(message.members)
        ),
        raised_by=message.raised_by,
        raised_at=message.raised_at.ToDatetime(tzinfo=UTC),
        due_on=due_on,
        policy=message.policy,
        decision=Decision(warning_id=message.warning_id, version=0, state=RAISED),
    )


def received_decision(contract: Contract, message: Any, where: str) -> Decision:
    """A decision the hub sent, checked: InvalidInput names ``where`` and the field."""
    if message.warning_id < 1:
        raise InvalidInput(f"{where}.warning_id", "required: a positive id")
    if message.version < 1:
        raise InvalidInput(f"{where}.version", "required: the hub's version of the warning")
    state = contract.states.code(message.state, f"{where}.state")
    status = contract.statuses.optional_code(message.certified_status, f"{where}.certified_status")
    if (state == CERTIFIED) != (status is not None):
        raise InvalidInput(f"{where}.certified_status", "set exactly when the state is certified")
    moments = {
        name: getattr(message, name).ToDatetime(tzinfo=UTC) if message.HasField(name) else None
        for name in ("acknowledged_at", "decided_at")
    }
    return Decision(
        warning_id=message.warning_id,
        version=message.version,
        state=state,
        acknowledged_by=contract.agencies.optional_code(
            message.acknowledged_by, f"{where}.acknowledged_by"
        ),
        decided_by=contract.agencies.optional_code(message.decided_by, f"{where}.decided_by"),
        certified_status=status,
        valid_from=optional_date(message, "valid_from", f"{where}.valid_from"),
        valid_to=optional_date(message, "valid_to", f"{where}.valid_to"),
        reason=message.reason[:MAX_REASON_LENGTH] or None,
        **moments,
    )


ASSISTANCE: Final = Contract(
    assistance_pb2.Warning,
    assistance_pb2.WarningMember,
    assistance_pb2.WarningDecision,
    WARNING_KINDS,
    WARNING_STATES,
    ASSISTANCE_AGENCIES,
    ASSISTANCE_STATUSES,
)
"""The assistance service's messages: what it answers, what the hub sends it back."""
HUB: Final = Contract(
    datashare_pb2.Warning,
    datashare_pb2.WarningMember,
    datashare_pb2.WarningDecision,
    HUB_WARNING_KINDS,
    HUB_WARNING_STATES,
    AGENCIES,
    STATUSES,
)
"""The datashare hub's: what assistance sends it, what it answers the agencies."""
