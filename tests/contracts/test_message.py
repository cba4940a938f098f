from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any, Literal, Optional

import pytest

from synapsex.contracts import (
    InvalidInput,
    Message,
    Reply,
    message_class,
    message_type_name,
    secret_field,
)
from synapsex.contracts.auth import Authenticate, CreatedApiKey
from synapsex.contracts.tenant import CreateTenant

SERVICE = "spec-service"


class Ping(Message, service=SERVICE):
    text: str
    count: int = 1


class Typed(Message, service=SERVICE):
    name: str = "n"
    number: int = 0
    flag: bool = False
    ratio: float = 0.0
    maybe: Optional[int] = None  # noqa: UP045 - the typing.Optional spelling is checked too
    either: str | None = None
    mode: Literal["fast", "slow"] = "fast"
    level: Literal[1, 2] = 1
    meta: dict[str, Any] | None = None
    tags: tuple[str, ...] = ()
    when: datetime | None = None
    anything: Any = None


class Positive(Message, service=SERVICE):
    value: int
    calls: list[int] = dataclasses.field(default_factory=list)

    def validate(self) -> None:
        self.calls.append(self.value)
        if self.value <= 0:
            raise InvalidInput("value", "must be positive")


class Login(Message, service=SERVICE):
    user: str
    password: str = secret_field()


class LoudPing(Ping):
    volume: int = 11


class Pong(Reply):
    text: str
    count: int


# ---------------------------------------------------------------------------- dataclass shape


def test_message_subclass_is_a_frozen_slotted_keyword_only_dataclass():
    assert dataclasses.is_dataclass(Ping)
    params = Ping.__dataclass_params__
    assert params.frozen
    assert "__slots__" in Ping.__dict__
    assert [f.name for f in dataclasses.fields(Ping)] == ["text", "count"]
    assert all(f.kw_only for f in dataclasses.fields(Ping))


def test_assigning_a_field_raises_frozen_instance_error():
    ping = Ping(text="hi")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ping.text = "bye"  # type: ignore[misc]
    assert ping.text == "hi"


def test_message_instances_have_no_dict():
    ping = Ping(text="hi")
    assert not hasattr(ping, "__dict__")
    with pytest.raises((AttributeError, TypeError)):
        object.__setattr__(ping, "extra", 1)


def test_positional_arguments_are_rejected():
    with pytest.raises(TypeError):
        Ping("hi")  # type: ignore[misc]


def test_messages_compare_and_hash_by_value():
    assert Ping(text="a", count=2) == Ping(text="a", count=2)
    assert Ping(text="a") != Ping(text="b")
    assert hash(Ping(text="a")) == hash(Ping(text="a"))


def test_message_class_knows_its_service():
    assert Ping.service == SERVICE
    assert Ping(text="x").service == SERVICE
    assert "service" not in {f.name for f in dataclasses.fields(Ping)}


def test_a_subclass_of_a_message_inherits_its_service_and_is_itself_a_checked_dataclass():
    loud = LoudPing(text="hi")
    assert loud.service == SERVICE
    assert loud.volume == 11
    assert "__slots__" in LoudPing.__dict__
    with pytest.raises(dataclasses.FrozenInstanceError):
        loud.volume = 3  # type: ignore[misc]
    with pytest.raises(InvalidInput) as err:
        LoudPing(text="hi", volume="max")  # type: ignore[arg-type]
    assert err.value.field == "volume"
    with pytest.raises(InvalidInput) as err:
        LoudPing(text=1)  # type: ignore[arg-type]
    assert err.value.field == "text"


def test_a_message_without_service_is_a_type_error():
    with pytest.raises(TypeError, match="needs service="):

        class Orphan(Message):
            value: int


def test_to_dict_gives_the_fields_as_plain_data():
    assert Ping(text="hi", count=3).to_dict() == {"text": "hi", "count": 3}


# ---------------------------------------------------------------------------- field checks


def test_well_typed_values_are_accepted():
    when = datetime.now(UTC)
    typed = Typed(
        name="a",
        number=3,
        flag=True,
        ratio=0.5,
        maybe=4,
        either="e",
        mode="slow",
        level=2,
        meta={"k": 1},
        tags=("x",),
        when=when,
        anything=object,
    )
    assert typed.when is when
    assert Typed().maybe is None


def test_a_float_field_accepts_an_int():
    assert Typed(ratio=2).ratio == 2


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", 1),
        ("name", b"bytes"),
        ("name", None),
        ("number", "1"),
        ("number", 1.0),
        ("number", True),
        ("flag", 1),
        ("flag", "true"),
        ("ratio", "0.5"),
        ("ratio", True),
        ("maybe", "1"),
        ("maybe", False),
        ("either", 3),
        ("mode", "medium"),
        ("mode", None),
        ("level", 3),
        ("meta", [("k", 1)]),
        ("tags", ["x"]),
        ("when", "2024-01-01"),
    ],
)
def test_a_value_of_the_wrong_type_is_invalid_input_naming_the_field(field, value):
    with pytest.raises(InvalidInput) as err:
        Typed(**{field: value})
    assert err.value.field == field
    assert err.value.code == "INVALID_INPUT"
    assert str(err.value).startswith(f"{field}: expected ")
    assert type(value).__name__ in err.value.problem


def test_the_message_says_what_was_expected_and_what_was_given():
    with pytest.raises(InvalidInput) as err:
        Ping(text="hi", count="3")  # type: ignore[arg-type]
    assert err.value.problem == "expected int, got str"


@pytest.mark.parametrize("value", [True, 1.0])
def test_a_literal_int_field_refuses_equal_values_of_another_type(value):
    # True == 1 and 1.0 == 1, but neither is the literal 1; an `int` field refuses both.
    with pytest.raises(InvalidInput) as err:
        Typed(level=value)
    assert err.value.field == "level"


def test_validate_is_called_after_the_field_checks():
    assert Positive(value=2).calls == [2]
    with pytest.raises(InvalidInput) as err:
        Positive(value=0)
    assert err.value.field == "value"
    assert err.value.problem == "must be positive"


def test_validate_does_not_run_when_a_field_has_the_wrong_type():
    calls: list[int] = []
    with pytest.raises(InvalidInput) as err:
        Positive(value="2", calls=calls)  # type: ignore[arg-type]
    assert err.value.problem == "expected int, got str"
    assert calls == []


def test_contract_messages_validate_on_construction():
    with pytest.raises(InvalidInput) as err:
        CreateTenant(name="Acme", plan="platinum")
    assert err.value.field == "plan"


# ---------------------------------------------------------------------------- secrets


def test_secret_field_values_are_not_in_repr():
    login = Login(user="ann", password="hunter2-secret")
    assert login.password == "hunter2-secret"
    assert "hunter2-secret" not in repr(login)
    assert "ann" in repr(login)
    assert "sx_topsecret" not in repr(Authenticate(key="sx_topsecret"))


def test_secret_field_is_marked_secret_in_the_field_metadata():
    [password] = [f for f in dataclasses.fields(Login) if f.name == "password"]
    assert password.metadata["secret"] is True


def test_secret_field_values_are_not_in_reply_repr():
    reply_fields = {f.name: f for f in dataclasses.fields(CreatedApiKey)}
    assert reply_fields["key"].repr is False


def test_to_dict_does_not_reveal_secret_fields():
    # to_dict is documented as the plain data "for dead letters and logs", where secret fields
    # must never appear (dead letters store them as "***").
    data = Login(user="ann", password="hunter2-secret").to_dict()
    assert data["user"] == "ann"
    assert "hunter2-secret" not in repr(data)


# ---------------------------------------------------------------------------- type names


def test_message_type_name_is_module_and_qualified_name():
    assert message_type_name(Ping) == f"{__name__}.Ping"
    assert message_type_name(CreateTenant) == "synapsex.contracts.tenant.CreateTenant"


@pytest.mark.parametrize("cls", [Ping, Typed, LoudPing, CreateTenant, Authenticate])
def test_message_class_round_trips_message_type_name(cls):
    assert message_class(message_type_name(cls)) is cls


def test_the_registered_class_is_the_slotted_dataclass():
    assert message_class(message_type_name(Ping)) is Ping
    assert "__slots__" in message_class(message_type_name(Ping)).__dict__


@pytest.mark.parametrize(
    "name",
    [
        "no_such_module_anywhere.Ping",
        f"{__name__}.Missing",
        "synapsex.contracts.tenant.NoSuchMessage",
        "Ping",
        "",
    ],
)
def test_unknown_message_type_is_a_lookup_error(name):
    with pytest.raises(LookupError, match="unknown message type"):
        message_class(name)


# ---------------------------------------------------------------------------- replies


def test_reply_subclass_is_a_frozen_slotted_keyword_only_dataclass():
    pong = Pong(text="hi", count=1)
    assert dataclasses.is_dataclass(pong)
    with pytest.raises(dataclasses.FrozenInstanceError):
        pong.text = "bye"  # type: ignore[misc]
    assert not hasattr(pong, "__dict__")
    with pytest.raises(TypeError):
        Pong("hi", 1)  # type: ignore[misc]


def test_replies_are_not_validated():
    pong = Pong(text=1, count="many")  # type: ignore[arg-type]
    assert pong.text == 1
    assert pong.count == "many"


def test_replies_need_no_service_and_are_not_message_types():
    assert not issubclass(Pong, Message)
    with pytest.raises(LookupError):
        message_class(message_type_name(Pong))
