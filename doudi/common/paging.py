"""Paging as AIP-158 describes it: ``page_size`` and opaque ``page_token`` keysets."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

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
