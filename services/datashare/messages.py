"""The datashare service's values as proto messages, for its server and its deliveries."""

from __future__ import annotations

import functools
from datetime import date
from typing import TypeVar

from google.type import date_pb2

from doudi.assistance.v1 import assistance_pb2
from doudi.common.enums import (
    AGENCIES,
    ASSERTION_KINDS,
    ASSISTANCE_AGENCIES,
    ASSISTANCE_STATUSES,
    COMPARISON_CLASSES,
    GAP_REASONS,
    ROSTER_STATES,
    SETTLEMENT_AGENCIES,
    SETTLEMENT_STATUSES,
    STATUSES,
)
from doudi.common.protos import EnumCodes, from_date, to_date, to_timestamp
from doudi.core.errors import InvalidInput
from doudi.core.statuses import EffectivePeriod
from doudi.datashare.v1 import datashare_pb2
from doudi.settlement.v1 import settlement_pb2
from services.datashare import comparison as comparison_module
from services.datashare import rosters, service


def assertion_message(assertion: service.Assertion) -> datashare_pb2.StatusAssertion:
    message = datashare_pb2.StatusAssertion(
        assertion_id=assertion.assertion_id,
        kind=ASSERTION_KINDS.value(assertion.kind),
        person_id=assertion.person_id,
        household_id=assertion.household_id or "",
        status=STATUSES.value(assertion.status),
        agency=AGENCIES.value(assertion.agency),
        valid_from=from_date(assertion.valid_from),
        reference=assertion.reference,
        record_time=to_timestamp(assertion.recorded_at),
    )
    if assertion.valid_to is not None:
        message.valid_to.CopyFrom(from_date(assertion.valid_to))
    return message


Period = TypeVar(
    "Period",
    datashare_pb2.StatusPeriod,
    settlement_pb2.StatusPeriod,
    assistance_pb2.StatusPeriod,
)


def period_message(period: EffectivePeriod) -> datashare_pb2.StatusPeriod:
    """A period as the hub's API answers it (``GetPersonStatuses``)."""
    return _period(datashare_pb2.StatusPeriod, STATUSES, AGENCIES, period)


def settlement_period_message(period: EffectivePeriod) -> settlement_pb2.StatusPeriod:
    """A period as settlement's ``RecordPersonStatuses`` takes it (its own message, with the
    hub's field numbers and enum values)."""
    return _period(settlement_pb2.StatusPeriod, SETTLEMENT_STATUSES, SETTLEMENT_AGENCIES, period)


def assistance_period_message(period: EffectivePeriod) -> assistance_pb2.StatusPeriod:
    """A period as assistance's ``RecordPersonStatuses`` takes it (its own message, with the
    hub's field numbers and enum values)."""
    return _period(assistance_pb2.StatusPeriod, ASSISTANCE_STATUSES, ASSISTANCE_AGENCIES, period)


def _period(
    kind: type[Period], statuses: EnumCodes, agencies: EnumCodes, period: EffectivePeriod
) -> Period:
    message = kind(
        status=statuses.value(period.status),
        valid_from=from_date(period.valid_from),
        agency=agencies.value(period.agency),
    )
    if period.valid_to is not None:
        message.valid_to.CopyFrom(from_date(period.valid_to))
    return message


def event_message(event: service.AuditEvent) -> datashare_pb2.AuditEvent:
    return datashare_pb2.AuditEvent(
        event_id=event.event_id,
        caller=event.caller,
        method=event.method,
        person_id=event.person_id or "",
        subject=event.subject or "",
        purpose=event.purpose,
        event_time=to_timestamp(event.event_time),
    )


def submission_message(submission: rosters.Submission) -> datashare_pb2.RosterSubmission:
    return datashare_pb2.RosterSubmission(
        submission_id=submission.submission_id,
        agency=AGENCIES.value(submission.agency),
        region=submission.region,
        as_of=from_date(submission.as_of),
        submit_time=to_timestamp(submission.submitted_at),
        row_count=submission.row_count,
        accepted_count=submission.accepted_count,
        rejected_count=submission.rejected_count,
        asserted_count=submission.asserted_count,
        changed_count=submission.changed_count,
        revoked_count=submission.revoked_count,
        unchanged_count=submission.unchanged_count,
        state=ROSTER_STATES.value(submission.state),
    )


def revocation_message(revocation: rosters.Revocation) -> datashare_pb2.RosterRevocation:
    return datashare_pb2.RosterRevocation(
        person_id=revocation.person_id,
        name=revocation.name,
        status=STATUSES.value(revocation.status),
        reference=revocation.reference,
        previous_line=revocation.previous_line,
        previous_submission_id=revocation.previous_submission_id,
    )


def roster_row(message: datashare_pb2.RosterRow) -> rosters.RosterRow:
    """A row as received; a value that cannot be read becomes the row's problem, so that
    the row is rejected by its line instead of failing the whole submission."""
    problem: InvalidInput | None = None
    valid_from = valid_to = None
    try:
        valid_from = _roster_date(message.valid_from, "valid_from")
        if message.HasField("valid_to"):
            valid_to = _roster_date(message.valid_to, "valid_to")
    except InvalidInput as error:
        problem = error
    status = None
    if message.status != datashare_pb2.STATUS_UNSPECIFIED:
        try:
            status = STATUSES.code(message.status, "status")
        except InvalidInput as error:
            problem = problem or error
    return rosters.RosterRow(
        message.line,
        message.person_id,
        message.name,
        message.household_id,
        status,
        valid_from,
        valid_to,
        message.reference,
        problem,
    )


def _roster_date(value: date_pb2.Date, field: str) -> date:
    """:func:`to_date`, remembered: a roster's million rows carry a few thousand dates."""
    try:
        return _calendar_date(value.year, value.month, value.day)
    except ValueError:
        return to_date(value, field)  # raises InvalidInput saying what is wrong


@functools.lru_cache(maxsize=65_536)
def _calendar_date(year: int, month: int, day: int) -> date:
    return date(year, month, day)


def comparison_message(comparison: comparison_module.Comparison) -> datashare_pb2.Comparison:
    return datashare_pb2.Comparison(
        comparison_id=comparison.comparison_id,
        region=comparison.region,
        year=comparison.year,
        compare_time=to_timestamp(comparison.compared_at),
        submission_ids=comparison.submission_ids,
        person_count=comparison.person_count,
        insured_count=comparison.insured_count,
        not_insured_count=comparison.not_insured_count,
        insured_elsewhere_count=comparison.insured_elsewhere_count,
        name_differs_count=comparison.name_differs_count,
        duplicate_count=comparison.duplicate_count,
    )


def entry_message(entry: comparison_module.Entry) -> datashare_pb2.ComparisonEntry:
    return datashare_pb2.ComparisonEntry(
        person_id=entry.person_id,
        **{"class": COMPARISON_CLASSES.value(entry.klass)},
        gap_reason=GAP_REASONS.value(entry.gap_reason),
        agencies=[AGENCIES.value(agency) for agency in entry.agencies],
        statuses=[STATUSES.value(status) for status in entry.statuses],
        roster_name=entry.roster_name,
        household_id=entry.household_id,
        registered_name=entry.registered_name or "",
        registered_region=entry.registered_region or "",
        duplicate=entry.duplicate,
    )
