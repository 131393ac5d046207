"""The demo data ``doudi run`` loads on start: a Xixia county hospital and a poor patient.

Loaded through the services' own APIs, as an operator and an agency would, and
idempotent (every create answers the stored record when it is there), so
loading it on every start changes nothing after the first. The README lists it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Final

import grpc

from doudi.common.protos import from_date
from doudi.datashare.v1 import datashare_pb2, datashare_pb2_grpc
from doudi.enrollment.v1 import enrollment_pb2, enrollment_pb2_grpc
from doudi.settlement.v1 import settlement_pb2, settlement_pb2_grpc


@dataclass(frozen=True)
class DemoHospital:
    hospital_id: str
    name: str
    region: str
    level: int
    api_key: str


@dataclass(frozen=True)
class DemoPerson:
    person_id: str
    name: str
    household_id: str
    region: str
    premium_fen: int


HOSPITALS = (
    DemoHospital("xixia-county-2", "西峡县示范二级医院", "411323", 2, "demo-xixia-2"),
    DemoHospital("xixia-township-1", "西峡县示范乡镇卫生院", "411323", 1, "demo-xixia-1"),
)

# The person of examples/xixia-inpatient-level2.case.json, registered poor
# since 2016 (asserted by the poverty office), and a neighbour with no status yet,
# to show a status applying at the next settlement.
REGISTERED_POOR = DemoPerson("411323195003150014", "张建国", "411323-0001", "411323", 40000)
NEIGHBOUR = DemoPerson("411323196208120024", "李桂兰", "411323-0002", "411323", 40000)
PERSONS = (REGISTERED_POOR, NEIGHBOUR)

# The personal premium: 400 yuan, assumed (the national minimum personal contribution
# to resident insurance in 2025); the assistance fund pays it for the poor.

# The agencies' demo API keys, which `doudi run` gives the datashare hub (as
# DOUDI_AGENCY_KEYS) unless that is set: known to everyone who reads this file, so the
# hub accepts them only with DOUDI_ENVIRONMENT=local (DEMO_KEY_PREFIX,
# doudi/common/settings.py).
DEMO_AGENCY_KEYS: Final = {
    "demo-civil-affairs": "civil_affairs",
    "demo-poverty-office": "poverty_office",
    "demo-trade-union": "trade_union",
    "demo-veteran-cadre-bureau": "veteran_cadre_bureau",
    "demo-disabled-persons-federation": "disabled_persons_federation",
    "demo-veterans-affairs": "veterans_affairs",
}
POVERTY_OFFICE_KEY = "demo-poverty-office"
REGISTERED_POOR_SINCE = date(2016, 1, 1)


def load(
    *,
    enrollment: grpc.Channel,
    datashare: grpc.Channel,
    settlement: grpc.Channel,
    internal_token: str,
    year: int,
) -> None:
    """Register the demo hospitals and persons, enrol the persons for ``year``, and have
    the poverty office assert the first one's registered-poor status."""
    internal = (("authorization", f"Bearer {internal_token}"),)
    settlements = settlement_pb2_grpc.SettlementServiceStub(settlement)
    for hospital in HOSPITALS:
        settlements.CreateHospital(
            settlement_pb2.CreateHospitalRequest(
                hospital=settlement_pb2.Hospital(
                    hospital_id=hospital.hospital_id,
                    name=hospital.name,
                    region=hospital.region,
                    level=hospital.level,
                ),
                api_key=hospital.api_key,
            ),
            metadata=internal,
        )
    register = enrollment_pb2_grpc.EnrollmentServiceStub(enrollment)
    for person in PERSONS:
        register.CreatePerson(
            enrollment_pb2.CreatePersonRequest(
                person=enrollment_pb2.Person(
                    person_id=person.person_id,
                    name=person.name,
                    household_id=person.household_id,
                    region=person.region,
                )
            ),
            metadata=internal,
        )
        poor = person is REGISTERED_POOR
        register.CreateEnrolment(
            enrollment_pb2.CreateEnrolmentRequest(
                enrolment=enrollment_pb2.Enrolment(
                    person_id=person.person_id,
                    year=year,
                    scheme=enrollment_pb2.SCHEME_RESIDENT,
                    premium_fen=person.premium_fen,
                    # The poor are enrolled with the premium paid by the assistance fund.
                    premium_payer=enrollment_pb2.PREMIUM_PAYER_ASSISTANCE_FUND
                    if poor
                    else enrollment_pb2.PREMIUM_PAYER_PERSON,
                )
            ),
            metadata=internal,
        )
    hub = datashare_pb2_grpc.DatashareServiceStub(datashare)
    hub.AssertStatus(
        datashare_pb2.AssertStatusRequest(
            person_id=REGISTERED_POOR.person_id,
            household_id=REGISTERED_POOR.household_id,
            status=datashare_pb2.STATUS_REGISTERED_POOR,
            valid_from=from_date(REGISTERED_POOR_SINCE),
            reference="XX-FPB-2016-0001",
        ),
        metadata=(("authorization", f"Bearer {POVERTY_OFFICE_KEY}"),),
    )
