"""Visits between the core's :class:`Visit` and the settlement contract's ``Visit`` message.

The gateway reads a hospital's JSON with :func:`doudi.core.cases.parse_visit`
(the reader ``doudi calc`` uses) and sends :func:`visit_to_proto`; the
settlement service turns what it receives back with :func:`visit_from_proto`,
which checks it with the same :meth:`Visit.check` rules, so a gRPC caller and
an HTTP caller get the same errors with the same field names. Assistance's own
``Visit`` (a bill paid outside the window) goes through the same functions, and
:func:`visit_document` writes a visit back in docs/case-format.md's shape.
"""

from __future__ import annotations

from typing import Any, NoReturn

from doudi.assistance.v1 import assistance_pb2
from doudi.common.protos import EnumCodes, from_date, optional_date, to_date
from doudi.core.codes import INPATIENT
from doudi.core.errors import InvalidInput
from doudi.core.model import Item, Visit, new_visit
from doudi.settlement.v1 import settlement_pb2

VISIT_TYPES = EnumCodes(settlement_pb2.VisitType, "VISIT_TYPE_")
ITEM_CLASSES = EnumCodes(settlement_pb2.ItemClass, "ITEM_CLASS_", code=str)

MAX_VISIT_ID_LENGTH = 64
MAX_ITEMS = 5000


def visit_to_proto(visit: Visit) -> settlement_pb2.Visit:
    message = settlement_pb2.Visit(
        visit_id=visit.id,
        visit_type=VISIT_TYPES.value(visit.visit_type),
        out_of_area=visit.out_of_area,
        referred=visit.referred,
        diagnoses=visit.diagnoses,
        items=[
            settlement_pb2.Item(
                code=item.code,
                item_class=ITEM_CLASSES.value(item.item_class),
                amount_fen=item.amount_fen,
                over_limit_fen=item.over_limit_fen,
            )
            for item in visit.items
        ],
    )
    if visit.visit_type == INPATIENT:
        assert visit.admitted is not None
        message.admitted.CopyFrom(from_date(visit.admitted))
        message.discharged.CopyFrom(from_date(visit.settles_on))
    else:
        message.date.CopyFrom(from_date(visit.settles_on))
    return message


def visit_from_proto(message: settlement_pb2.Visit, *, hospital_level: int | None) -> Visit:
    """The visit a message describes, checked; errors name fields under ``visit``."""
    try:
        return _visit(message, hospital_level)
    except InvalidInput as error:
        raise error.under("visit") from None


def _visit(message: settlement_pb2.Visit, hospital_level: int | None) -> Visit:
    if not message.visit_id.strip():
        raise InvalidInput("id", "required: the hospital's visit number")
    if len(message.visit_id) > MAX_VISIT_ID_LENGTH:
        raise InvalidInput("id", f"at most {MAX_VISIT_ID_LENGTH} characters")
    visit_type = VISIT_TYPES.code(message.visit_type, "type")
    if visit_type == INPATIENT:
        if message.HasField("date"):
            raise InvalidInput("date", "inpatient visits give admitted and discharged, not date")
        admitted = optional_date(message, "admitted", "admitted")
        if admitted is None:
            raise InvalidInput("admitted", "required for inpatient visits")
        settles_on = to_date(message.discharged, "discharged")
    else:
        if message.HasField("admitted") or message.HasField("discharged"):
            field = "admitted" if message.HasField("admitted") else "discharged"
            raise InvalidInput(field, f"{visit_type} visits give date, not admitted and discharged")
        admitted = None
        settles_on = to_date(message.date, "date")
    if not message.items:
        raise InvalidInput("items", "expected a non-empty list of line items")
    if len(message.items) > MAX_ITEMS:
        raise InvalidInput("items", f"at most {MAX_ITEMS} line items")
    classes = ITEM_CLASSES.by_value
    items = []
    # A field's path is written only for its error (every settlement reads its items).
    for item in message.items:
        code = item.code
        item_class = classes.get(item.item_class)
        if item_class is None or not code.strip():
            _item_error(message.items)
        items.append(_new_item(Item, (code, item_class, item.amount_fen, item.over_limit_fen)))
    visit = new_visit(
        message.visit_id,
        visit_type,
        settles_on,
        tuple(items),
        hospital_level or None,
        admitted,
        message.out_of_area,
        message.referred,
        tuple(code.strip().upper() for code in message.diagnoses),
    )
    visit.check()
    return visit


_new_item = tuple.__new__
"""An :class:`Item` from a tuple of its fields, past its keyword-handling ``__new__``."""


def _item_error(items: Any) -> NoReturn:
    """The first item without a code or with an unset or unknown class, as InvalidInput."""
    for index, item in enumerate(items):
        where = f"items[{index}]"
        if not item.code.strip():
            raise InvalidInput(f"{where}.code", "required")
        ITEM_CLASSES.code(item.item_class, f"{where}.class")
    raise AssertionError("no item in error")


# Assistance's contract has its own Visit, Item and ItemClass with settlement's field
# numbers and enum values (tests/test_assistance_bills.py checks them): the same bytes
# mean the same visit, so the one reader and its checks serve both.


def assistance_visit_to_proto(visit: Visit) -> assistance_pb2.Visit:
    """A visit as assistance's ``Visit`` (a bill paid outside the window)."""
    return assistance_pb2.Visit.FromString(visit_to_proto(visit).SerializeToString())


def assistance_visit_from_proto(
    message: assistance_pb2.Visit, *, hospital_level: int | None
) -> Visit:
    """The visit assistance's ``Visit`` describes, checked as :func:`visit_from_proto`
    checks settlement's; errors name fields under ``visit``."""
    return visit_from_proto(
        settlement_pb2.Visit.FromString(message.SerializeToString()),
        hospital_level=hospital_level,
    )


def visit_document(visit: Visit) -> dict[str, Any]:
    """The visit in docs/case-format.md's shape (what :func:`parse_visit` reads back)."""
    document: dict[str, Any] = {"id": visit.id, "type": visit.visit_type}
    if visit.hospital_level is not None:
        document["hospital_level"] = visit.hospital_level
    if visit.visit_type == INPATIENT:
        assert visit.admitted is not None
        document["admitted"] = visit.admitted.isoformat()
        document["discharged"] = visit.settles_on.isoformat()
    else:
        document["date"] = visit.settles_on.isoformat()
    document["out_of_area"] = visit.out_of_area
    document["referred"] = visit.referred
    if visit.diagnoses:
        document["diagnoses"] = list(visit.diagnoses)
    document["items"] = [
        {
            "code": item.code,
            "class": item.item_class,
            "amount_fen": item.amount_fen,
            "over_limit_fen": item.over_limit_fen,
        }
        for item in visit.items
    ]
    return document
