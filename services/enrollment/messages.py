"""The enrollment service's values as proto messages, for its server and its deliveries."""

from __future__ import annotations

from datetime import datetime

from doudi.assistance.v1 import assistance_pb2
from doudi.common.enums import (
    CERTIFICATE_APPLICATION_STATES,
    CERTIFICATE_KINDS,
    EMPLOYMENTS,
    PREMIUM_PAYERS,
    REGISTRATION_KINDS,
    SCHEMES,
    SETTLEMENT_CERTIFICATE_KINDS,
    SETTLEMENT_EMPLOYMENTS,
    SETTLEMENT_REGISTRATION_KINDS,
    SETTLEMENT_SCHEMES,
    SETTLEMENT_TIERS,
    TIERS,
)
from doudi.common.protos import from_date, to_timestamp
from doudi.enrollment.v1 import enrollment_pb2
from doudi.settlement.v1 import settlement_pb2
from services.enrollment import certificates, registrations, service, subsidised


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


# --- outpatient certificates and registrations ---


def application_message(
    application: certificates.Application,
) -> enrollment_pb2.CertificateApplication:
    return enrollment_pb2.CertificateApplication(
        application_id=application.application_id,
        request_id=application.request_id,
        person_id=application.person_id,
        region=application.region,
        kind=CERTIFICATE_KINDS.value(application.kind),
        diagnoses=application.diagnoses,
        diseases=application.diseases,
        health_centre=application.health_centre,
        applied_on=from_date(application.applied_on),
        state=CERTIFICATE_APPLICATION_STATES.value(application.state),
        batch_month=application.batch_month,
        reason=application.reason,
    )


def certificate_message(certificate: certificates.Certificate) -> enrollment_pb2.Certificate:
    return enrollment_pb2.Certificate(
        certificate_id=certificate.certificate_id,
        person_id=certificate.person_id,
        disease=certificate.disease,
        kind=CERTIFICATE_KINDS.value(certificate.kind),
        valid_from=from_date(certificate.valid_from),
        valid_to=from_date(certificate.valid_to),
        application_id=certificate.application_id,
        disease_name=certificate.disease_name,
    )


def batch_message(batch: certificates.Batch) -> enrollment_pb2.CertificateBatch:
    return enrollment_pb2.CertificateBatch(
        region=batch.region,
        month=batch.month,
        decided_on=from_date(batch.decided_on),
        approved_count=batch.approved_count,
        rejected_count=batch.rejected_count,
        certificate_count=batch.certificate_count,
        decided_at=to_timestamp(batch.decided_at),
    )


def registration_message(
    registration: registrations.Registration,
) -> enrollment_pb2.Registration:
    message = enrollment_pb2.Registration(
        registration_id=registration.registration_id,
        person_id=registration.person_id,
        kind=REGISTRATION_KINDS.value(registration.kind),
        region=registration.region,
        valid_from=from_date(registration.valid_from),
        request_id=registration.request_id,
        recorded_at=to_timestamp(registration.recorded_at),
        ended=registration.ended,
        cancelled=registration.cancelled,
    )
    if registration.valid_to is not None:
        message.valid_to.CopyFrom(from_date(registration.valid_to))
    return message


def settlement_certificate_message(
    certificate: service.HeldCertificate,
) -> settlement_pb2.Certificate:
    """What settlement keeps of a certificate (its own message, enrollment's numbers)."""
    return settlement_pb2.Certificate(
        disease=certificate.disease,
        kind=SETTLEMENT_CERTIFICATE_KINDS.value(certificate.kind),
        valid_from=from_date(certificate.valid_from),
        valid_to=from_date(certificate.valid_to),
    )


def settlement_registration_message(
    registration: service.HeldRegistration,
) -> settlement_pb2.Registration:
    """What settlement keeps of a registration (its own message, enrollment's numbers)."""
    message = settlement_pb2.Registration(
        kind=SETTLEMENT_REGISTRATION_KINDS.value(registration.kind),
        region=registration.region,
        valid_from=from_date(registration.valid_from),
    )
    if registration.valid_to is not None:
        message.valid_to.CopyFrom(from_date(registration.valid_to))
    return message
