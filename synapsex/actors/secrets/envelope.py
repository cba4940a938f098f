"""Envelope encryption of one secret version: a fresh AES-256-GCM data key encrypts the value,
and the master key seals (wraps) the data key.

Both layers bind the row: the value's associated data and the data key's sealing context name
the tenant, the secret, the version and the version row's id. A ciphertext or wrapped key copied
to another row (or tenant) does not open there, and neither does a row restored after its secret
was deleted and put again (a new row id). A master key rotation re-seals the wrapped data key
(:meth:`MasterKey.reseal`); the ciphertext is never touched.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from synapsex.config import MasterKey, SealError

_NONCE_BYTES = 12
_FORMAT = "synapsex-secret-v1"


@dataclass(frozen=True, slots=True)
class VersionRow:
    """What names one stored version: everything bound into its encryption."""

    tenant_id: str
    name: str
    version: int
    version_id: str

    def data_key_context(self) -> str:
        """The master key context of the version's wrapped data key."""
        return f"secret-data-key:{self.tenant_id}/{self.name}/{self.version}/{self.version_id}"

    def associated_data(self) -> bytes:
        return "\x00".join(
            (_FORMAT, self.tenant_id, self.name, str(self.version), self.version_id)
        ).encode()


def seal_value(master: MasterKey, value: str, row: VersionRow) -> tuple[str, str]:
    """``(wrapped data key, ciphertext)`` for ``value`` stored as ``row``."""
    data_key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(data_key).encrypt(nonce, value.encode("utf-8"), row.associated_data())
    wrapped = master.seal(data_key, context=row.data_key_context())
    return wrapped, base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def open_value(master: MasterKey, wrapped: str, ciphertext: str, row: VersionRow) -> str:
    """The value stored as ``row``; :class:`SealError` when the wrapped key or the ciphertext
    does not open for this row (moved, altered, or under a master key not in the ring)."""
    data_key = master.open(wrapped, context=row.data_key_context())
    try:
        data = base64.urlsafe_b64decode(ciphertext.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError):
        raise SealError("the stored ciphertext is not base64url", reason="malformed") from None
    try:
        plain = AESGCM(data_key).decrypt(
            data[:_NONCE_BYTES], data[_NONCE_BYTES:], row.associated_data()
        )
    except (InvalidTag, ValueError):
        raise SealError(
            "the stored ciphertext does not open for this row: moved or altered",
            reason="not-authentic",
        ) from None
    try:
        return plain.decode("utf-8")
    except UnicodeDecodeError:
        raise SealError("the stored value is not UTF-8 text", reason="not-text") from None
