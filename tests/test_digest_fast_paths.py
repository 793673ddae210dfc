"""The one-member SHA-256 shortcut of both digest readers answers as their general readers."""

import base64
import hashlib

import pytest

from federation import digest

BODY = b'{"type": "Create"}'
GOOD = base64.b64encode(hashlib.sha256(BODY).digest()).decode()
OTHER = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
VALUES = [GOOD, OTHER, "", "=", GOOD[:-1], GOOD + "=", GOOD.replace("+", "-"), f" {GOOD}",
          f"{GOOD} ", GOOD.rstrip("="), "AAAA", "!!!!", GOOD + ":x"]


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("name", ["SHA-256", "sha-256", "SHA-512"])
def test_digest_shortcut_answers_as_the_reader(name: str, value: str) -> None:
    header = f"{name}={value}"
    assert digest.check_digest(header, BODY) is digest._digest_members(header, BODY)


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("shape", ["sha-256=:{}:", "SHA-256=:{}:", "sha-256=:{}", "sha-256=:{}:;p=1",
                                   "sha-256=:{}:, sha-512=:{}:", "sha-256 = :{}:"])
def test_content_digest_shortcut_answers_as_the_reader(shape: str, value: str) -> None:
    header = shape.format(value, value)
    assert (digest.check_content_digest(header, BODY)
            is digest._content_digest_members(header, BODY))


def test_the_shortcut_tells_match_from_mismatch() -> None:
    assert digest.check_digest(f"SHA-256={GOOD}", BODY) is digest.DigestCheck.OK
    assert digest.check_digest(f"SHA-256={OTHER}", BODY) is digest.DigestCheck.MISMATCH
    assert digest.check_digest("SHA-256=", BODY) is digest.DigestCheck.MALFORMED
    assert digest.check_content_digest(f"sha-256=:{GOOD}:", BODY) is digest.DigestCheck.OK
    assert digest.check_content_digest(f"sha-256=:{OTHER}:", BODY) is digest.DigestCheck.MISMATCH
