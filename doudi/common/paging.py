"""Paging as AIP-158 describes it: ``page_size`` and opaque ``page_token`` keysets."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import sqlalchemy

from doudi.core.errors import InvalidInput

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def page_size(requested: int, field: str = "page_size") -> int:
    """The page size to use: the default for 0, at most ``MAX_PAGE_SIZE``."""
    if requested < 0:
        raise InvalidInput(field, f"must not be negative, got {requested}")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_token(position: list[Any]) -> str:
    """An opaque token for the keyset ``position`` of the last row of a page."""
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def decode_token(token: str, length: int, field: str = "page_token") -> list[Any] | None:
    """The keyset a token holds, None for the first page, InvalidInput for a token we did not make."""
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        position = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        position = None
    if not isinstance(position, list) or len(position) != length:
        raise InvalidInput(field, "not a page token this service made")
    return position


def keyset_page(
    connection: sqlalchemy.Connection,
    query: sqlalchemy.Select[Any],
    key: sqlalchemy.ColumnElement[Any],
    size: int,
    token: str,
    *,
    newest_first: bool = False,
) -> tuple[list[sqlalchemy.Row[Any]], str]:
    """One page of ``query`` in ``key`` order (descending when ``newest_first``) of at most
    ``size`` rows (0: the default), from after the row ``token`` names, and the token of the
    next page ("" at the end)."""
    limit = page_size(size)
    position = decode_token(token, 1)
    if position is not None:
        (after,) = position
        wanted = str if isinstance(key.type, sqlalchemy.String) else int
        if type(after) is not wanted:
            raise InvalidInput("page_token", "not a page token this service made")
        query = query.where(key < after if newest_first else key > after)
    ordered = query.order_by(key.desc() if newest_first else key).limit(limit + 1)
    rows = list(connection.execute(ordered))
    if len(rows) <= limit:
        return rows, ""
    return rows[:limit], encode_token([rows[limit - 1]._mapping[key]])


def runs_page(
    connection: sqlalchemy.Connection,
    runs: sqlalchemy.Table,
    *,
    region: str | None,
    year: int | None,
    size: int,
    token: str,
) -> tuple[list[sqlalchemy.Row[Any]], str]:
    """One page of a table of runs (a ``run_id``, a ``region`` and a ``year``), newest
    first, of the region and the year if given."""
    query = sqlalchemy.select(runs)
    if region is not None:
        query = query.where(runs.c.region == region)
    if year is not None:
        query = query.where(runs.c.year == year)
    return keyset_page(connection, query, runs.c.run_id, size, token, newest_first=True)
