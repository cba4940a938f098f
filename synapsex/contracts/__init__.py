"""Contracts: the only code services and the gateway share.

Messages, replies and errors live here (one module per service); ORM models never do.
"""

from synapsex.contracts.common import Page, PageRequest, secret_field
from synapsex.contracts.errors import (
    Conflict,
    ContractError,
    Forbidden,
    InvalidInput,
    LimitExceeded,
    NotFound,
    ServiceFailure,
    Timeout,
    Unauthenticated,
    Unavailable,
)
from synapsex.contracts.message import Message, Reply, message_class, message_type_name

__all__ = [
    "Conflict",
    "ContractError",
    "Forbidden",
    "InvalidInput",
    "LimitExceeded",
    "Message",
    "NotFound",
    "Page",
    "PageRequest",
    "Reply",
    "ServiceFailure",
    "Timeout",
    "Unauthenticated",
    "Unavailable",
    "message_class",
    "message_type_name",
    "secret_field",
]
