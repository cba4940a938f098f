"""Master key rotation: the message every service that seals values under the master key handles.

A rotation (``synapsex rotate-master-key``) puts a new key at the head of the ring; each sealing
service then re-wraps what it stored under an older key, one batch per ask, so nothing is left
that only an old key opens and the old key can be retired. Re-wrapping opens a token and seals it
again under the current key: the plaintext never leaves the service, and for envelope-encrypted
values (the secrets-service) only the wrapped data keys change, never the ciphertexts.

The runtime routes by message class, so each sealing service has its own subclass of
:class:`ResealValues`; :data:`RESEAL_MESSAGES` lists them for the command.
"""

from __future__ import annotations

from synapsex.contracts.common import check_text
from synapsex.contracts.errors import InvalidInput
from synapsex.contracts.message import Message, Reply

MAX_RESEAL_BATCH = 500


class ResealProgress(Reply):
    """One batch of a re-wrap pass. Counts are of stored tokens (a row may hold several)."""

    service: str
    #: the current key id every token is re-wrapped to
    key_id: str
    #: tokens looked at in this batch
    examined: int
    #: tokens sealed again under the current key
    resealed: int
    #: rows changed by someone else meanwhile (left alone; a next pass sees their new tokens)
    changed_meanwhile: int
    #: tokens that open under no key of the ring (sealed under a key not in it, or altered);
    #: they are logged by row, never by value
    unreadable: int
    #: pass as ``after`` for the next batch; ``None`` when the pass is done
    next_after: str | None


class ResealValues(Message, abstract=True):
    """Re-wrap a batch of the service's sealed values under the current master key: at most
    ``limit`` rows after the cursor ``after`` (``None``: from the start). Replies
    :class:`ResealProgress`. Each row is written with a conditional update (only if its
    tokens are still the ones read), so a concurrent change is never overwritten."""

    after: str | None = None
    limit: int = 200

    def validate(self) -> None:
        if not 1 <= self.limit <= MAX_RESEAL_BATCH:
            raise InvalidInput("limit", f"must be between 1 and {MAX_RESEAL_BATCH}")
        if self.after is not None:
            check_text(self.after, "after", max_length=200)


class ResealSecretValues(ResealValues, service="secrets-service"):
    """The secrets-service's wrapped data keys (one per secret version)."""


class ResealWebhookSecrets(ResealValues, service="webhook-service"):
    """The webhook-service's subscription signing secrets (current and previous)."""


#: one message class per service that seals values: the rotation asks each of them
RESEAL_MESSAGES: tuple[type[ResealValues], ...] = (ResealSecretValues, ResealWebhookSecrets)

__all__ = [
    "MAX_RESEAL_BATCH",
    "RESEAL_MESSAGES",
    "ResealProgress",
    "ResealSecretValues",
    "ResealValues",
    "ResealWebhookSecrets",
]
