"""Outpatient certificates (门诊慢特病): a person applies at the township health centre,
the region's monthly batch decides, the certificate reaches settlement with the person's
coverage (enrollment's outbox), and settlement pays the chronic and major-disease
outpatient layers only for a diagnosis a certificate valid on the visit's day covers.

Real enrollment and settlement servers on each backend (tests/outpatient.py). The
figures, worked by hand from the packs:

- Xixia (xixia-2017), a resident with no status, a chronic outpatient visit (门诊慢性病) of
  1,000 yuan of class A items for hypertension (I10) at a level-2 hospital: with a
  certificate basic insurance pays 65%, 650 yuan; without, the visit is settled as general
  outpatient, which Xixia's pack does not pay: the patient pays 1,000.
- Tianjin (tianjin-2017), a major-disease outpatient visit (门诊特殊病) for uraemia
  (N18.5) at a level-2 hospital not of the public-hospital reform: certified, the
  residents' outpatient cover pays 50% above its yearly deductible; settled as general
  outpatient there, nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

import grpc
import pytest
from alembic import command
from google.type import date_pb2

from doudi.common.migrations import config
from doudi.common.protos import from_date
from doudi.enrollment.v1 import enrollment_pb2
from doudi.settlement.v1 import settlement_pb2
from services.enrollment.server import SPEC as ENROLLMENT
from services.enrollment.tables import coverage_deliveries
from tests.outpatient import (
    TIANJIN,
    XIXIA,
    Services,
    apply,
    certificates,
    decide,
    fixtures,
    new_person,
    refusal,
    settle_outpatient,
)
from tests.services import INTERNAL
from tests.support import business_day, run_cli
from tests.test_assistance_backfill import ONE, TWO, insert, on_record, queued

CHRONIC = settlement_pb2.VISIT_TYPE_OUTPATIENT_CHRONIC
MAJOR = settlement_pb2.VISIT_TYPE_OUTPATIENT_MAJOR
SPECIAL = enrollment_pb2.CERTIFICATE_KIND_SPECIAL
PENDING = enrollment_pb2.CERTIFICATE_APPLICATION_STATE_PENDING
APPROVED = enrollment_pb2.CERTIFICATE_APPLICATION_STATE_APPROVED
REJECTED = enrollment_pb2.CERTIFICATE_APPLICATION_STATE_REJECTED
INVALID = grpc.StatusCode.INVALID_ARGUMENT
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION

# Each test decides its own month of a past year of its own: batches are once per region
# and month on the module's servers.


all_services, services = fixtures("certificates")


def applications(
    services: Services, region: str, month: str
) -> list[enrollment_pb2.CertificateApplication]:
    answer = services.enrollment_stub().ListCertificateApplications(
        enrollment_pb2.ListCertificateApplicationsRequest(region=region, month=month),
        metadata=INTERNAL,
    )
    return list(answer.applications)


def test_a_chronic_visit_pays_the_chronic_layer_only_after_the_batch_certified_it(
    services: Services,
) -> None:
    person = new_person(services, XIXIA, 2025)
    applied = apply(services, person, date(2025, 3, 10), "I10", "I11.9")
    # Two codes of one disease (hypertension, I10-I15) count once.
    assert list(applied.diseases) == ["hypertension"]
    assert applied.state == PENDING

    before = settle_outpatient(services, XIXIA, person, CHRONIC, date(2025, 3, 20), 1000, "I10")
    assert before["basic"] == 0
    assert before["self_pay"] == 100_000

    answer = decide(services, XIXIA, "2025-03", date(2025, 4, 1))
    assert not answer.replayed
    assert (answer.batch.approved_count, answer.batch.certificate_count) >= (1, 1)

    (certificate,) = certificates(services, person)
    assert certificate.disease == "hypertension"
    assert certificate.disease_name == "高血压病"
    assert certificate.kind == enrollment_pb2.CERTIFICATE_KIND_CHRONIC
    # Xixia: three years from the batch's day, to the day before the anniversary.
    assert certificate.valid_from == from_date(date(2025, 4, 1))
    assert certificate.valid_to == from_date(date(2028, 3, 31))

    after = settle_outpatient(services, XIXIA, person, CHRONIC, date(2025, 4, 2), 1000, "I10")
    assert after["basic"] == 65_000
    assert after["self_pay"] == 35_000
    # A diagnosis the certificate does not cover pays no chronic layer.
    other = settle_outpatient(services, XIXIA, person, CHRONIC, date(2025, 4, 3), 1000, "E11")
    assert other["basic"] == 0


def test_a_certificate_expiring_mid_year_pays_to_its_last_day_and_not_after(
    services: Services,
) -> None:
    person = new_person(services, TIANJIN, 2025, 2026)
    apply(services, person, date(2025, 5, 6), "N18.5", kind=SPECIAL)
    decide(services, TIANJIN, "2025-05", date(2025, 6, 2))
    (certificate,) = certificates(services, person)
    # Tianjin: one year.
    assert certificate.valid_from == from_date(date(2025, 6, 2))
    assert certificate.valid_to == from_date(date(2026, 6, 1))

    last_day = settle_outpatient(services, TIANJIN, person, MAJOR, date(2026, 6, 1), 2000, "N18.5")
    day_after = settle_outpatient(services, TIANJIN, person, MAJOR, date(2026, 6, 2), 2000, "N18.5")
    assert last_day["basic"] > 0
    assert last_day["self_pay"] < 200_000
    # The year's deductible is met, yet the visit after the last day pays nothing: a
    # general outpatient visit at a level-2 hospital outside the reform.
    assert day_after["basic"] == 0
    assert day_after["self_pay"] == 200_000


def test_the_monthly_batch_decides_the_months_pending_applications_once(
    services: Services,
) -> None:
    approved, rejected, later = (new_person(services, XIXIA, 2024) for _ in range(3))
    first = apply(services, approved, date(2024, 6, 3), "E11", "J45")
    second = apply(services, rejected, date(2024, 6, 28), "I25")
    # Applied in July: left for July's batch.
    third = apply(services, later, date(2024, 7, 1), "K74")

    answer = decide(
        services, XIXIA, "2024-06", date(2024, 7, 5), [(second.application_id, "材料不全")]
    )
    assert answer.batch.month == "2024-06"
    assert (
        answer.batch.approved_count,
        answer.batch.rejected_count,
        answer.batch.certificate_count,
    ) == (1, 1, 2)
    states = {a.application_id: a for a in applications(services, XIXIA, "2024-06")}
    assert states[first.application_id].state == APPROVED
    assert states[first.application_id].batch_month == "2024-06"
    assert states[second.application_id].state == REJECTED
    assert states[second.application_id].reason == "材料不全"
    assert [c.disease for c in certificates(services, approved)] == ["diabetes", "asthma"]
    assert certificates(services, rejected) == []

    # Replayed: the stored batch, nothing decided (July's application stays pending, even
    # if the replay names other rejections).
    again = decide(services, XIXIA, "2024-06", date(2024, 7, 9), [(third.application_id, "x")])
    assert again.replayed
    assert again.batch == answer.batch
    (still,) = applications(services, XIXIA, "2024-07")
    assert still.state == PENDING
    assert len(certificates(services, approved)) == 2

    july = decide(services, XIXIA, "2024-07", date(2024, 8, 1))
    assert (july.batch.approved_count, july.batch.certificate_count) == (1, 1)
    assert [c.disease for c in certificates(services, later)] == ["cirrhosis"]


def test_concurrent_batches_of_a_month_decide_it_once(services: Services) -> None:
    persons = [new_person(services, TIANJIN, 2023) for _ in range(3)]
    for person in persons:
        apply(services, person, date(2023, 9, 12), "D66", kind=SPECIAL)
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(lambda _: decide(services, TIANJIN, "2023-09", date(2023, 10, 8)), range(4))
        )
    assert sorted(a.replayed for a in answers) == [False, True, True, True]
    assert {a.batch.certificate_count for a in answers} == {3}
    for person in persons:
        assert len(certificates(services, person)) == 1


def test_one_application_at_a_time_and_a_retry_answers_the_stored_one(
    services: Services,
) -> None:
    person = new_person(services, XIXIA, 2023)
    with ThreadPoolExecutor(4) as pool:
        retries = list(
            pool.map(
                lambda _: apply(
                    services, person, date(2023, 2, 1), "J44", request_id=f"r-{person}"
                ),
                range(4),
            )
        )
    assert len({a.application_id for a in retries}) == 1
    code, reason, field = refusal(
        lambda: apply(services, person, date(2023, 2, 2), "G40", request_id=f"r2-{person}")
    )
    assert (code, reason, field) == (PRECONDITION, "APPLICATION_PENDING", "person_id")
    # Another content under the same request id.
    code, _, field = refusal(
        lambda: apply(services, person, date(2023, 2, 1), "G40", request_id=f"r-{person}")
    )
    assert (code, field) == (grpc.StatusCode.ALREADY_EXISTS, "request_id")


def test_a_disease_is_renewed_only_in_the_last_90_days_of_its_certificate(
    services: Services,
) -> None:
    person = new_person(services, TIANJIN, 2022, 2023)
    apply(services, person, date(2022, 1, 10), "D61", kind=SPECIAL)
    decide(services, TIANJIN, "2022-01", date(2022, 2, 1))  # valid to 2023-01-31
    code, reason, field = refusal(
        lambda: apply(services, person, date(2022, 11, 1), "D61", kind=SPECIAL)
    )
    assert (code, reason, field) == (PRECONDITION, "CERTIFICATE_STILL_VALID", "diagnoses[0]")
    renewed = apply(services, person, date(2022, 11, 2), "D61", kind=SPECIAL)
    assert renewed.state == PENDING


def test_a_region_whose_pack_certifies_no_disease_takes_no_application(
    services: Services,
) -> None:
    person = new_person(services, XIXIA, 2022)
    # Xixia lists chronic and special diseases; Tianjin special ones only.
    tianjin = new_person(services, TIANJIN, 2022)
    code, reason, field = refusal(lambda: apply(services, tianjin, date(2022, 3, 1), "I10"))
    assert (code, reason, field) == (PRECONDITION, "NO_CERTIFIED_DISEASES", "kind")
    assert certificates(services, person) == []


def test_a_month_not_over_is_not_decided(services: Services) -> None:
    today = business_day()
    code, reason, field = refusal(
        lambda: decide(services, XIXIA, f"{today.year}-{today.month:02d}", today)
    )
    assert (code, reason, field) == (PRECONDITION, "MONTH_NOT_OVER", "month")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            lambda r: setattr(r.applied_on, "day", 30) or setattr(r.applied_on, "month", 2),
            "applied_on",
        ),
        (
            lambda r: r.applied_on.CopyFrom(from_date(business_day() + timedelta(days=1))),
            "applied_on",
        ),
        (lambda r: r.diagnoses.append("J45"), "diagnoses"),  # a third disease
        (lambda r: r.diagnoses.append("Z99.9"), "diagnoses[2]"),  # no disease of the pack
        (lambda r: r.diagnoses.append("hypertension"), "diagnoses[2]"),  # no ICD-10 code
        (lambda r: r.ClearField("diagnoses"), "diagnoses"),
        (lambda r: setattr(r, "kind", 0), "kind"),
        (lambda r: setattr(r, "request_id", ""), "request_id"),
        (lambda r: setattr(r, "person_id", "411323"), "person_id"),
        (lambda r: setattr(r, "health_centre", ""), "health_centre"),
    ],
    ids=[
        "impossible date",
        "date in the future",
        "a third disease",
        "unknown code",
        "malformed code",
        "no code",
        "no kind",
        "no request id",
        "bad person",
        "no health centre",
    ],
)
def test_bad_applications_are_refused_naming_the_field_and_change_nothing(
    services: Services,
    change: Callable[[enrollment_pb2.ApplyForCertificateRequest], object],
    field: str,
) -> None:
    person = new_person(services, XIXIA, 2021)
    request = enrollment_pb2.ApplyForCertificateRequest(
        request_id=f"bad-{person}",
        person_id=person,
        kind=enrollment_pb2.CERTIFICATE_KIND_CHRONIC,
        diagnoses=["I10", "E11"],
        applied_on=from_date(date(2021, 4, 1)),
        health_centre="丁河镇卫生院",
    )
    change(request)
    code, _, named = refusal(
        lambda: services.enrollment_stub().ApplyForCertificate(request, metadata=INTERNAL)
    )
    assert (code, named) == (INVALID, field)
    # Nothing recorded: the same request id with good content is a new application.
    good = apply(services, person, date(2021, 4, 1), "I10", request_id=f"bad-{person}")
    assert good.state == PENDING


@pytest.mark.parametrize(
    ("request_of", "field"),
    [
        (
            lambda: enrollment_pb2.DecideCertificateBatchRequest(region=XIXIA, month="2020-13"),
            "month",
        ),
        (
            lambda: enrollment_pb2.DecideCertificateBatchRequest(region=XIXIA, month="2020/10"),
            "month",
        ),
        (
            lambda: enrollment_pb2.DecideCertificateBatchRequest(region="999999", month="2020-10"),
            "region",
        ),
        (
            lambda: enrollment_pb2.DecideCertificateBatchRequest(
                region=XIXIA, month="2020-10", decided_on=from_date(date(2020, 10, 31))
            ),
            "decided_on",
        ),
        (
            lambda: enrollment_pb2.DecideCertificateBatchRequest(
                region=XIXIA, month="2020-10", decided_on=date_pb2.Date(year=2020, month=11, day=31)
            ),
            "decided_on",
        ),
        (
            lambda: enrollment_pb2.DecideCertificateBatchRequest(
                region=XIXIA,
                month="2020-10",
                decided_on=from_date(business_day() + timedelta(days=1)),
            ),
            "decided_on",
        ),
        (
            lambda: enrollment_pb2.DecideCertificateBatchRequest(
                region=XIXIA,
                month="2020-10",
                decided_on=from_date(date(2020, 11, 2)),
                rejections=[enrollment_pb2.CertificateRejection(application_id=1)],
            ),
            "rejections[0].reason",
        ),
        (
            lambda: enrollment_pb2.DecideCertificateBatchRequest(
                region=XIXIA,
                month="2020-10",
                decided_on=from_date(date(2020, 11, 2)),
                rejections=[
                    enrollment_pb2.CertificateRejection(application_id=987654, reason="无")
                ],
            ),
            "rejections[0].application_id",
        ),
    ],
    ids=[
        "month 13",
        "month format",
        "unknown region",
        "decided within the month",
        "impossible decision date",
        "decided in the future",
        "rejection without reason",
        "rejection of no application of the batch",
    ],
)
def test_bad_batches_are_refused_naming_the_field_and_decide_nothing(
    services: Services,
    request_of: Callable[[], enrollment_pb2.DecideCertificateBatchRequest],
    field: str,
) -> None:
    person = new_person(services, XIXIA, 2020)
    applied = apply(services, person, date(2020, 10, 12), "A15")
    code, _, named = refusal(
        lambda: services.enrollment_stub().DecideCertificateBatch(request_of(), metadata=INTERNAL)
    )
    assert (code, named) == (INVALID, field)
    pending = {a.application_id: a.state for a in applications(services, XIXIA, "2020-10")}
    assert pending[applied.application_id] == PENDING
    assert certificates(services, person) == []


def test_the_migration_queues_every_person_for_settlement_above_the_version_it_holds(
    database_url: str,
) -> None:
    """Settlement holds each person at 1 + enrolments from before; migration 0006 queues
    every person at 2 + enrolments (no certificate or registration yet), which replaces that
    copy with one carrying the (empty) lists: every person's visits are checked."""
    cfg = config(database_url, ENROLLMENT.migrations)
    command.upgrade(cfg, "0005")
    on_record(database_url)
    # As the sender left it: ONE's last change delivered, TWO's still queued.
    insert(
        database_url,
        coverage_deliveries,
        [
            {
                "subscriber": "settlement",
                "person_id": TWO,
                "version": 1,
                "queued_at": datetime.now(UTC),
            }
        ],
    )

    command.upgrade(cfg, "head")

    assert queued(database_url, coverage_deliveries, "settlement") == {ONE: 4, TWO: 2}
    assert queued(database_url, coverage_deliveries, "datashare") == {}


def doudi(
    capsys: pytest.CaptureFixture[str], services: Services, *argv: str
) -> tuple[int, str, str]:
    """``doudi ...`` in this process, against the module's enrollment service."""
    try:
        return run_cli([*argv, "--enrollment", services.enrollment.address], capsys)
    except SystemExit as exit:
        captured = capsys.readouterr()
        return int(exit.code or 0), captured.out, captured.err


def test_the_clerk_applies_and_the_bureau_decides_from_the_command_line(
    services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    person = new_person(services, XIXIA, 2019)
    apply_argv = [
        "certificates", "apply", "--person", person, "--kind", "chronic",
        "--diagnosis", "I10", "--diagnosis", "E11.9", "--applied-on", "2019-05-06",
        "--health-centre", "丁河镇卫生院",
    ]  # fmt: skip
    code, out, err = doudi(capsys, services, *apply_argv, "--json")
    assert (code, err) == (0, "")
    applied = json.loads(out)
    assert (applied["state"], applied["diseases"]) == ("pending", ["hypertension", "diabetes"])
    code, out, _ = doudi(capsys, services, *apply_argv, "--json")  # again: the same one
    assert json.loads(out)["application_id"] == applied["application_id"]

    code, out, _ = doudi(
        capsys, services, "certificates", "applications", "--region", XIXIA, "--month", "2019-05"
    )
    assert code == 0
    assert "待审批" in out
    assert person not in out  # masked for the clerk

    code, out, err = doudi(
        capsys, services, "certificates", "batch", "--region", XIXIA, "--month", "2019-05",
        "--decided-on", "2019-06-03",
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert "发证" in out
    code, out, _ = doudi(capsys, services, "certificates", "list", "--person", person, "--json")
    assert [(c["disease"], c["valid_from"], c["valid_to"]) for c in json.loads(out)] == [
        ("hypertension", "2019-06-03", "2022-06-02"),
        ("diabetes", "2019-06-03", "2022-06-02"),
    ]
    # Bad input: exit 2, naming the field.
    code, _, err = doudi(
        capsys, services, "certificates", "apply", "--person", person, "--kind", "chronic",
        "--diagnosis", "Z99", "--applied-on", "2019-07-01", "--health-centre", "丁河镇卫生院",
    )  # fmt: skip
    assert code == 2
    assert "diagnoses[0]" in err
    assert person not in err


def test_registrations_from_the_command_line(
    services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    person = new_person(services, XIXIA, 2019)
    add = ["registrations", "add", "--person", person, "--kind", "relocated", "--region", TIANJIN]
    code, out, err = doudi(capsys, services, *add, "--from", "2019-03-01", "--json")
    assert (code, err) == (0, "")
    made = json.loads(out)
    assert (made["kind"], made["region"], made["valid_to"]) == ("relocated", TIANJIN, None)
    code, out, _ = doudi(
        capsys, services, "registrations", "end", str(made["registration_id"]), "--to", "2019-09-30"
    )
    assert code == 0
    assert "2019-09-30" in out
    code, out, _ = doudi(capsys, services, "registrations", "list", "--person", person, "--json")
    assert [(r["valid_to"], r["ended"]) for r in json.loads(out)] == [("2019-09-30", True)]
    code, _, err = doudi(capsys, services, *add, "--from", "2019-03-01", "--to", "2019-01-01")
    assert code == 2
    assert "valid_to" in err
