"""The agencies' API keys, kept by the hub as SHA-256 digests (doudi.common.keys).

Each system of an agency that calls the hub (the civil-affairs office of a county, the
poverty office's roster exporter...) is a *client*: its agency, the pooling regions its
keys serve (none named: every region the hub has a pack of) and a label the bureau gives
it. Its keys are made by the hub and shown once (``doudi admin agency add``,
``rotate-key``); a rotation keeps the older key working for an overlap, ending the
rotation retires it at once. With ``DOUDI_ENVIRONMENT=local`` the keys of
``DOUDI_AGENCY_KEYS`` (``doudi run``'s demo keys) are stored here at start-up, each as a
client of its own.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy
from sqlalchemy import select

from doudi.common import keys, paging
from doudi.common.errors import NotFound
from doudi.core.errors import InvalidInput
from doudi.core.names import check_visible
from doudi.core.statuses import AGENCIES
from services.datashare.console_users import served_regions
from services.datashare.settings import AgencyKey
from services.datashare.tables import agency_clients, agency_keys

MAX_LABEL_LENGTH = 128


@dataclass(frozen=True, slots=True)
class Client:
    client_id: str
    agency: str
    regions: tuple[str, ...]  # () for every region
    label: str
    created_at: datetime

    @property
    def credential(self) -> AgencyKey:
        """What a key of this client authenticates: its agency and regions."""
        return AgencyKey(agency=self.agency, regions=frozenset(self.regions) or None)


def checked_client(
    *, agency: str, regions: list[str], label: str, known_regions: frozenset[str]
) -> tuple[str, tuple[str, ...], str]:
    """A new client's agency, regions and label, checked (INVALID_ARGUMENT naming the field)."""
    code = agency.strip()
    if code not in AGENCIES:
        raise InvalidInput("agency", f"one of {', '.join(sorted(AGENCIES))}")
    shown = label.strip()
    if len(shown) > MAX_LABEL_LENGTH:
        raise InvalidInput("label", f"at most {MAX_LABEL_LENGTH} characters")
    check_visible(shown, "label")
    return code, served_regions(regions, known_regions), shown


def create_client(
    *,
    connection: sqlalchemy.Connection,
    agency: str,
    regions: tuple[str, ...],
    label: str,
    api_key_sha256: str,
    now: datetime,
    client_id: str | None = None,
) -> Client:
    """A new client with its first key (its digest)."""
    client = Client(
        client_id or f"{agency}-{secrets.token_hex(3)}", agency, regions, label, keys.utc(now)
    )
    connection.execute(
        agency_clients.insert().values(
            client_id=client.client_id,
            agency=agency,
            regions=" ".join(regions),
            label=label,
            created_at=now,
        )
    )
    keys.add_key(connection, agency_keys, {"client_id": client.client_id}, api_key_sha256, now)
    return client


def rotate(
    *,
    connection: sqlalchemy.Connection,
    client_id: str,
    api_key_sha256: str,
    now: datetime,
    overlap: timedelta,
) -> tuple[Client, datetime]:
    """Give the client a new key; its older keys retire ``overlap`` from now."""
    client = _locked_client(connection, client_id)
    retires = keys.rotate(
        connection, agency_keys, {"client_id": client_id}, api_key_sha256, now, overlap
    )
    return client, retires


def end_rotation(
    *, connection: sqlalchemy.Connection, client_id: str, now: datetime
) -> tuple[Client, int]:
    """Retire now every key of the client but its newest."""
    client = _locked_client(connection, client_id)
    return client, keys.end_rotation(connection, agency_keys, {"client_id": client_id}, now)


def keys_of(
    *, connection: sqlalchemy.Connection, client_id: str, now: datetime
) -> list[keys.StoredKey]:
    return keys.stored_keys(connection, agency_keys, {"client_id": client_id}, now)


def list_clients(
    *, connection: sqlalchemy.Connection, page_size: int, page_token: str, now: datetime
) -> tuple[list[tuple[Client, list[keys.StoredKey]]], str]:
    """A page of the clients in id order, each with its live keys."""
    rows, token = paging.keyset_page(
        connection, select(agency_clients), agency_clients.c.client_id, page_size, page_token
    )
    return [
        (
            _client(row),
            keys.stored_keys(connection, agency_keys, {"client_id": row.client_id}, now),
        )
        for row in rows
    ], token


def by_key(
    *, connection: sqlalchemy.Connection, api_key_sha256: str, now: datetime
) -> tuple[AgencyKey, datetime | None] | None:
    """What the key with this digest authenticates and when it retires, if it is alive."""
    row = connection.execute(
        select(agency_clients, agency_keys.c.retires_at)
        .join(agency_keys, agency_keys.c.client_id == agency_clients.c.client_id)
        .where(agency_keys.c.key_sha256 == api_key_sha256)
    ).one_or_none()
    if row is None or not keys.alive(row.retires_at, now):
        return None
    return _client(row).credential, row.retires_at


def seed(*, connection: sqlalchemy.Connection, given: dict[str, AgencyKey], now: datetime) -> int:
    """Store the keys of ``DOUDI_AGENCY_KEYS`` (local only) not stored yet, each as a client
    ``<agency>-<its digest's first 6 digits>``; answers how many were new."""
    new = 0
    for key, credential in given.items():
        digest = keys.digest(key)
        stored = connection.execute(
            select(agency_keys.c.key_sha256).where(agency_keys.c.key_sha256 == digest)
        ).first()
        if stored is not None:
            continue
        create_client(
            connection=connection,
            agency=credential.agency,
            regions=tuple(sorted(credential.regions or ())),
            label="DOUDI_AGENCY_KEYS",
            api_key_sha256=digest,
            now=now,
            client_id=f"{credential.agency}-{digest[:6]}",
        )
        new += 1
    return new


def _locked_client(connection: sqlalchemy.Connection, client_id: str) -> Client:
    row = connection.execute(
        select(agency_clients).where(agency_clients.c.client_id == client_id).with_for_update()
    ).one_or_none()
    if row is None:
        raise NotFound(f"no agency client {client_id!r}", field="client_id")
    return _client(row)


def _client(row: Any) -> Client:
    return Client(
        row.client_id,
        row.agency,
        tuple(row.regions.split()),
        row.label,
        keys.utc(row.created_at),
    )
