"""Reading what a hospital sends: the body (JSON, bounded) and the bill in it.

The visit is read by :func:`doudi.core.cases.parse_visit`, the reader ``doudi
calc`` uses, so a bill gets the same errors, with the same field paths, here
and on the command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request

from doudi.common.visits import visit_to_proto
from doudi.core.cases import load_json, parse_visit
from doudi.core.errors import InvalidInput
from doudi.core.identity import read_resident_id
from doudi.settlement.v1 import settlement_pb2
from gateway.problems import Problem

JSON_MEDIA_TYPE = "application/json"
BILL_FIELDS = ("person_id", "visit")
BILL_OPTIONAL = ("pay_from_personal_account",)


@dataclass(frozen=True, slots=True)
class Bill:
    """A bill as the settlement service takes it: the person and the checked visit."""

    person_id: str
    visit: settlement_pb2.Visit
    pay_from_personal_account: bool = False
    """The employee agrees that their personal account pays the self-pay."""


async def read_json(request: Request, limit: int) -> Any:
    """The body as strict JSON; 415 unless it is JSON, 413 as soon as it passes ``limit``
    bytes (declared or streamed), 400 unless it parses."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != JSON_MEDIA_TYPE:
        raise Problem(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            f"send the body as {JSON_MEDIA_TYPE}",
            headers={"Accept": JSON_MEDIA_TYPE},
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks = []
    size = 0
    async for chunk in request.stream():  # chunked bodies declare no length: count them
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    try:
        return load_json(b"".join(chunks).decode("utf-8"))
    except UnicodeDecodeError:
        raise Problem(400, "MALFORMED_JSON", "the body is not UTF-8 text") from None
    except InvalidInput as error:
        raise Problem(400, "MALFORMED_JSON", str(error), "Malformed JSON") from None


def _too_large(limit: int) -> Problem:
    return Problem(413, "PAYLOAD_TOO_LARGE", f"the body is larger than {limit} bytes")


def read_bill(data: Any, hospital_level: int) -> Bill:
    """``{"person_id": ..., "visit": {...}}`` checked; ``hospital_level`` is the calling
    hospital's registered level (0, a pharmacy, has none)."""
    if not isinstance(data, dict):
        raise InvalidInput("", "expected a JSON object with person_id and visit")
    for key in data:
        if key not in BILL_FIELDS and key not in BILL_OPTIONAL:
            known = ", ".join((*BILL_FIELDS, *BILL_OPTIONAL))
            raise InvalidInput(key, f"unknown field (expected {known})")
    for key in BILL_FIELDS:
        if data.get(key) is None:
            raise InvalidInput(key, "missing required field")
    resident = read_resident_id(data["person_id"], "person_id")
    visit = parse_visit(data["visit"], "visit", hospital_level=hospital_level or None)
    pay = data.get("pay_from_personal_account", False)
    if not isinstance(pay, bool):
        raise InvalidInput("pay_from_personal_account", "true or false")
    return Bill(resident.number, visit_to_proto(visit), pay)
