from __future__ import annotations

import pytest

import synapsex.contracts as contracts
from synapsex.contracts import (
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

CODES = [
    (NotFound, "NOT_FOUND"),
    (Conflict, "CONFLICT"),
    (InvalidInput, "INVALID_INPUT"),
    (Unauthenticated, "UNAUTHENTICATED"),
    (Forbidden, "FORBIDDEN"),
    (LimitExceeded, "LIMIT_EXCEEDED"),
    (Unavailable, "UNAVAILABLE"),
    (Timeout, "TIMEOUT"),
    (ServiceFailure, "INTERNAL"),
]


@pytest.mark.parametrize(("cls", "code"), CODES)
def test_each_error_class_has_its_graphql_code(cls, code):
    assert cls.code == code


@pytest.mark.parametrize(("cls", "code"), CODES)
def test_every_error_is_a_contract_error_and_an_exception(cls, code):
    assert issubclass(cls, ContractError)
    assert issubclass(cls, Exception)


def test_the_codes_are_distinct_apart_from_internal():
    codes = [code for _, code in CODES]
    assert len(set(codes)) == len(codes)
    assert ContractError.code == "INTERNAL"


@pytest.mark.parametrize("cls", [ContractError] + [cls for cls, _ in CODES])
def test_errors_present_themselves_as_synapsex_contracts(cls):
    assert cls.__module__ == "synapsex.contracts"
    assert getattr(contracts, cls.__name__) is cls


@pytest.mark.parametrize(
    "cls", [NotFound, Conflict, Unauthenticated, Forbidden, LimitExceeded, Unavailable, Timeout]
)
def test_an_error_carries_its_message_and_public_details(cls):
    err = cls("tenant not found", id="ten_1")
    assert str(err) == "tenant not found"
    assert err.message == "tenant not found"
    assert err.details == {"id": "ten_1"}
    assert err.extensions() == {"code": cls.code, "id": "ten_1"}
    assert repr(err) == f"{cls.__name__}('tenant not found')"


def test_an_error_without_details_has_only_its_code_in_extensions():
    assert NotFound("gone").extensions() == {"code": "NOT_FOUND"}


def test_extensions_are_a_fresh_dict_each_time():
    err = Conflict("taken", field="name")
    err.extensions()["code"] = "CHANGED"
    assert err.extensions() == {"code": "CONFLICT", "field": "name"}


def test_invalid_input_names_the_field_and_the_problem():
    err = InvalidInput("input.email", "is not an email address")
    assert err.field == "input.email"
    assert err.problem == "is not an email address"
    assert str(err) == "input.email: is not an email address"
    assert err.message == "input.email: is not an email address"
    assert err.extensions() == {"code": "INVALID_INPUT", "field": "input.email"}


def test_service_failure_exposes_its_reference_in_extensions():
    err = ServiceFailure("tenant-service failed to handle GetTenant", reference="msg_1")
    assert err.extensions() == {"code": "INTERNAL", "reference": "msg_1"}


def test_contract_errors_can_be_caught_as_one_family():
    with pytest.raises(ContractError) as err:
        raise LimitExceeded("members limit reached", limit="members")
    assert err.value.code == "LIMIT_EXCEEDED"
