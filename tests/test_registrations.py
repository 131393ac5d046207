"""Registrations for care outside the region (异地安置 / 转诊备案): enrollment records them
and sends them to settlement with the person's coverage, and settlement takes an
out-of-area visit as referred only with a registration valid on its day for the
hospital's region, whatever the hospital's ``referred`` flag says.

Real enrollment and settlement servers on each backend (tests/outpatient.py). The
figures, by hand from xixia-2017: a Xixia resident on dibao (民政医疗救助 is the only layer
of a status they hold) stays one day at a level-2 hospital in Tianjin, 10,000 yuan of class A
items. Basic insurance: 80% above the 500-yuan deductible, 7,600 yuan; critical illness:
nothing below its 15,000-yuan yearly deductible; medical assistance on the 2,400 left:
70% when referred, 1,680 yuan; 20 points less out of area without referral, 50%, 1,200.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import grpc
import pytest

from doudi.common.protos import from_date
from doudi.enrollment.v1 import enrollment_pb2
from doudi.settlement.v1 import settlement_pb2
from tests.outpatient import (
    LINZHI,
    TIANJIN,
    XIXIA,
    Services,
    fixtures,
    give_status,
    new_person,
    refusal,
    settle_stay,
)
from tests.services import INTERNAL

REFERRED_FEN = 168_000
NOT_REFERRED_FEN = 120_000
INVALID = grpc.StatusCode.INVALID_ARGUMENT


all_services, services = fixtures("registrations")


def dibao_person(services: Services) -> str:
    person = new_person(services, XIXIA, 2025)
    give_status(services, person, settlement_pb2.STATUS_DIBAO, date(2025, 1, 1))
    return person


def record(
    services: Services,
    person: str,
    region: str,
    valid_from: date,
    valid_to: date | None = None,
    kind: enrollment_pb2.RegistrationKind.ValueType = enrollment_pb2.REGISTRATION_KIND_REFERRED,
) -> enrollment_pb2.Registration:
    request = enrollment_pb2.RecordRegistrationRequest(
        request_id=f"reg-{person}-{region}-{valid_from.isoformat()}",
        person_id=person,
        kind=kind,
        region=region,
        valid_from=from_date(valid_from),
    )
    if valid_to is not None:
        request.valid_to.CopyFrom(from_date(valid_to))
    answer = services.enrollment_stub().RecordRegistration(request, metadata=INTERNAL)
    return answer.registration


def end(
    services: Services, registration_id: int, valid_to: date | None = None, *, cancel: bool = False
) -> enrollment_pb2.Registration:
    request = enrollment_pb2.EndRegistrationRequest(registration_id=registration_id, cancel=cancel)
    if valid_to is not None:
        request.valid_to.CopyFrom(from_date(valid_to))
    return services.enrollment_stub().EndRegistration(request, metadata=INTERNAL).registration


def listed(services: Services, person: str) -> list[enrollment_pb2.Registration]:
    answer = services.enrollment_stub().ListRegistrations(
        enrollment_pb2.ListRegistrationsRequest(person_id=person), metadata=INTERNAL
    )
    return list(answer.registrations)


def assistance_paid(services: Services, person: str, day: date, *, referred: bool) -> int:
    paid = settle_stay(services, TIANJIN, person, day, 10_000, referred=referred)
    assert paid["basic"] == 760_000
    return paid["medical_assistance"]


def test_a_registration_for_the_hospitals_region_makes_the_visit_referred(
    services: Services,
) -> None:
    person = dibao_person(services)
    # No registration: the hospital's flag alone does not make it referred.
    assert assistance_paid(services, person, date(2025, 2, 3), referred=True) == NOT_REFERRED_FEN
    made = record(services, person, TIANJIN, date(2025, 3, 1))
    assert (made.kind, made.region, made.ended, made.cancelled) == (
        enrollment_pb2.REGISTRATION_KIND_REFERRED,
        TIANJIN,
        False,
        False,
    )
    assert not made.HasField("valid_to")
    assert assistance_paid(services, person, date(2025, 3, 1), referred=False) == REFERRED_FEN
    # The day before it is valid: not referred.
    assert assistance_paid(services, person, date(2025, 2, 28), referred=True) == NOT_REFERRED_FEN


def test_a_registration_for_another_region_or_expired_does_not(services: Services) -> None:
    person = dibao_person(services)
    record(services, person, LINZHI, date(2025, 1, 1))
    record(
        services,
        person,
        TIANJIN,
        date(2025, 1, 1),
        date(2025, 4, 30),
        kind=enrollment_pb2.REGISTRATION_KIND_RELOCATED,
    )
    assert assistance_paid(services, person, date(2025, 4, 30), referred=False) == REFERRED_FEN
    assert assistance_paid(services, person, date(2025, 5, 1), referred=True) == NOT_REFERRED_FEN


def test_ending_and_cancelling_a_registration_reach_settlement(services: Services) -> None:
    person = dibao_person(services)
    ended = record(services, person, TIANJIN, date(2025, 6, 1))
    ended = end(services, ended.registration_id, date(2025, 6, 30))
    assert ended.ended
    assert not ended.cancelled
    assert ended.valid_to == from_date(date(2025, 6, 30))
    # The same end again answers it; another is refused.
    assert end(services, ended.registration_id, date(2025, 6, 30)) == ended
    code, reason, field = refusal(lambda: end(services, ended.registration_id, date(2025, 6, 20)))
    assert (code, reason, field) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "REGISTRATION_ENDED",
        "registration_id",
    )
    assert assistance_paid(services, person, date(2025, 6, 30), referred=True) == REFERRED_FEN
    assert assistance_paid(services, person, date(2025, 7, 1), referred=True) == NOT_REFERRED_FEN

    cancelled = record(services, person, TIANJIN, date(2025, 8, 1))
    cancelled = end(services, cancelled.registration_id, cancel=True)
    assert cancelled.cancelled
    assert assistance_paid(services, person, date(2025, 8, 2), referred=True) == NOT_REFERRED_FEN
    assert [r.registration_id for r in listed(services, person)] == [
        cancelled.registration_id,
        ended.registration_id,
    ]


def test_a_retry_answers_the_stored_registration(services: Services) -> None:
    person = new_person(services, XIXIA, 2025)
    first = record(services, person, TIANJIN, date(2025, 9, 1))
    again = record(services, person, TIANJIN, date(2025, 9, 1))
    assert again == first
    assert len(listed(services, person)) == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r: r.valid_to.CopyFrom(from_date(date(2025, 2, 28))), "valid_to"),
        (
            lambda r: setattr(r.valid_from, "day", 31) or setattr(r.valid_from, "month", 4),
            "valid_from",
        ),
        (lambda r: r.ClearField("valid_from"), "valid_from"),
        (lambda r: setattr(r, "region", "12"), "region"),
        (lambda r: setattr(r, "region", XIXIA), "region"),  # the person's own
        (lambda r: setattr(r, "kind", 0), "kind"),
        (lambda r: setattr(r, "request_id", " "), "request_id"),
    ],
    ids=[
        "ends before it starts",
        "impossible date",
        "no valid_from",
        "malformed region",
        "own region",
        "no kind",
        "no request id",
    ],
)
def test_bad_registrations_are_refused_naming_the_field_and_change_nothing(
    services: Services,
    change: Callable[[enrollment_pb2.RecordRegistrationRequest], object],
    field: str,
) -> None:
    person = new_person(services, XIXIA, 2025)
    request = enrollment_pb2.RecordRegistrationRequest(
        request_id=f"bad-reg-{person}",
        person_id=person,
        kind=enrollment_pb2.REGISTRATION_KIND_RELOCATED,
        region=TIANJIN,
        valid_from=from_date(date(2025, 3, 1)),
    )
    change(request)
    code, _, named = refusal(
        lambda: services.enrollment_stub().RecordRegistration(request, metadata=INTERNAL)
    )
    assert (code, named) == (INVALID, field)
    assert listed(services, person) == []


@pytest.mark.parametrize(
    ("valid_to", "cancel", "field"),
    [
        (date(2025, 2, 28), False, "valid_to"),  # before valid_from
        (date(2025, 12, 31), False, "valid_to"),  # after its valid_to
        (None, False, "valid_to"),
        (date(2025, 5, 1), True, "valid_to"),
    ],
    ids=["before it starts", "after it ends", "no end", "cancel with an end"],
)
def test_bad_ends_are_refused_naming_the_field_and_change_nothing(
    services: Services, valid_to: date | None, cancel: bool, field: str
) -> None:
    person = new_person(services, XIXIA, 2025)
    made = record(services, person, TIANJIN, date(2025, 3, 1), date(2025, 10, 31))
    code, _, named = refusal(lambda: end(services, made.registration_id, valid_to, cancel=cancel))
    assert (code, named) == (INVALID, field)
    assert listed(services, person) == [made]
