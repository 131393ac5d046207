"""How the console links to a person's page without the identity number in the address.

An address stays in browser histories, proxies' and servers' access logs and the
Referer of the next request; a role that sees identity numbers masked must not find
them whole there either. So a person's page is ``/console/persons/<reference>``, the
reference the identity number sealed with AES-GCM under a key derived from
``DOUDI_CONSOLE_SECRET`` (a fresh nonce each time): only a gateway of the deployment
can open it, and a reference altered or made up opens nothing (404). A number typed
into the search form is sent in the body of a POST, never in an address.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES: Final = 12
_LABEL: Final = b"doudi-console person reference v1"


class PersonReferences:
    """Seals identity numbers into references and opens them again."""

    def __init__(self, secret: str) -> None:
        key = hashlib.sha256(_LABEL + b"\0" + secret.encode()).digest()
        self._aead = AESGCM(key)

    def seal(self, person_id: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, person_id.encode(), _LABEL)
        return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def open(self, reference: str) -> str | None:
        """The identity number ``reference`` holds; None for anything this deployment did
        not seal."""
        if len(reference) > 200:
            return None
        try:
            raw = base64.urlsafe_b64decode(reference + "=" * (-len(reference) % 4))
            if len(raw) <= NONCE_BYTES:
                return None
            opened = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _LABEL)
            return opened.decode()
        except (InvalidTag, binascii.Error, ValueError):
            return None
