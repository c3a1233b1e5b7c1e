"""The local stack's SCRAM credentials for StorageTool: salted in Python, so no clear password reaches argv."""

from __future__ import annotations

import base64
import re

from services.devtools.stack.kafka_auth import salted_scram

# PBKDF2-HMAC-SHA512("password", "salt", 4096, 64 bytes): the published test vector (as in RFC 6070 for SHA-1).
VECTOR = (
    "d197b1b33db0143e018b12f3d1d1479e6cdebdcc97c5c0f87f6902e072f457b5"
    "143f30602641b3d55cd335988cb36b84376060ecd532e039b742a239434af2d5"
)


def test_the_salted_form_carries_scrams_salted_password_of_the_known_vector():
    value = salted_scram("operator", "password", salt=b"salt", iterations=4096)
    found = re.fullmatch(
        r"SCRAM-SHA-512=\[name=operator,iterations=4096,salt=([^,]+),saltedpassword=([^,\]]+)\]", value
    )
    assert found, value
    assert base64.b64decode(found.group(1)) == b"salt"
    assert base64.b64decode(found.group(2)).hex() == VECTOR
    assert "password=password" not in value


def test_each_salted_form_has_a_salt_of_its_own_and_no_clear_password():
    first, second = salted_scram("u", "hunter2hunter2"), salted_scram("u", "hunter2hunter2")
    assert first != second
    assert "hunter2" not in first and "iterations=8192" in first
