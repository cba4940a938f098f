"""The errors services answer with, shared by every service and the gateway.

::

    ContractError                 base; ``.code`` is the GraphQL ``extensions.code``
    ├── NotFound                  NOT_FOUND        no such object (or not yours: never a hint)
    ├── Conflict                  CONFLICT         unique name taken, stale lease, wrong state
    ├── InvalidInput              INVALID_INPUT    ``.field`` names the bad field
    ├── Unauthenticated           UNAUTHENTICATED  missing, unknown or revoked credentials
    ├── Forbidden                 FORBIDDEN        authenticated, but not allowed
    ├── LimitExceeded             LIMIT_EXCEEDED   a plan limit or quota is reached
    ├── Unavailable               UNAVAILABLE      mailbox full, service stopped or restarting
    ├── Timeout                   TIMEOUT          no reply before the deadline
    └── ServiceFailure            INTERNAL         a handler failed unexpectedly; details are
                                                   in the logs under ``.reference``

A handler that raises one of these answers its asker with it and keeps running. Any other
exception is answered with :class:`ServiceFailure` and crashes the actor, which its supervisor
restarts. Errors never carry internals (tracebacks, SQL) to the asker.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ContractError(Exception):
    """Base of every error a service may answer with."""

    code: ClassVar[str] = "INTERNAL"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def extensions(self) -> dict[str, Any]:
        """The GraphQL ``extensions`` of this error: its code and public details."""
        return {"code": self.code, **self.details}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class NotFound(ContractError):
    code = "NOT_FOUND"


class Conflict(ContractError):
    code = "CONFLICT"


class InvalidInput(ContractError):
    """Bad input; ``field`` names it (``name``, ``input.email``, ``limits.members``)."""

    code = "INVALID_INPUT"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}", field=field)
        self.field = field
        self.problem = problem


class Unauthenticated(ContractError):
    code = "UNAUTHENTICATED"


class Forbidden(ContractError):
    code = "FORBIDDEN"


class LimitExceeded(ContractError):
    code = "LIMIT_EXCEEDED"


class Unavailable(ContractError):
    code = "UNAVAILABLE"


class Timeout(ContractError):
    code = "TIMEOUT"


class ServiceFailure(ContractError):
    """An unexpected failure; ``reference`` finds it in the logs."""

    code = "INTERNAL"

    @property
    def reference(self) -> str | None:
        """The id of the failed message, logged with the traceback (``None`` if unknown)."""
        return self.details.get("reference")


for _cls in (
    ContractError,
    NotFound,
    Conflict,
    InvalidInput,
    Unauthenticated,
    Forbidden,
    LimitExceeded,
    Unavailable,
    Timeout,
    ServiceFailure,
):
    _cls.__module__ = "synapsex.contracts"
