"""The datashare service's values as proto messages, for its server and its deliveries."""

from __future__ import annotations

from doudi.common.enums import AGENCIES, ASSERTION_KINDS, STATUSES
from doudi.common.protos import from_date, to_timestamp
from doudi.core.statuses import EffectivePeriod
from doudi.datashare.v1 import datashare_pb2
from services.datashare import service


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


def period_message(period: EffectivePeriod) -> datashare_pb2.StatusPeriod:
    message = datashare_pb2.StatusPeriod(
        status=STATUSES.value(period.status),
        valid_from=from_date(period.valid_from),
        agency=AGENCIES.value(period.agency),
    )
    if period.valid_to is not None:
        message.valid_to.CopyFrom(from_date(period.valid_to))
    return message


def event_message(event: service.AuditEvent) -> datashare_pb2.AuditEvent:
    return datashare_pb2.AuditEvent(
        event_id=event.event_id,
        caller=event.caller,
        method=event.method,
        person_id=event.person_id,
        purpose=event.purpose,
        event_time=to_timestamp(event.event_time),
    )
