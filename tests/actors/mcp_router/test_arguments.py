"""Arguments of a plan: what the caller gives is checked against the tool's input schema, what
the intent carries is taken only when it matches a parameter without guessing, and what is
still missing is listed, never invented."""

from __future__ import annotations

import asyncio

import pytest

from synapsex.actors.mcp_router.arguments import (
    arguments_sha256,
    canonical_json,
    check_arguments,
    missing_arguments,
    parse_intent,
    plan_arguments,
)
from synapsex.contracts.errors import InvalidInput
from tests.mcp_intents import INTENTS, labelled_catalog

VM = "vm_01JD3Q6V0Z9X8Y7W6V5T4S3R2Q"
WSP = "wsp_01JD3Q8M0N1P2Q3R4S5T6V7W8X"

REFUND = {
    "type": "object",
    "properties": {"payment_id": {"type": "string"}, "amount_cents": {"type": "integer"}},
    "required": ["payment_id", "amount_cents"],
}
EVENTS = {
    "type": "object",
    "properties": {
        "topic": {"type": "string"},
        "first": {"type": "integer", "minimum": 1, "maximum": 100},
    },
}


def test_labelled_intents_give_the_arguments_they_carry():
    catalog = asyncio.run(labelled_catalog())
    schemas = {f"{s}__{d.name}": d.input_schema for s, d in catalog}
    checked = 0
    for labelled in INTENTS:
        plan = plan_arguments(labelled.intent, {}, schemas[labelled.tool], labelled.tool)
        for name, value in labelled.arguments.items():
            assert plan.arguments.get(name) == value, (labelled.intent, plan)
            checked += 1
    assert checked >= 25


def test_missing_required_arguments_are_listed_never_invented():
    plan = plan_arguments("refund the payment please", {}, REFUND, "fixture__refund_payment")
    assert plan.arguments == {}
    assert plan.missing == ("payment_id", "amount_cents")


def test_supplied_arguments_win_over_the_intent_and_are_kept_as_given():
    plan = plan_arguments(
        "refund 500 cents of payment_id=P-1",
        {"payment_id": "P-2"},
        REFUND,
        "fixture__refund_payment",
    )
    assert plan.arguments == {"payment_id": "P-2", "amount_cents": 500}
    assert plan.sources["payment_id"] == "arguments"
    assert plan.sources["amount_cents"].startswith("the intent")
    assert plan.missing == ()


def test_unknown_parameters_and_wrong_types_are_refused_naming_the_argument():
    with pytest.raises(InvalidInput) as unknown:
        plan_arguments("refund", {"amount": 5}, REFUND, "fixture__refund_payment")
    assert unknown.value.field == "arguments.amount"
    assert "payment_id, amount_cents" in unknown.value.problem
    with pytest.raises(InvalidInput) as wrong:
        check_arguments({"amount_cents": "five"}, REFUND, "fixture__refund_payment")
    assert wrong.value.field == "arguments.amount_cents"
    assert wrong.value.problem == "must be an integer"
    with pytest.raises(InvalidInput, match="one of"):
        check_arguments(
            {"units": "kelvin"},
            {"properties": {"units": {"type": "string", "enum": ["metric", "imperial"]}}},
            "t",
        )


def test_two_numbers_for_two_numeric_parameters_are_matched_by_name_or_left():
    schema = {
        "properties": {"width": {"type": "integer"}, "height": {"type": "integer"}},
        "required": ["width", "height"],
    }
    named = plan_arguments("resize to width 640 and height 480", {}, schema, "t")
    assert named.arguments == {"width": 640, "height": 480}
    unnamed = plan_arguments("resize to 640 by 480", {}, schema, "t")
    assert unnamed.arguments == {}
    assert unnamed.missing == ("width", "height")


def test_a_number_outside_the_schema_bounds_is_not_taken():
    assert plan_arguments("the last 500 events", {}, EVENTS, "t").arguments == {}
    assert plan_arguments("the last 50 events", {}, EVENTS, "t").arguments == {"first": 50}


def test_ids_go_to_the_parameter_their_word_or_prefix_names():
    schema = {
        "properties": {"vm_id": {"type": "string"}, "workspace_id": {"type": "string"}},
        "required": ["vm_id", "workspace_id"],
    }
    plan = plan_arguments(f"copy from {VM} into {WSP}", {}, schema, "t")
    assert plan.arguments == {"vm_id": VM, "workspace_id": WSP}
    # an id whose prefix spells neither parameter is left alone
    other = plan_arguments("copy rol_01JD3Q7A1B2C3D4E5F6G7H8J9K", {}, schema, "t")
    assert other.arguments == {}


def test_an_id_for_a_parameter_named_id_only_when_the_intent_has_one():
    schema = {"properties": {"id": {"type": "string"}}, "required": ["id"]}
    assert plan_arguments(f"show {VM}", {}, schema, "t").arguments == {"id": VM}
    two = plan_arguments(f"show {VM} or {WSP}", {}, schema, "t")
    assert two.missing == ("id",)


def test_quoted_strings_need_a_naming_word_or_a_single_free_string_parameter():
    schema = {
        "properties": {"subject": {"type": "string"}, "body": {"type": "string"}},
        "required": ["subject", "body"],
    }
    plan = plan_arguments('mail with subject "Hi" and body "See you"', {}, schema, "t")
    assert plan.arguments == {"subject": "Hi", "body": "See you"}
    left = plan_arguments('mail "Hi"', {}, schema, "t")
    assert left.missing == ("subject", "body")


def test_name_value_pairs_convert_to_the_parameter_type_or_are_left():
    schema = {
        "properties": {
            "force": {"type": "boolean"},
            "tags": {"type": "array"},
            "limit": {"type": "integer"},
        }
    }
    plan = plan_arguments('force=true tags=["a","b"] limit=ten', {}, schema, "t")
    assert plan.arguments == {"force": True, "tags": ["a", "b"]}


def test_an_enum_value_written_in_the_intent_is_taken_when_only_one_appears():
    schema = {"properties": {"status": {"type": "string", "enum": ["open", "paid", "overdue"]}}}
    assert plan_arguments("overdue invoices", {}, schema, "t").arguments == {"status": "overdue"}
    assert plan_arguments("open or paid invoices", {}, schema, "t").arguments == {}


def test_parse_intent_sets_values_apart_from_words():
    parsed = parse_intent(f"publish 'a b' on “c” with limit=5 and 7 for {VM}")
    assert [q.text for q in parsed.quoted] == ["a b", "c"]
    assert [n.text for n in parsed.numbers] == ["5", "7"]
    assert [i.text for i in parsed.ids] == [VM]
    assert [(k.text, v.text) for k, v in parsed.pairs] == [("limit", "5")]
    assert "a" not in parsed.query_words


def test_the_arguments_hash_is_of_the_canonical_json():
    assert canonical_json({"b": 1, "a": [1, {"d": "é", "c": None}]}) == (
        '{"a":[1,{"c":null,"d":"é"}],"b":1}'
    )
    assert arguments_sha256({"b": 1, "a": 2}) == arguments_sha256({"a": 2, "b": 1})
    assert arguments_sha256({"a": 1}) != arguments_sha256({"a": "1"})
    assert len(arguments_sha256({})) == 64


def test_missing_arguments_follow_the_schema_order():
    assert missing_arguments({"amount_cents": 1}, REFUND) == ("payment_id",)
    assert missing_arguments({}, {"type": "object"}) == ()
