"""Settlement's contract has messages of its own for what it keeps of a person (the
coverage enrollment sends, the statuses the datashare hub sends), with the owners' field
numbers, field types and enum values, so that what either sender puts on the wire means
the same to settlement. Assistance likewise keeps its own copies of the vocabularies of
the settlements it is sent (visit types, statuses), with settlement's numbers."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.descriptor import FieldDescriptor

from doudi.assistance.v1 import assistance_pb2
from doudi.common.enums import (
    AGENCIES,
    ASSISTANCE_AGENCIES,
    ASSISTANCE_STATUSES,
    ASSISTANCE_VISIT_TYPES,
    CERTIFICATE_KINDS,
    EMPLOYMENTS,
    REGISTRATION_KINDS,
    SCHEMES,
    SETTLEMENT_AGENCIES,
    SETTLEMENT_CERTIFICATE_KINDS,
    SETTLEMENT_EMPLOYMENTS,
    SETTLEMENT_REGISTRATION_KINDS,
    SETTLEMENT_SCHEMES,
    SETTLEMENT_STATUSES,
    SETTLEMENT_TIERS,
    STATUSES,
    TIERS,
)
from doudi.common.protos import EnumCodes
from doudi.datashare.v1 import datashare_pb2
from doudi.enrollment.v1 import enrollment_pb2
from doudi.settlement.v1 import settlement_pb2


@pytest.mark.parametrize(
    ("owners", "settlements"),
    [
        (SCHEMES, SETTLEMENT_SCHEMES),
        (EMPLOYMENTS, SETTLEMENT_EMPLOYMENTS),
        (TIERS, SETTLEMENT_TIERS),
        (STATUSES, SETTLEMENT_STATUSES),
        (AGENCIES, SETTLEMENT_AGENCIES),
        (SETTLEMENT_STATUSES, ASSISTANCE_STATUSES),
        (AGENCIES, ASSISTANCE_AGENCIES),
        (EnumCodes(settlement_pb2.VisitType, "VISIT_TYPE_"), ASSISTANCE_VISIT_TYPES),
        (CERTIFICATE_KINDS, SETTLEMENT_CERTIFICATE_KINDS),
        (REGISTRATION_KINDS, SETTLEMENT_REGISTRATION_KINDS),
    ],
    ids=[
        "scheme",
        "employment",
        "tier",
        "status",
        "agency",
        "status (assistance)",
        "agency (assistance)",
        "visit type (assistance)",
        "certificate kind",
        "registration kind",
    ],
)
def test_every_value_an_owner_sends_is_the_same_code_to_settlement(
    owners: EnumCodes, settlements: EnumCodes
) -> None:
    sent = {name: number for name, number in owners.enum.items() if number}
    read = {name: number for name, number in settlements.enum.items() if number}
    assert read == sent
    for number in sent.values():
        assert settlements.code(number, "field") == owners.code(number, "field")


@pytest.mark.parametrize(
    ("owners", "settlements"),
    [
        (enrollment_pb2.Enrolment, settlement_pb2.Enrolment),
        (datashare_pb2.StatusPeriod, settlement_pb2.StatusPeriod),
        (datashare_pb2.StatusPeriod, assistance_pb2.StatusPeriod),
        (enrollment_pb2.Certificate, settlement_pb2.Certificate),
        (enrollment_pb2.Registration, settlement_pb2.Registration),
    ],
    ids=[
        "enrolment",
        "status period",
        "status period (assistance)",
        "certificate",
        "registration",
    ],
)
def test_settlements_fields_have_the_owners_numbers_and_types(
    owners: Any, settlements: Any
) -> None:
    theirs = owners.DESCRIPTOR.fields_by_name
    for field in settlements.DESCRIPTOR.fields:
        owner = theirs[field.name]
        assert (field.number, field.type) == (owner.number, owner.type), field.name
        if field.type == FieldDescriptor.TYPE_ENUM:
            assert field.enum_type.values_by_name.keys() == owner.enum_type.values_by_name.keys()
