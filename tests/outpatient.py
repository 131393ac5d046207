"""What the tests of outpatient certificates and registrations share: enrollment sending to
a real settlement server, each on its own database, hospitals of Xixia and Tianjin, persons
registered and enrolled through enrollment, settlements through settlement's gRPC API.

Datashare and assistance are not started: enrollment's sends to them fail, are logged and
retried, and it answers all the same (tests/services.py, ``no_peers``). A person's statuses
go to settlement as the hub sends them (``RecordPersonStatuses``).
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import grpc
import pytest

from doudi.common.errors import decode_status
from doudi.common.protos import from_date
from doudi.enrollment.v1 import enrollment_pb2, enrollment_pb2_grpc
from doudi.settlement.v1 import settlement_pb2, settlement_pb2_grpc
from tests.conftest import new_database
from tests.services import INTERNAL, RunningService, bearer, no_peers, start_service, stop_service
from tests.support import with_check_digit

XIXIA, TIANJIN, LINZHI = "411323", "120000", "540400"
HOSPITAL_KEYS = {XIXIA: "outpatient-xixia-2", TIANJIN: "outpatient-tianjin-2"}
"""A level-2 hospital of each region (Tianjin's not of the public-hospital reform)."""
_serial = itertools.count(1)


@dataclass
class Services:
    enrollment: RunningService
    settlement: RunningService

    def enrollment_stub(self) -> enrollment_pb2_grpc.EnrollmentServiceStub:
        return enrollment_pb2_grpc.EnrollmentServiceStub(self.enrollment.channel())

    def settlement_stub(self) -> settlement_pb2_grpc.SettlementServiceStub:
        return settlement_pb2_grpc.SettlementServiceStub(self.settlement.channel())


@contextlib.contextmanager
def module_services(
    tmp_path_factory: pytest.TempPathFactory, name: str
) -> Iterator[Callable[[str], Services]]:
    """Settlement and enrollment (sending to it) on a backend, started when a test first
    asks for it, with the hospitals registered; kept for the module."""
    started: dict[str, Services] = {}
    with contextlib.ExitStack() as stack:

        def on(backend: str) -> Services:
            if backend not in started:
                directory = tmp_path_factory.mktemp(f"{name}-{backend}")
                settlement = start_service(
                    "settlement",
                    directory,
                    database_url=stack.enter_context(new_database(backend, directory, "s")),
                    env=no_peers(),
                )
                stack.callback(stop_service, settlement)
                enrollment = start_service(
                    "enrollment",
                    directory,
                    database_url=stack.enter_context(new_database(backend, directory, "e")),
                    env={**no_peers(), "DOUDI_SETTLEMENT_ADDRESS": settlement.address},
                )
                stack.callback(stop_service, enrollment)
                services = started[backend] = Services(enrollment, settlement)
                for region, key in HOSPITAL_KEYS.items():
                    services.settlement_stub().CreateHospital(
                        settlement_pb2.CreateHospitalRequest(
                            hospital=settlement_pb2.Hospital(
                                hospital_id=key, name=f"{region} 二级医院", region=region, level=2
                            ),
                            api_key=key,
                        ),
                        metadata=INTERNAL,
                    )
            return started[backend]

        yield on


def fixtures(name: str) -> tuple[Any, Any]:
    """A module's fixtures ``all_services`` (:func:`module_services`) and ``services`` (on
    the test's backend), to assign to those names in the module."""

    @pytest.fixture(scope="module")
    def all_services(
        tmp_path_factory: pytest.TempPathFactory,
    ) -> Iterator[Callable[[str], Services]]:
        with module_services(tmp_path_factory, name) as on:
            yield on

    @pytest.fixture
    def services(backend: str, all_services: Callable[[str], Services]) -> Services:
        return all_services(backend)

    return all_services, services


def new_person(services: Services, region: str, *years: int) -> str:
    """A resident of ``region`` of this test alone, enrolled in ``years``."""
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    serial = next(_serial)
    number = with_check_digit(
        f"{region}{1960 + worker:04d}{1 + serial % 12:02d}{1 + serial // 12 % 28:02d}"
        f"{serial // 336 % 1000:03d}"
    )
    stub = services.enrollment_stub()
    stub.CreatePerson(
        enrollment_pb2.CreatePersonRequest(
            person=enrollment_pb2.Person(
                person_id=number, name="测试", household_id=f"h-{number[-8:]}", region=region
            )
        ),
        metadata=INTERNAL,
    )
    for year in years:
        enrol(stub, number, year)
    return number


def enrol(stub: enrollment_pb2_grpc.EnrollmentServiceStub, person: str, year: int) -> None:
    """Enrol the person in resident insurance for ``year``, paying 180 yuan."""
    stub.CreateEnrolment(
        enrollment_pb2.CreateEnrolmentRequest(
            enrolment=enrollment_pb2.Enrolment(
                person_id=person,
                year=year,
                scheme=enrollment_pb2.SCHEME_RESIDENT,
                premium_fen=18000,
                premium_payer=enrollment_pb2.PREMIUM_PAYER_PERSON,
            )
        ),
        metadata=INTERNAL,
    )


def apply(
    services: Services,
    person: str,
    applied_on: date,
    *diagnoses: str,
    kind: enrollment_pb2.CertificateKind.ValueType = enrollment_pb2.CERTIFICATE_KIND_CHRONIC,
    request_id: str | None = None,
) -> enrollment_pb2.CertificateApplication:
    answer = services.enrollment_stub().ApplyForCertificate(
        enrollment_pb2.ApplyForCertificateRequest(
            request_id=request_id or f"apply-{person}-{applied_on.isoformat()}",
            person_id=person,
            kind=kind,
            diagnoses=diagnoses,
            applied_on=from_date(applied_on),
            health_centre="丁河镇卫生院",
        ),
        metadata=INTERNAL,
    )
    return answer.application


def decide(
    services: Services,
    region: str,
    month: str,
    decided_on: date,
    rejections: Iterable[tuple[int, str]] = (),
) -> enrollment_pb2.DecideCertificateBatchResponse:
    answer: enrollment_pb2.DecideCertificateBatchResponse = (
        services.enrollment_stub().DecideCertificateBatch(
            enrollment_pb2.DecideCertificateBatchRequest(
                region=region,
                month=month,
                decided_on=from_date(decided_on),
                rejections=[
                    enrollment_pb2.CertificateRejection(application_id=i, reason=r)
                    for i, r in rejections
                ],
            ),
            metadata=INTERNAL,
        )
    )
    return answer


def certificates(services: Services, person: str) -> list[enrollment_pb2.Certificate]:
    return list(
        services.enrollment_stub()
        .ListCertificates(
            enrollment_pb2.ListCertificatesRequest(person_id=person), metadata=INTERNAL
        )
        .certificates
    )


def give_status(services: Services, person: str, status: int, valid_from: date) -> None:
    """The hub's statuses of the person, sent to settlement as the hub sends them."""
    services.settlement_stub().RecordPersonStatuses(
        settlement_pb2.RecordPersonStatusesRequest(
            persons=[
                settlement_pb2.PersonStatuses(
                    person_id=person,
                    version=1,
                    periods=[
                        settlement_pb2.StatusPeriod(
                            status=status,  # type: ignore[arg-type]
                            valid_from=from_date(valid_from),
                            agency=settlement_pb2.AGENCY_CIVIL_AFFAIRS,
                        )
                    ],
                )
            ]
        ),
        metadata=INTERNAL,
    )


def settle_outpatient(
    services: Services,
    region: str,
    person: str,
    visit_type: settlement_pb2.VisitType.ValueType,
    day: date,
    yuan: int,
    *diagnoses: str,
) -> dict[str, int]:
    """Settle an outpatient visit (class A items) at the region's hospital: each layer's
    payment in fen, and ``self_pay``."""
    return _settled(
        services,
        region,
        person,
        settlement_pb2.Visit(
            visit_id=f"v-{next(_serial)}",
            visit_type=visit_type,
            date=from_date(day),
            diagnoses=diagnoses,
            items=[
                settlement_pb2.Item(
                    code="M1", item_class=settlement_pb2.ITEM_CLASS_A, amount_fen=yuan * 100
                )
            ],
        ),
    )


def settle_stay(
    services: Services, region: str, person: str, day: date, yuan: int, *, referred: bool
) -> dict[str, int]:
    """Settle a one-day stay (class A) at the region's hospital, saying whether referred."""
    return _settled(
        services,
        region,
        person,
        settlement_pb2.Visit(
            visit_id=f"s-{next(_serial)}",
            visit_type=settlement_pb2.VISIT_TYPE_INPATIENT,
            admitted=from_date(day),
            discharged=from_date(day),
            referred=referred,
            items=[
                settlement_pb2.Item(
                    code="S1", item_class=settlement_pb2.ITEM_CLASS_A, amount_fen=yuan * 100
                )
            ],
        ),
    )


def _settled(
    services: Services, region: str, person: str, visit: settlement_pb2.Visit
) -> dict[str, int]:
    answer = services.settlement_stub().Settle(
        settlement_pb2.SettleRequest(request_id=visit.visit_id, person_id=person, visit=visit),
        metadata=bearer(HOSPITAL_KEYS[region]),
    )
    paid = {layer.layer: layer.paid_fen for layer in answer.settlement.layers}
    return {**paid, "self_pay": answer.settlement.self_pay_fen}


def refusal(call: Callable[[], object]) -> tuple[grpc.StatusCode, str, str]:
    """The code, the reason and the field named of a refused call."""
    with pytest.raises(grpc.RpcError) as raised:
        call()
    decoded = decode_status(raised.value)  # type: ignore[arg-type]
    field = decoded.violations[0].field if decoded.violations else ""
    return decoded.code, decoded.reason, field


CERTIFIED_DIAGNOSIS = "I10"
"""Hypertension (高血压病), a chronic disease of Xixia's pack: what :func:`certify_chronic`
certifies and a certified chronic visit gives as its diagnosis."""
_slots: dict[str, Iterator[tuple[int, int]]] = {}


def certify_chronic(
    enrollment: grpc.Channel, address: str, persons: Iterable[str], year: int
) -> None:
    """Give each person (Xixia residents) a chronic certificate for hypertension valid all
    through ``year``, through enrollment's RPCs: each is enrolled in a year before it too,
    applies in a month of that year and the month's batch approves it on the next month's
    first day (three years' validity). Batches are once per region and month, so each call
    takes a month of its own of the enrollment service at ``address`` (22 in all)."""
    slots = _slots.setdefault(address, ((y, m) for y in (year - 1, year - 2) for m in range(1, 12)))
    earlier, month = next(slots)
    stub = enrollment_pb2_grpc.EnrollmentServiceStub(enrollment)
    persons = list(persons)
    for person in persons:
        enrol(stub, person, earlier)
        stub.ApplyForCertificate(
            enrollment_pb2.ApplyForCertificateRequest(
                request_id=f"certify-{person}",
                person_id=person,
                kind=enrollment_pb2.CERTIFICATE_KIND_CHRONIC,
                diagnoses=[CERTIFIED_DIAGNOSIS],
                applied_on=from_date(date(earlier, month, 1)),
                health_centre="丁河镇卫生院",
            ),
            metadata=INTERNAL,
        )
    answer = stub.DecideCertificateBatch(
        enrollment_pb2.DecideCertificateBatchRequest(
            region=XIXIA,
            month=f"{earlier}-{month:02d}",
            decided_on=from_date(date(earlier, month + 1, 1)),
        ),
        metadata=INTERNAL,
    )
    assert answer.batch.approved_count == len(persons), answer
