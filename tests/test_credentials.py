"""Credentials: keys kept only as digests and rotated, TLS and mutual TLS, production start-up.

Real services (subprocesses) on SQLite and PostgreSQL; the operator's side through the
``doudi admin`` command as an operator runs it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import sqlalchemy

from doudi.cli import demo
from doudi.common.grpc_client import serving_status, sync_channel
from doudi.common.settings import LOCAL_INTERNAL_TOKEN
from doudi.common.tls import TlsSettings
from doudi.datashare.v1 import datashare_pb2, datashare_pb2_grpc
from doudi.settlement.v1 import settlement_pb2, settlement_pb2_grpc
from tests.conftest import new_database
from tests.platform import demo_platforms, load_demo, running_platform
from tests.services import (
    INTERNAL,
    ROOT,
    RunningService,
    bearer,
    running_service,
    service_env,
)
from tests.support import business_day
from tests.tls_support import Authority, Certificate, authority

HOSPITAL = settlement_pb2.Hospital(
    hospital_id="H-ROTATE", name="西峡县人民医院", region="411323", level=2
)
# The key cache holds for an hour here: a retired key must be refused all the same.
LONG_CACHE = {"DOUDI_HOSPITAL_CACHE_SECONDS": "3600", "DOUDI_AGENCY_KEY_CACHE_SECONDS": "3600"}
SHORT_OVERLAP_HOURS = "0.003"  # 10.8 seconds: the commands themselves take a while


def doudi(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``doudi ARGS`` as an operator runs it, with the platform's token."""
    full = {key: value for key, value in os.environ.items() if not key.startswith("DOUDI_")}
    full.update(DOUDI_INTERNAL_TOKEN=LOCAL_INTERNAL_TOKEN, **env)
    return subprocess.run(
        [sys.executable, "-m", "doudi", *args],
        cwd=ROOT,
        env=full,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def made_key(output: str) -> str:
    """The key a command printed once."""
    match = re.search(r"shown this once:\s*(\S+)", output)
    assert match, output
    return match.group(1)


def code_of(call: Any) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def wait_until_refused(call: Any, seconds: float = 40.0) -> float:
    """Seconds until ``call`` is refused as UNAUTHENTICATED."""
    started = time.monotonic()
    while code_of(call) != grpc.StatusCode.UNAUTHENTICATED:
        assert time.monotonic() - started < seconds, "the retired key still works"
        time.sleep(0.1)
    return time.monotonic() - started


# --- hospitals' keys -----------------------------------------------------------------------


@pytest.fixture
def settlement(database_url: str, tmp_path: Path) -> Iterator[RunningService]:
    with running_service("settlement", tmp_path, database_url=database_url, env=LONG_CACHE) as svc:
        yield svc


def test_a_hospital_key_rotates_with_two_alive_and_the_old_one_stops_when_it_retires(
    settlement: RunningService,
) -> None:
    env = {"DOUDI_SETTLEMENT_ADDRESS": settlement.address}
    added = doudi(
        "admin", "hospital", "add", "H-ROTATE", "--name", "西峡县人民医院", "--region", "411323",
        "--level", "2", env=env,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    first = made_key(added.stdout)
    stub = settlement_pb2_grpc.SettlementServiceStub(settlement.channel())

    def as_key(key: str) -> Any:
        return lambda: stub.GetHospital(settlement_pb2.GetHospitalRequest(), metadata=bearer(key))

    assert (
        stub.GetHospital(settlement_pb2.GetHospitalRequest(), metadata=bearer(first)).hospital
        == HOSPITAL
    )

    # A rotation with the default day of overlap: both keys work and are listed (by
    # fingerprint only); ended by hand, the older key stops at once.
    rotated = doudi("admin", "hospital", "rotate-key", "H-ROTATE", env=env)
    assert rotated.returncode == 0, rotated.stderr
    second = rotated.stdout.splitlines()[1].strip()
    assert second != first
    assert len(second) >= 43
    assert code_of(as_key(first)) == grpc.StatusCode.OK
    assert code_of(as_key(second)) == grpc.StatusCode.OK
    listed = doudi("admin", "hospital", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    (row,) = [line for line in listed.stdout.splitlines() if line.startswith("H-ROTATE")]
    fingerprints = [hashlib.sha256(key.encode()).hexdigest()[:12] for key in (first, second)]
    assert all(fingerprint in row for fingerprint in fingerprints), row
    assert first not in listed.stdout
    assert second not in listed.stdout
    ended = doudi("admin", "hospital", "end-rotation", "H-ROTATE", env=env)
    assert ended.returncode == 0, ended.stderr
    assert "1 older key(s) retired now" in ended.stdout
    assert code_of(as_key(first)) == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(as_key(second)) == grpc.StatusCode.OK
    again = doudi("admin", "hospital", "end-rotation", "H-ROTATE", env=env)
    assert "0 older key(s) retired now" in again.stdout

    # A rotation with a short overlap: the older key stops when it retires, although the
    # service remembers it for an hour.
    third_run = doudi(
        "admin", "hospital", "rotate-key", "H-ROTATE", "--overlap", SHORT_OVERLAP_HOURS, env=env
    )
    assert third_run.returncode == 0, third_run.stderr
    third = third_run.stdout.splitlines()[1].strip()
    assert code_of(as_key(third)) == grpc.StatusCode.OK
    wait_until_refused(as_key(second))
    assert code_of(as_key(third)) == grpc.StatusCode.OK


def test_rotation_refuses_bad_input_and_changes_nothing(settlement: RunningService) -> None:
    env = {"DOUDI_SETTLEMENT_ADDRESS": settlement.address}
    stub = settlement_pb2_grpc.SettlementServiceStub(settlement.channel())
    key = stub.CreateHospital(
        settlement_pb2.CreateHospitalRequest(hospital=HOSPITAL), metadata=INTERNAL
    ).api_key
    for overlap in (-1, 90 * 24 * 3600 + 1, 2**62):
        with pytest.raises(grpc.RpcError) as refused:
            stub.RotateHospitalKey(
                settlement_pb2.RotateHospitalKeyRequest(
                    hospital_id="H-ROTATE", overlap_seconds=overlap
                ),
                metadata=INTERNAL,
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    unknown = doudi("admin", "hospital", "rotate-key", "H-NOBODY", env=env)
    assert unknown.returncode == 1
    assert "H-NOBODY" in unknown.stderr
    negative = doudi("admin", "hospital", "rotate-key", "H-ROTATE", "--overlap", "-1", env=env)
    assert negative.returncode == 2
    # A hospital may not rotate its own key, nor read the keys.
    for call in (
        lambda: stub.RotateHospitalKey(
            settlement_pb2.RotateHospitalKeyRequest(hospital_id="H-ROTATE"), metadata=bearer(key)
        ),
        lambda: stub.EndHospitalKeyRotation(
            settlement_pb2.EndHospitalKeyRotationRequest(hospital_id="H-ROTATE"),
            metadata=bearer(key),
        ),
        lambda: stub.ListHospitals(
            settlement_pb2.ListHospitalsRequest(with_keys=True), metadata=bearer(key)
        ),
    ):
        assert code_of(call) == grpc.StatusCode.PERMISSION_DENIED
    listed = stub.ListHospitals(
        settlement_pb2.ListHospitalsRequest(with_keys=True), metadata=INTERNAL
    )
    (keys,) = listed.keys
    assert [info.fingerprint for info in keys.keys] == [
        hashlib.sha256(key.encode()).hexdigest()[:12]
    ]
    assert not keys.keys[0].HasField("retire_time")


# --- agencies' keys ------------------------------------------------------------------------


@pytest.fixture
def hub(database_url: str, tmp_path: Path) -> Iterator[RunningService]:
    with running_service("datashare", tmp_path, database_url=database_url, env=LONG_CACHE) as svc:
        yield svc


def test_an_agency_key_is_made_rotated_and_retired_through_the_hub(hub: RunningService) -> None:
    env = {"DOUDI_DATASHARE_ADDRESS": hub.address}
    added = doudi(
        "admin", "agency", "add", "poverty_office", "--region", "411323",
        "--label", "西峡县乡村振兴局", env=env,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    client_id = re.search(r"registered (poverty_office-[0-9a-f]{6})", added.stdout)
    assert client_id, added.stdout
    first = made_key(added.stdout)
    stub = datashare_pb2_grpc.DatashareServiceStub(hub.channel())

    def as_key(key: str) -> Any:
        return lambda: stub.ListRosterSubmissions(
            datashare_pb2.ListRosterSubmissionsRequest(), metadata=bearer(key)
        )

    assert code_of(as_key(first)) == grpc.StatusCode.OK
    # The demo keys of DOUDI_AGENCY_KEYS (local) are stored as clients too.
    assert code_of(as_key("demo-civil-affairs")) == grpc.StatusCode.OK

    client = client_id.group(1)
    rotated = doudi("admin", "agency", "rotate-key", client, env=env)
    assert rotated.returncode == 0, rotated.stderr
    second = rotated.stdout.splitlines()[1].strip()
    assert code_of(as_key(first)) == grpc.StatusCode.OK
    assert code_of(as_key(second)) == grpc.StatusCode.OK
    listed = doudi("admin", "agency", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert first not in listed.stdout
    assert second not in listed.stdout
    (row,) = [line for line in listed.stdout.splitlines() if line.startswith(client)]
    assert "411323" in row
    assert "西峡县乡村振兴局" in row
    for key in (first, second):
        assert hashlib.sha256(key.encode()).hexdigest()[:12] in row
    assert any(line.startswith("civil_affairs-") for line in listed.stdout.splitlines())
    ended = doudi("admin", "agency", "end-rotation", client, env=env)
    assert "1 older key(s) retired now" in ended.stdout, ended.stderr
    assert code_of(as_key(first)) == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(as_key(second)) == grpc.StatusCode.OK
    relisted = doudi("admin", "agency", "list", env=env).stdout
    (row,) = [line for line in relisted.splitlines() if line.startswith(client)]
    assert hashlib.sha256(first.encode()).hexdigest()[:12] not in row  # retired: not listed

    third_run = doudi(
        "admin", "agency", "rotate-key", client, "--overlap", SHORT_OVERLAP_HOURS, env=env
    )
    third = third_run.stdout.splitlines()[1].strip()
    assert code_of(as_key(third)) == grpc.StatusCode.OK
    wait_until_refused(as_key(second))
    assert code_of(as_key(third)) == grpc.StatusCode.OK

    # Bad input: an unknown agency or region, an unknown client; an agency may not manage keys.
    assert doudi("admin", "agency", "add", "hospital", env=env).returncode == 2
    unknown_region = doudi("admin", "agency", "add", "trade_union", "--region", "999999", env=env)
    assert unknown_region.returncode == 2
    assert "999999" in unknown_region.stderr
    assert doudi("admin", "agency", "end-rotation", "trade_union-000000", env=env).returncode == 1
    assert (
        code_of(
            lambda: stub.RotateAgencyKey(
                datashare_pb2.RotateAgencyKeyRequest(client_id=client),
                metadata=bearer(third),
            )
        )
        == grpc.StatusCode.PERMISSION_DENIED
    )
    clients = stub.ListAgencyClients(datashare_pb2.ListAgencyClientsRequest(), metadata=INTERNAL)
    assert sum(client.agency == "trade_union" for client in clients.clients) == 1  # the demo's


# --- the internal token --------------------------------------------------------------------


def test_the_internal_token_rotates_by_digest(database_url: str, tmp_path: Path) -> None:
    new_token = doudi("admin", "token", "new", env={})
    assert new_token.returncode == 0
    token = re.search(r"token:\s+(\S+)", new_token.stdout)
    digest = re.search(r"digest:\s+([0-9a-f]{64})", new_token.stdout)
    assert token
    assert digest
    piped = doudi("admin", "token", "digest", env={}, stdin=token.group(1) + "\n")
    assert piped.stdout.strip() == digest.group(1)
    # Step 1 of a rotation: the new token's digest accepted beside the current token.
    env = {"DOUDI_ACCEPTED_INTERNAL_TOKEN_DIGESTS": json.dumps([digest.group(1)])}
    with running_service("settlement", tmp_path, database_url=database_url, env=env) as svc:
        stub = settlement_pb2_grpc.SettlementServiceStub(svc.channel())
        for presented in (LOCAL_INTERNAL_TOKEN, token.group(1)):
            stub.ListHospitals(settlement_pb2.ListHospitalsRequest(), metadata=bearer(presented))
        assert (
            code_of(
                lambda: stub.ListHospitals(
                    settlement_pb2.ListHospitalsRequest(), metadata=bearer(digest.group(1))
                )
            )
            == grpc.StatusCode.UNAUTHENTICATED
        )


# --- nothing secret in any table -----------------------------------------------------------

YEAR = business_day().year


@pytest.fixture(scope="module")
def demo_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with demo_platforms(tmp_path_factory, "credentials", YEAR) as on:
        yield on


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection")
def test_no_key_token_or_password_is_readable_from_any_table(
    backend: str, demo_platform: Any
) -> None:
    platform = demo_platform(backend)
    settlement = settlement_pb2_grpc.SettlementServiceStub(
        platform.services["settlement"].channel()
    )
    made = settlement.CreateHospital(
        settlement_pb2.CreateHospitalRequest(
            hospital=settlement_pb2.Hospital(
                hospital_id=f"H-SECRET-{backend}", name="secret", region="411323", level=1
            )
        ),
        metadata=INTERNAL,
    ).api_key
    hub = datashare_pb2_grpc.DatashareServiceStub(platform.services["datashare"].channel())
    agency_key = hub.CreateAgencyClient(
        datashare_pb2.CreateAgencyClientRequest(agency="trade_union"), metadata=INTERNAL
    ).api_key
    # Used once each, so that any cache or audit that would keep them has had the chance.
    assert platform.client(made).get(f"/v1/clearing?date={business_day()}").status_code == 200
    hub.ListRosterSubmissions(
        datashare_pb2.ListRosterSubmissionsRequest(), metadata=bearer(agency_key)
    )
    secrets = {
        made,
        agency_key,
        LOCAL_INTERNAL_TOKEN,
        *demo.DEMO_AGENCY_KEYS,
        *(hospital.api_key for hospital in demo.HOSPITALS),
        *(user.password for user in demo.DEMO_CONSOLE_USERS.values()),
    }
    cells = 0
    seen: set[str] = set()
    for name, service in platform.services.items():
        url = service.env.get("DOUDI_DATABASE_URL") or f"sqlite:///{platform.directory / name}.db"
        engine = sqlalchemy.create_engine(url)
        try:
            metadata = sqlalchemy.MetaData()
            metadata.reflect(engine)
            with engine.connect() as connection:
                for table in metadata.sorted_tables:
                    for row in connection.execute(sqlalchemy.select(table)):
                        seen.add(table.name)
                        for value in row:
                            text = str(value)
                            cells += 1
                            leaked = [secret for secret in secrets if secret in text]
                            assert not leaked, f"{name}.{table.name} holds a secret"
        finally:
            engine.dispose()
    # The demo's data was read, the keys' and passwords' tables among it.
    assert cells > 200
    assert {"hospital_keys", "agency_keys", "console_users"} <= seen


# --- TLS -----------------------------------------------------------------------------------


def tls_env(certificate: Certificate, ca: Path, **more: str) -> dict[str, str]:
    return {
        "DOUDI_TLS_CERT_FILE": str(certificate.cert),
        "DOUDI_TLS_KEY_FILE": str(certificate.key),
        "DOUDI_TLS_CA_FILE": str(ca),
        **more,
    }


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Authority, Path]:
    directory = tmp_path_factory.mktemp("tls")
    return authority(directory), directory


def health(address: str, tls: TlsSettings) -> str:
    with sync_channel(address, tls) as channel:
        return serving_status(channel, timeout=2)


def test_tls_serves_encrypted_and_refuses_a_plaintext_client(
    certificates: tuple[Authority, Path], tmp_path: Path
) -> None:
    ca, directory = certificates
    server = ca.issue(directory, "settlement")
    with running_service("settlement", tmp_path, env=tls_env(server, ca.ca)) as svc:
        assert "(TLS, client certificates: none)" in svc.log()
        trusted = TlsSettings(tls_ca_file=ca.ca)
        assert health(svc.address, trusted) == "SERVING"
        stub = settlement_pb2_grpc.SettlementServiceStub(sync_channel(svc.address, trusted))
        stub.ListHospitals(settlement_pb2.ListHospitalsRequest(), metadata=INTERNAL)
        assert health(svc.address, TlsSettings(tls=False)) == "UNAVAILABLE"
        # A client that trusts another authority does not connect either.
        stranger = authority(tmp_path / "stranger", "stranger-ca")
        assert health(svc.address, TlsSettings(tls_ca_file=stranger.ca)) == "UNAVAILABLE"


def test_mutual_tls_admits_only_clients_with_a_certificate_of_the_authority(
    certificates: tuple[Authority, Path], tmp_path: Path
) -> None:
    ca, directory = certificates
    server = ca.issue(directory, "datashare")
    client = ca.issue(directory, "agency-client")
    env = tls_env(server, ca.ca, DOUDI_TLS_CLIENT_AUTH="require")
    with running_service("datashare", tmp_path, env=env) as svc:
        assert "(TLS, client certificates: require)" in svc.log()
        with_certificate = TlsSettings(
            tls_ca_file=ca.ca, tls_cert_file=client.cert, tls_key_file=client.key
        )
        assert health(svc.address, with_certificate) == "SERVING"
        stub = datashare_pb2_grpc.DatashareServiceStub(sync_channel(svc.address, with_certificate))
        stub.ListRosterSubmissions(
            datashare_pb2.ListRosterSubmissionsRequest(), metadata=bearer("demo-civil-affairs")
        )
        assert health(svc.address, TlsSettings(tls_ca_file=ca.ca)) == "UNAVAILABLE"
        assert health(svc.address, TlsSettings(tls=False)) == "UNAVAILABLE"
        stranger = authority(tmp_path / "stranger", "stranger-ca")
        forged = stranger.issue(tmp_path / "stranger", "forged")
        assert (
            health(
                svc.address,
                TlsSettings(tls_ca_file=ca.ca, tls_cert_file=forged.cert, tls_key_file=forged.key),
            )
            == "UNAVAILABLE"
        )


def test_the_whole_platform_settles_over_mutual_tls(
    certificates: tuple[Authority, Path], tmp_path: Path
) -> None:
    """Every service serves TLS requiring client certificates, every process connects with
    its own: a settlement through the gateway reaches settlement, and its event assistance."""
    ca, directory = certificates
    shared = ca.issue(directory, "platform")
    env = tls_env(shared, ca.ca, DOUDI_TLS_CLIENT_AUTH="require")
    with running_platform(tmp_path, "sqlite", env=env) as platform:
        load_demo(platform, YEAR, console_users=False)
        client = platform.client(demo.HOSPITALS[0].api_key)
        answer = client.post(
            "/v1/settlements",
            headers={"Idempotency-Key": "tls-1"},
            json={
                "person_id": demo.REGISTERED_POOR.person_id,
                "visit": {
                    "id": "ZY-TLS-1",
                    "type": "inpatient",
                    "admitted": f"{YEAR}-01-02",
                    "discharged": f"{YEAR}-01-05",
                    "items": [{"code": "X01", "class": "A", "amount_fen": 100_000}],
                },
            },
        )
        assert answer.status_code == 201, answer.text
        for service in platform.services.values():
            assert "(TLS, client certificates: require)" in service.log()
            assert health(service.address, TlsSettings(tls=False)) == "UNAVAILABLE"
        assert httpx.get(f"{platform.base_url}/healthz").status_code == 200


# --- production start-up -------------------------------------------------------------------

REQUIRED = {
    "services.enrollment": "DOUDI_INTERNAL_TOKEN, DOUDI_DATABASE_URL, DOUDI_ASSISTANCE_ADDRESS, "
    "DOUDI_SETTLEMENT_ADDRESS, DOUDI_DATASHARE_ADDRESS, DOUDI_TLS_CERT_FILE and "
    "DOUDI_TLS_KEY_FILE (or DOUDI_GRPC_PLAINTEXT=true)",
    "services.datashare": "DOUDI_INTERNAL_TOKEN, DOUDI_DATABASE_URL, DOUDI_ASSISTANCE_ADDRESS, "
    "DOUDI_SETTLEMENT_ADDRESS, DOUDI_TLS_CERT_FILE and DOUDI_TLS_KEY_FILE (or "
    "DOUDI_GRPC_PLAINTEXT=true)",
    "services.settlement": "DOUDI_INTERNAL_TOKEN, DOUDI_DATABASE_URL, DOUDI_ASSISTANCE_ADDRESS, "
    "DOUDI_TLS_CERT_FILE and DOUDI_TLS_KEY_FILE (or DOUDI_GRPC_PLAINTEXT=true)",
    "services.assistance": "DOUDI_INTERNAL_TOKEN, DOUDI_DATABASE_URL, DOUDI_DATASHARE_ADDRESS, "
    "DOUDI_SETTLEMENT_ADDRESS, DOUDI_TLS_CERT_FILE and DOUDI_TLS_KEY_FILE (or "
    "DOUDI_GRPC_PLAINTEXT=true)",
    "gateway": "DOUDI_INTERNAL_TOKEN, DOUDI_SETTLEMENT_ADDRESS, DOUDI_ENROLLMENT_ADDRESS, "
    "DOUDI_DATASHARE_ADDRESS, DOUDI_ASSISTANCE_ADDRESS, DOUDI_CONSOLE_SECRET, "
    "DOUDI_TLS_CA_FILE (or DOUDI_GRPC_PLAINTEXT=true)",
}


@pytest.mark.parametrize("module", sorted(REQUIRED))
def test_production_start_up_names_every_setting_left_out(module: str, tmp_path: Path) -> None:
    env = service_env(tmp_path, None, {"DOUDI_ENVIRONMENT": "production"})
    for name in [key for key in env if key.endswith("_ADDRESS") or key == "DOUDI_AGENCY_KEYS"]:
        del env[name]
    started = subprocess.run(
        [sys.executable, "-m", module], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert started.returncode == 2
    assert started.stderr == (
        f"python -m {module}: error: DOUDI_ENVIRONMENT=production needs these set explicitly: "
        f"{REQUIRED[module]}\n"
    )


def test_in_production_a_hospital_key_is_made_by_the_platform_never_given(
    backend: str, tmp_path: Path
) -> None:
    with new_database(backend, tmp_path, "settlement") as url:
        env = {
            "DOUDI_ENVIRONMENT": "production",
            "DOUDI_INTERNAL_TOKEN": "p" * 32,
            "DOUDI_DATABASE_URL": url,
            "DOUDI_GRPC_PLAINTEXT": "true",
        }
        with running_service("settlement", tmp_path, database_url=url, env=env) as svc:
            stub = settlement_pb2_grpc.SettlementServiceStub(svc.channel())
            internal = bearer("p" * 32)
            with pytest.raises(grpc.RpcError) as refused:
                stub.CreateHospital(
                    settlement_pb2.CreateHospitalRequest(hospital=HOSPITAL, api_key="x" * 40),
                    metadata=internal,
                )
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "api_key" in (refused.value.details() or "")
            assert not stub.ListHospitals(
                settlement_pb2.ListHospitalsRequest(), metadata=internal
            ).hospitals
            made = stub.CreateHospital(
                settlement_pb2.CreateHospitalRequest(hospital=HOSPITAL), metadata=internal
            )
            assert len(made.api_key) >= 43
            assert (
                code_of(
                    lambda: stub.ListHospitals(
                        settlement_pb2.ListHospitalsRequest(), metadata=INTERNAL
                    )
                )
                == grpc.StatusCode.UNAUTHENTICATED
            )  # the development token is not this deployment's
