"""The per-request context: who is calling, and a way to ask services on their behalf."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from synapsex.contracts import Message
from synapsex.contracts.auth import Authenticate, Principal
from synapsex.contracts.errors import Forbidden, Unauthenticated
from synapsex.contracts.vms import VM_TOKEN_FORBIDDEN, VM_TOKEN_PREFIX, AuthenticateVm, VmPrincipal
from synapsex.runtime import Runtime, TraceScope, current_scope, new_id


def bearer_key(authorization: str | None) -> str | None:
    """The key in ``Authorization: Bearer <key>``, or ``None``."""
    if not authorization:
        return None
    scheme, _, key = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    return key.strip()


@dataclass(eq=False)
class GatewayContext:
    """One HTTP request, or one WebSocket connection (Strawberry builds the context once per
    socket; the principal is checked at ``connection_init``).

    A traced HTTP request (see :mod:`synapsex.graphql.tracing`) is built inside its trace
    scope: ``trace_scope`` is that scope and ``trace_id`` its trace id."""

    runtime: Runtime
    authorization: str | None = None
    request_id: str = field(default_factory=lambda: new_id("req"))
    trace_id: str | None = None
    operation_name: str | None = None
    #: the error codes the response carried (for the request log line and metrics)
    error_codes: list[str] = field(default_factory=list)
    #: the WebSocket ``connection_init`` payload (Strawberry sets it)
    connection_params: dict[str, Any] | None = None
    _principal: Principal | None = None
    _vm_principal: VmPrincipal | None = None
    #: the request's trace, when it is traced
    trace_scope: TraceScope | None = field(default_factory=current_scope.get)

    def __post_init__(self) -> None:
        if self.trace_scope is not None:
            self.trace_id = self.trace_scope.trace_id

    async def principal(self) -> Principal:
        """The authenticated caller; :class:`Unauthenticated` when the key is missing or bad,
        :class:`Forbidden` for a VM token (it only sends heartbeats and asks for its desired
        versions: see :meth:`vm_principal`). Telling them apart is one prefix check.

        Authenticates once per context (per request; per connection on WebSockets)."""
        if self._principal is None:
            key = bearer_key(self.authorization)
            if key is None:
                raise Unauthenticated("missing API key: send 'Authorization: Bearer <key>'")
            if key.startswith(VM_TOKEN_PREFIX):
                raise Forbidden(VM_TOKEN_FORBIDDEN)
            self._principal = await self.ask(Authenticate(key=key))
        return self._principal

    async def vm_principal(self) -> VmPrincipal:
        """The VM a VM-only operation (``vmHeartbeat``, ``desiredVersion``) acts for.

        :class:`Unauthenticated` when the token is missing, malformed, unknown, rotated or its
        VM deregistered; :class:`Forbidden` for a valid API key (a user cannot act as a VM; an
        invalid one is :class:`Unauthenticated`, as anywhere else)."""
        if self._vm_principal is None:
            token = bearer_key(self.authorization)
            if token is None:
                raise Unauthenticated("missing VM token: send 'Authorization: Bearer <token>'")
            if not token.startswith(VM_TOKEN_PREFIX):
                await self.principal()  # Unauthenticated unless it is a valid API key
                raise Forbidden("only a VM, with its VM token, can do this; API keys cannot")
            self._vm_principal = await self.ask(AuthenticateVm(token=token))
        return self._vm_principal

    @property
    def tenant_id(self) -> str | None:
        """The caller's tenant once authenticated (for logs), else ``None``; never waits."""
        if self._principal is not None:
            return self._principal.tenant_id
        return self._vm_principal.tenant_id if self._vm_principal is not None else None

    async def ask(self, message: Message) -> Any:
        """Ask the owning service (never waiting for mailbox room: a full one is UNAVAILABLE)."""
        return await self.runtime.ask(message, trace_id=self.trace_id)
