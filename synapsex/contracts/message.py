"""The base classes of contract messages and replies.

``class Ping(Message, service="echo-service")`` makes ``Ping`` a frozen, slotted, keyword-only
dataclass owned by ``echo-service``: the runtime routes it there by its type. Construction checks
each field against its annotation (``str``, ``int``, ``float``, ``bool``, ``None`` unions,
``Literal``, ``tuple``/``list``/``dict`` shallowly) and then calls the class's ``validate()``;
both raise :class:`~synapsex.contracts.errors.InvalidInput` naming the field, so bad input is
refused before it reaches a mailbox.

Design note: ``dataclass(slots=True)`` builds a new class, which ``__init_subclass__`` cannot
return; a metaclass can, so the decoration happens in ``_ContractMeta.__new__``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any, ClassVar, dataclass_transform

from synapsex.contracts.errors import InvalidInput

_MARK = "__sx_contract__"
#: what a secret field shows instead of its value
REDACTED = "***"
_REGISTRY: dict[str, type[Message]] = {}

Checker = Callable[[Any], bool]


@dataclass_transform(frozen_default=True, kw_only_default=True)
class _ContractMeta(type):
    def __new__(mcs, name: str, bases: tuple[type, ...], ns: dict[str, Any], **kw: Any):
        if ns.get(_MARK) or not any(isinstance(b, _ContractMeta) for b in bases):
            return super().__new__(mcs, name, bases, ns, **kw)
        ns[_MARK] = True
        # Methods using zero-argument super() close over __classcell__; it must end up
        # pointing at the slotted class dataclass builds, not at this first draft.
        cell = ns.pop("__classcell__", None)
        draft = super().__new__(mcs, name, bases, ns, **kw)
        cls = dataclasses.dataclass(frozen=True, slots=True, kw_only=True)(draft)
        if cell is not None:
            cell.cell_contents = cls
        return cls


class Reply(metaclass=_ContractMeta):
    """Base of reply dataclasses: frozen, slotted, keyword-only, never ORM objects."""

    __slots__ = ()
    __sx_contract__ = True


class Message(metaclass=_ContractMeta):
    """Base of messages: one service owns each; fields are checked when it is built."""

    __slots__ = ()
    __sx_contract__ = True
    #: the service that handles this message type
    service: ClassVar[str]
    _sx_checks: ClassVar[tuple[tuple[str, Checker, str], ...] | None]
    _sx_abstract: ClassVar[bool] = False

    def __init_subclass__(
        cls, service: str | None = None, abstract: bool = False, **kw: Any
    ) -> None:
        super().__init_subclass__(**kw)
        if abstract or cls.__dict__.get("_sx_abstract"):
            # a base with shared fields (PageRequest): never sent, never registered
            cls._sx_abstract = True
            return
        if service is not None:
            cls.service = service
        if "service" not in dir(cls):
            raise TypeError(f"{cls.__qualname__} needs service=: class X(Message, service=...)")
        cls._sx_checks = None  # compiled on first construction, once annotations resolve
        _REGISTRY[message_type_name(cls)] = cls

    def __post_init__(self) -> None:
        checks = type(self)._sx_checks
        if checks is None:
            checks = type(self)._sx_checks = _compile_checks(type(self))
        for name, check, expected in checks:
            if not check(getattr(self, name)):
                value = getattr(self, name)
                raise InvalidInput(name, f"expected {expected}, got {type(value).__name__}")
        self.validate()

    def validate(self) -> None:
        """Check what annotations cannot say; raise ``InvalidInput(field, problem)``."""

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain data for dead letters and logs, secret fields as ``"***"``."""
        return {
            f.name: REDACTED if f.metadata.get("secret") else getattr(self, f.name)
            for f in dataclasses.fields(self)
        }


def message_type_name(cls: type) -> str:
    """The stable name of a message type: ``module.QualName``."""
    return f"{cls.__module__}.{cls.__qualname__}"


def message_class(type_name: str) -> type[Message]:
    """The message class registered under ``type_name`` (importing its module if needed)."""
    cls = _REGISTRY.get(type_name)
    if cls is None:
        module, _, _ = type_name.rpartition(".")
        while module and cls is None:
            try:
                __import__(module)
            except ImportError:
                module = module.rpartition(".")[0]
                continue
            cls = _REGISTRY.get(type_name)
            break
    if cls is None:
        raise LookupError(f"unknown message type {type_name!r}")
    return cls


# --------------------------------------------------------------------------- field checks


def _compile_checks(cls: type) -> tuple[tuple[str, Checker, str], ...]:
    hints = typing.get_type_hints(cls)
    checks = []
    for f in dataclasses.fields(cls):
        check = _checker(hints.get(f.name, Any))
        if check is not None:
            checks.append((f.name, check, _describe(hints[f.name])))
    return tuple(checks)


def _describe(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _checker(tp: Any) -> Checker | None:
    """A predicate for values of ``tp``; ``None`` when anything goes."""
    if tp is Any:
        return None
    if tp is None or tp is type(None):
        return lambda v: v is None
    if tp is bool:
        return lambda v: type(v) is bool
    if tp is int:
        return lambda v: type(v) is int
    if tp is float:
        return lambda v: type(v) in (int, float)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        parts = [_checker(a) for a in typing.get_args(tp)]
        if any(p is None for p in parts):
            return None
        return lambda v: any(p(v) for p in parts)  # type: ignore[misc]
    if origin is typing.Literal:
        allowed = {(type(a), a) for a in typing.get_args(tp)}
        return lambda v: (type(v), v) in allowed
    if origin is not None and isinstance(origin, type):
        return lambda v: isinstance(v, origin)
    if isinstance(tp, type):
        return lambda v: isinstance(v, tp)
    return None
