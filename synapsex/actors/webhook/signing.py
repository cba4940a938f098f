"""Standard Webhooks signatures (symmetric ``v1`` scheme) for outgoing deliveries.

The spec (standard-webhooks v1.0.0) signs exactly ``{webhook-id}.{webhook-timestamp}.{body}``
with HMAC-SHA256, keyed with the base64-decoded secret (``whsec_`` + base64), and sends
``v1,<base64 MAC>`` entries, space-separated, in ``webhook-signature``. During a secret rotation
one delivery carries a signature per secret, the current one first; a receiver accepts the
delivery if any entry matches one of its secrets.

Design choices:

* Only signing lives here. Verification is the receiver's job; our tests verify with the
  ``standardwebhooks`` reference library, so a receiver using it is known to accept us.
* The body is the exact bytes sent. Callers serialise once and pass the same bytes to
  :func:`webhook_headers` and to the HTTP request.
* Errors in what the service itself stores (a malformed secret, an id with a ``.``) are
  programming errors and raise :class:`ValueError`/:class:`TypeError`; :func:`check_secret`
  turns a user-supplied secret's problem into ``INVALID_INPUT``.
* Secrets never appear in an error message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets as _random
from collections.abc import Sequence

from synapsex.contracts.errors import InvalidInput

SECRET_PREFIX = "whsec_"
#: random bytes in a secret we create
SECRET_BYTES = 32
#: the spec's bounds for a symmetric secret, decoded
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
MAX_MSG_ID_LENGTH = 256

# printable ASCII without space and without '.', which separates the signed parts
_MSG_ID_RE = re.compile(r"[!-\-/-~]+")


def new_secret() -> str:
    """A fresh endpoint secret: ``whsec_`` + standard base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(_random.token_bytes(SECRET_BYTES)).decode("ascii")


def check_secret(secret: str, field: str = "secret") -> None:
    """Check a secret a user supplies; raises :class:`InvalidInput` naming ``field``."""
    try:
        _key(secret)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(field, str(exc)) from None


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64 HMAC-SHA256>`` entry for one secret.

    Raises :class:`ValueError` or :class:`TypeError` for a malformed secret, id or timestamp.
    """
    key = _key(secret)
    mac = hmac.new(key, _signed_content(msg_id, timestamp, body), hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


def signature_header(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one entry per secret, current secret first.

    ``secrets`` is the current secret followed by those still valid after a rotation; a
    secret given twice is signed once.
    """
    if isinstance(secrets, str):  # a str is a Sequence[str]: sign with it, not with each letter
        raise TypeError("secrets must be a sequence of secrets, not one secret")
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    unique = list(dict.fromkeys(secrets))
    return " ".join(signature(s, msg_id, timestamp, body) for s in unique)


def webhook_headers(
    secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes, user_agent: str
) -> dict[str, str]:
    """The headers of one delivery attempt, lower-case as the spec writes them.

    ``msg_id`` stays the same across retries of an event (the receiver dedupes on it);
    ``timestamp`` is the attempt's Unix time in seconds.
    """
    if not user_agent or any(c in user_agent for c in "\r\n\0"):
        raise ValueError("user_agent must be a non-empty single-line value")
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets, msg_id, timestamp, body),
        "content-type": "application/json",
        "user-agent": user_agent,
    }


# ---------------------------------------------------------------------------- helpers


def _key(secret: str) -> bytes:
    """The HMAC key of a secret; missing base64 padding is tolerated, as the reference does."""
    if not isinstance(secret, str):
        raise TypeError("secret must be a str")
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"secret must start with {SECRET_PREFIX!r}")
    encoded = secret[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"secret must be {SECRET_PREFIX!r} followed by standard base64") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(
            f"secret must encode {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, not {len(key)}"
        )
    return key


def _signed_content(msg_id: str, timestamp: int, body: bytes) -> bytes:
    if not isinstance(msg_id, str) or not _MSG_ID_RE.fullmatch(msg_id):
        raise ValueError("msg_id must be printable ASCII without spaces or '.'")
    if len(msg_id) > MAX_MSG_ID_LENGTH:
        raise ValueError(f"msg_id must be at most {MAX_MSG_ID_LENGTH} characters")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise TypeError("timestamp must be a non-negative int (Unix seconds)")
    if not isinstance(body, bytes):
        raise TypeError("body must be the exact bytes sent")
    return f"{msg_id}.{timestamp}.".encode() + body
