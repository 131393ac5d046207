"""API keys: made by the platform, kept only as SHA-256 digests, rotated with two alive at once.

A hospital's keys (the settlement service) and an agency's (the datashare hub) are
rows of a table of their own: the key's digest, its owner, when it was made and when it
retires (NULL: not retiring). The key itself is shown once, when it is made, and stored
nowhere; a caller's key is looked up by its digest, so the time a lookup takes says
nothing about how much of a key a guess got right.

A rotation makes a new key and gives the owner's older keys a retirement time, ``overlap``
from now: both work meanwhile, so the hospital's or the agency's systems can switch
without a gap. Ending the rotation retires the older keys at once. A retired key is
refused from the moment it retires, also where its owner is cached
(:class:`KeyCache`).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

import sqlalchemy
from sqlalchemy import Table, and_, literal, or_, select

from doudi.core.errors import InvalidInput

KEY_BYTES = 32
"""A key's randomness: 256 bits, 43 characters of URL-safe base64."""
MAX_OVERLAP = timedelta(days=90)
"""The longest two keys of one owner stay alive together."""
FINGERPRINT_LENGTH = 12

Owner = TypeVar("Owner")


def new_key() -> str:
    """A fresh key (256 random bits), to be shown once and stored only as its digest."""
    return secrets.token_urlsafe(KEY_BYTES)


def digest(key: str) -> str:
    """The key's SHA-256 digest, in hex: what is stored and looked up."""
    return hashlib.sha256(key.encode()).hexdigest()


def fingerprint(key_digest: str) -> str:
    """What lists show of a key: the first characters of its digest (never the key)."""
    return key_digest[:FINGERPRINT_LENGTH]


def utc(moment: datetime) -> datetime:
    """A stored moment as UTC (SQLite gives it back without its time zone)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def alive(retires_at: datetime | None, now: datetime) -> bool:
    """Whether a key that retires at ``retires_at`` (None: never) still works ``now``."""
    return retires_at is None or utc(retires_at) > now


@dataclass(frozen=True, slots=True)
class StoredKey:
    """What is known of a stored key: never the key."""

    fingerprint: str
    created_at: datetime
    retires_at: datetime | None


def check_overlap(overlap: timedelta) -> timedelta:
    if overlap < timedelta(0) or overlap > MAX_OVERLAP:
        raise ValueError(f"an overlap from 0 to {MAX_OVERLAP.days} days")
    return overlap


def overlap_seconds(seconds: int, field: str = "overlap_seconds") -> timedelta:
    """A rotation's overlap as a request gives it, checked: 0 to 90 days."""
    try:
        return check_overlap(timedelta(seconds=seconds))
    except (ValueError, OverflowError):
        raise InvalidInput(field, f"from 0 to {int(MAX_OVERLAP.total_seconds())}") from None


def add_key(
    connection: sqlalchemy.Connection,
    table: Table,
    owner: dict[str, Any],
    key_digest: str,
    now: datetime,
) -> None:
    """Store a new key's digest for ``owner`` (``{owner_column: value}``)."""
    connection.execute(
        table.insert().values(key_sha256=key_digest, created_at=now, retires_at=None, **owner)
    )


def rotate(
    connection: sqlalchemy.Connection,
    table: Table,
    owner: dict[str, Any],
    key_digest: str,
    now: datetime,
    overlap: timedelta,
) -> datetime:
    """Store a new key for ``owner`` and retire its other keys ``overlap`` from now (those
    retiring sooner keep their time); answers when the older keys retire."""
    retires = now + check_overlap(overlap)
    column = table.c.retires_at
    connection.execute(
        table.update()
        .where(_owned(table, owner))
        .where(or_(column.is_(None), column > literal(retires, column.type)))
        .values(retires_at=retires)
    )
    add_key(connection, table, owner, key_digest, now)
    return retires


def end_rotation(
    connection: sqlalchemy.Connection, table: Table, owner: dict[str, Any], now: datetime
) -> int:
    """Retire now every key of ``owner`` but its newest; answers how many were retired."""
    newest = connection.execute(
        select(table.c.key_sha256)
        .where(_owned(table, owner))
        .order_by(table.c.created_at.desc(), table.c.key_sha256)
        .limit(1)
    ).scalar_one_or_none()
    if newest is None:
        return 0
    column = table.c.retires_at
    result = connection.execute(
        table.update()
        .where(_owned(table, owner))
        .where(table.c.key_sha256 != newest)
        .where(or_(column.is_(None), column > literal(now, column.type)))
        .values(retires_at=now)
    )
    return int(result.rowcount)


def stored_keys(
    connection: sqlalchemy.Connection, table: Table, owner: dict[str, Any], now: datetime
) -> list[StoredKey]:
    """The owner's keys still alive ``now``, oldest first."""
    rows = connection.execute(
        select(table.c.key_sha256, table.c.created_at, table.c.retires_at)
        .where(_owned(table, owner))
        .order_by(table.c.created_at, table.c.key_sha256)
    ).all()
    return [
        StoredKey(
            fingerprint(row.key_sha256),
            utc(row.created_at),
            None if row.retires_at is None else utc(row.retires_at),
        )
        for row in rows
        if alive(row.retires_at, now)
    ]


def _owned(table: Table, owner: dict[str, Any]) -> Any:
    return and_(*(table.c[column] == value for column, value in owner.items()))


class KeyCache(Generic[Owner]):
    """Owners found by their key's digest, remembered for ``ttl`` seconds, and never past
    the key's retirement: a retired key is refused from that moment, cached or not.

    Only keys found are remembered: unknown keys (mistyped, or guessed by the thousand)
    must not fill the memory, and a key made a moment ago must work at once.
    """

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._found: dict[str, tuple[Owner, datetime | None, float]] = {}

    def get(self, key_digest: str) -> Owner | None:
        cached = self._found.get(key_digest)
        if cached is None:
            return None
        owner, retires_at, until = cached
        if until <= time.monotonic() or not alive(retires_at, datetime.now(UTC)):
            del self._found[key_digest]
            return None
        return owner

    def put(self, key_digest: str, owner: Owner, retires_at: datetime | None) -> None:
        self._found[key_digest] = (owner, retires_at, time.monotonic() + self._ttl)

    def forget(self, keep: Callable[[Owner], bool] | None = None) -> None:
        """Forget every key (or those whose owner ``keep`` refuses): a rotation changed
        what they stand for."""
        if keep is None:
            self._found.clear()
            return
        for key_digest, (owner, _, _) in list(self._found.items()):
            if not keep(owner):
                del self._found[key_digest]
