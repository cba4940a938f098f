"""Deliveries are signed exactly per Standard Webhooks: the spec's test vector, and receivers
using the ``standardwebhooks`` reference library accept our headers (also across a rotation)."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from synapsex.actors.webhook.actor import event_body, event_body_of_json
from synapsex.actors.webhook.signing import (
    check_secret,
    new_secret,
    signature,
    signature_header,
    webhook_headers,
)
from synapsex.contracts.errors import InvalidInput
from synapsex.contracts.events import encode_payload

# the test vector of the reference report, §B1 (verified there against the reference sign())
VECTOR_SECRET = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX"
VECTOR_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
VECTOR_TIMESTAMP = 1674087231
VECTOR_BODY = (
    b'{"type":"contact.created","timestamp":"2022-11-03T20:26:10.344522Z",'
    b'"data":{"id":"1f81eb52-5198-4599-803e-771906343485"}}'
)
VECTOR_SIGNATURE = "v1,w9hHmpilBM+ZH5TWiqTF2V+zZhky2nrY7iwP4o0rZI0="

BODY = b'{"type":"tenant.member.added","data":{"id":"m_1","note":"caf\xc3\xa9"}}'
UA = "SynapseX-Webhooks/0.1.0"


def headers_now(secrets, body=BODY, msg_id="msg_1"):
    return webhook_headers(secrets, msg_id, int(time.time()), body, UA)


# ---------------------------------------------------------------------------- the spec


def test_signature_matches_the_spec_test_vector():
    assert signature(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE


def test_secret_without_base64_padding_gives_the_same_signature():
    key = bytes(range(32))  # 32 bytes encode with one '=' of padding
    padded = "whsec_" + base64.b64encode(key).decode()
    assert padded.endswith("=")
    unpadded = padded.rstrip("=")
    assert signature(unpadded, "m", 1, b"{}") == signature(padded, "m", 1, b"{}")


def test_signature_entry_is_v1_and_44_base64_characters():
    entry = signature(new_secret(), "msg_1", 1_700_000_000, BODY)
    version, mac = entry.split(",")
    assert version == "v1"
    assert len(mac) == 44
    assert len(base64.b64decode(mac, validate=True)) == 32


def test_new_secret_is_whsec_and_32_random_bytes():
    a, b = new_secret(), new_secret()
    assert a != b
    assert a.startswith("whsec_")
    assert len(base64.b64decode(a.removeprefix("whsec_"), validate=True)) == 32


def test_headers_are_lower_case_and_complete():
    headers = webhook_headers([VECTOR_SECRET], VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY, UA)
    assert headers == {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
        "content-type": "application/json",
        "user-agent": UA,
    }


# ---------------------------------------------------------------------------- the reference library


def test_reference_library_verifies_our_headers():
    secret = new_secret()
    payload = Webhook(secret).verify(BODY, headers_now([secret]))
    assert payload["data"]["note"] == "café"


def test_reference_library_accepts_an_unpadded_secret_we_signed_with():
    secret = new_secret().rstrip("=")
    Webhook(secret).verify(BODY, headers_now([secret]))


def test_rotation_signs_with_both_secrets_current_first_and_each_verifies():
    old, new = new_secret(), new_secret()
    headers = headers_now([new, old])
    entries = headers["webhook-signature"].split(" ")
    assert entries == [
        signature(new, "msg_1", int(headers["webhook-timestamp"]), BODY),
        signature(old, "msg_1", int(headers["webhook-timestamp"]), BODY),
    ]
    Webhook(new).verify(BODY, headers)
    Webhook(old).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(new_secret()).verify(BODY, headers)


def test_same_secret_twice_is_signed_once():
    secret = new_secret()
    assert len(signature_header([secret, secret], "m", 1, b"{}").split(" ")) == 1


def test_tampered_body_fails_verification():
    secret = new_secret()
    headers = headers_now([secret])
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(secret).verify(BODY.replace(b"m_1", b"m_2"), headers)


def test_tampered_timestamp_fails_verification():
    secret = new_secret()
    headers = headers_now([secret])
    headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) - 1)
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(secret).verify(BODY, headers)


def test_tampered_id_fails_verification():
    secret = new_secret()
    headers = headers_now([secret])
    headers["webhook-id"] = "msg_2"
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(secret).verify(BODY, headers)


def test_reference_library_refuses_a_stale_timestamp_we_signed_correctly():
    secret = new_secret()
    stale = webhook_headers([secret], "msg_1", int(time.time()) - 3600, BODY, UA)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(BODY, stale)


# ---------------------------------------------------------------------------- input checks


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("AAECAwQFBgcICQoLDA0ODxAREhMUFRYX", "must start with 'whsec_'"),
        ("whsec_not base64!", "standard base64"),
        ("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRY-", "standard base64"),  # URL-safe alphabet
        ("whsec_AAECAwQFBgcI", "24 to 64 bytes, not 9"),
        ("whsec_" + base64.b64encode(bytes(65)).decode(), "24 to 64 bytes, not 65"),
        ("whsec_", "24 to 64 bytes, not 0"),
    ],
)
def test_malformed_secret_is_refused(secret, problem):
    with pytest.raises(ValueError, match=problem):
        signature(secret, "msg_1", 1, b"{}")
    with pytest.raises(InvalidInput) as invalid:
        check_secret(secret, field="input.secret")
    assert invalid.value.field == "input.secret"
    assert problem in invalid.value.problem


def test_refusal_never_echoes_the_secret():
    secret = "whsec_" + base64.b64encode(b"short-secret").decode()
    with pytest.raises(ValueError, match="bytes, not 12") as info:
        signature(secret, "msg_1", 1, b"{}")
    assert secret.removeprefix("whsec_") not in str(info.value)


def test_check_secret_accepts_a_new_secret():
    check_secret(new_secret())


@pytest.mark.parametrize("msg_id", ["", "msg.1", "msg 1", "msg\n1", "msg_é", "m" * 257])
def test_msg_id_that_would_break_the_signed_content_is_refused(msg_id):
    with pytest.raises(ValueError, match="msg_id"):
        signature(VECTOR_SECRET, msg_id, 1, b"{}")


@pytest.mark.parametrize("timestamp", [-1, 1.5, "1674087231", True])
def test_timestamp_must_be_non_negative_int_seconds(timestamp):
    with pytest.raises(TypeError, match="timestamp"):
        signature(VECTOR_SECRET, "msg_1", timestamp, b"{}")


def test_body_must_be_bytes():
    with pytest.raises(TypeError, match="exact bytes"):
        signature(VECTOR_SECRET, "msg_1", 1, '{"a":1}')


def test_one_secret_passed_as_a_string_is_refused():
    with pytest.raises(TypeError, match="sequence of secrets"):
        signature_header(VECTOR_SECRET, "msg_1", 1, b"{}")


def test_no_secret_is_refused():
    with pytest.raises(ValueError, match="at least one secret"):
        signature_header([], "msg_1", 1, b"{}")


@pytest.mark.parametrize("user_agent", ["", "SynapseX/0.1\r\nX-Injected: 1"])
def test_user_agent_must_be_one_non_empty_line(user_agent):
    with pytest.raises(ValueError, match="user_agent"):
        webhook_headers([VECTOR_SECRET], "msg_1", 1, b"{}", user_agent)


@pytest.mark.parametrize(
    "payload",
    [
        {"order": 1, "total": 12.5, "items": [{"sku": "a", "qty": 2}], "note": None},
        {"name": "Zoë — 東京 🚀", "nested": {"deep": [1, 2.0, -0.0, 1e300, True, False]}},
        [1, "two", {"3": [4]}],
        "a string",
        None,
        {"quote": 'he said "hi"\\n', "tab": "\t", "ctrl": "\u0001"},
    ],
)
def test_a_body_built_from_the_stored_payload_is_byte_identical(payload):
    """Intake builds bodies from the payload's stored JSON text (no decode and encode): the
    bytes, and so the signatures, are those of the decoded payload's body."""
    at = datetime(2026, 12, 7, 5, 30, 1, 234567, tzinfo=UTC)
    assert event_body_of_json("evt_1", "orders.créé", at, encode_payload(payload)) == event_body(
        "evt_1", "orders.créé", at, payload
    )
