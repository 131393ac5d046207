"""The enrollment service's values as proto messages, for its server and its deliveries."""

from __future__ import annotations

from datetime import datetime

from doudi.assistance.v1 import assistance_pb2
from doudi.common.enums import (
    EMPLOYMENTS,
    PREMIUM_PAYERS,
    SCHEMES,
    SETTLEMENT_EMPLOYMENTS,
    SETTLEMENT_SCHEMES,
    SETTLEMENT_TIERS,
    TIERS,
)
from doudi.common.protos import from_date, to_timestamp
from doudi.enrollment.v1 import enrollment_pb2
from doudi.settlement.v1 import settlement_pb2
from services.enrollment import service, subsidised


def person_message(person: service.Person) -> enrollment_pb2.Person:
    return enrollment_pb2.Person(
        person_id=person.person_id,
        name=person.name,
        birth_date=from_date(person.birth_date),
        sex=person.sex,
        household_id=person.household_id,
        region=person.region,
    )


def enrolment_message(enrolment: service.Enrolment) -> enrollment_pb2.Enrolment:
    return enrollment_pb2.Enrolment(
        person_id=enrolment.person_id,
        year=enrolment.year,
        scheme=SCHEMES.value(enrolment.scheme),
        employment=EMPLOYMENTS.value(enrolment.employment),
        tier=TIERS.value(enrolment.tier),
        premium_fen=enrolment.premium_fen,
        premium_payer=PREMIUM_PAYERS.value(enrolment.premium_payer),
        subsidy_fen=enrolment.subsidy_fen,
        subsidy_category=enrolment.subsidy_category or "",
    )


def settlement_enrolment_message(enrolment: service.Enrolment) -> settlement_pb2.Enrolment:
    """What settlement keeps of an enrolment (its own message, with the field numbers and
    enum values of enrollment's)."""
    return settlement_pb2.Enrolment(
        year=enrolment.year,
        scheme=SETTLEMENT_SCHEMES.value(enrolment.scheme),
        employment=SETTLEMENT_EMPLOYMENTS.value(enrolment.employment),
        tier=SETTLEMENT_TIERS.value(enrolment.tier),
    )


def assistance_enrolment_message(
    enrolment: service.Enrolment, enrolled_at: datetime
) -> assistance_pb2.Enrolment:
    """What assistance keeps of an enrolment (its own message, with enrollment's field
    numbers), and when it was recorded."""
    return assistance_pb2.Enrolment(
        year=enrolment.year,
        premium_fen=enrolment.premium_fen,
        subsidy_fen=enrolment.subsidy_fen,
        subsidy_category=enrolment.subsidy_category or "",
        enrolled_at=to_timestamp(enrolled_at),
    )


def total_message(total: subsidised.Total) -> enrollment_pb2.SubsidyTotal:
    return enrollment_pb2.SubsidyTotal(
        category=total.category,
        category_name=total.category_name,
        person_count=total.person_count,
        premium_fen=total.premium_fen,
        assistance_fund_fen=total.assistance_fund_fen,
        person_fen=total.person_fen,
    )
