"""Credentials reduced to a short prefix and a keyed hash: never the key itself."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oisp_sensor.decode.auth import SECRET_HEADERS, extract_auth, key_prefix
from oisp_sensor.decode.http1 import Headers
from oisp_sensor.privacy.hashing import KeyedHasher
from tests.helpers import HASHER


def auth(headers: dict[str, str], query: dict[str, list[str]] | None = None) -> dict[str, str]:
    return dict(extract_auth(Headers(list(headers.items())), query or {}, HASHER))


@given(st.text(min_size=1, max_size=300))
def test_prefix_is_at_most_8_chars_and_a_fifth_of_the_secret(secret: str) -> None:
    prefix = key_prefix(secret)
    assert 1 <= len(prefix) <= 8
    assert secret.startswith(prefix)
    if len(secret) >= 5:
        assert len(prefix) <= len(secret) // 5


def test_bearer_api_key() -> None:
    key = "sk-proj-" + "a1B2c3D4" * 20
    assert auth({"authorization": f"Bearer {key}"}) == {
        "type": "api_key",
        "key_prefix": "sk-proj-",
        "key_hash": HASHER(key),
    }


def test_scheme_is_case_insensitive_and_whitespace_trimmed() -> None:
    key = "sk-" + "x" * 48
    assert auth({"authorization": f"bearer   {key}  "})["key_hash"] == HASHER(key)


@pytest.mark.parametrize(
    "header", ["x-api-key", "api-key", "x-goog-api-key", "ocp-apim-subscription-key"]
)
def test_key_headers(header: str) -> None:
    key = "k" * 40
    got = auth({header: f" {key} "})
    assert got["type"] == "api_key" and got["key_hash"] == HASHER(key)


def test_authorization_wins_over_other_key_headers() -> None:
    got = auth({"x-api-key": "a" * 40, "authorization": "Bearer " + "b" * 40})
    assert got["key_hash"] == HASHER("b" * 40)


@pytest.mark.parametrize("param", ["key", "api_key"])
def test_key_in_the_query_string(param: str) -> None:
    got = auth({}, {param: ["AIzaSyD" + "q" * 32]})
    assert got["key_prefix"] == "AIzaSyD"
    assert got["key_hash"] == HASHER("AIzaSyD" + "q" * 32)


@pytest.mark.parametrize(
    "token", ["ya29.a0AfB_byC7xQ9zJ2kLmNoPqRsTuVwXyZ", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.sig"]
)
def test_oauth_tokens(token: str) -> None:
    assert auth({"authorization": f"Bearer {token}"})["type"] == "oauth"


def test_sigv4_keeps_only_the_access_key_id() -> None:
    value = (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/bedrock/aws4_request, "
        "SignedHeaders=host;x-amz-date, "
        "Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024"
    )
    got = auth({"authorization": value})
    assert got == {
        "type": "api_key",
        "key_prefix": "AKIA",
        "key_hash": HASHER("AKIAIOSFODNN7EXAMPLE"),
    }
    temporary = auth({"authorization": value.replace("AKIA", "ASIA")})
    assert temporary["type"] == "service_account"


def test_unknown_scheme_is_hashed_whole() -> None:
    got = auth({"authorization": "Basic dXNlcjpwYXNzd29yZA=="})
    assert got["key_hash"] == HASHER("Basic dXNlcjpwYXNzd29yZA==")
    assert len(got["key_prefix"]) <= 8


def test_no_credentials() -> None:
    assert auth({"content-type": "application/json"}) == {"type": "none"}
    assert auth({"authorization": ""}) == {"type": "none"}
    assert auth({"authorization": "Bearer "}) == {"type": "none"}


def test_every_credential_header_is_listed_as_secret() -> None:
    for name in (
        "authorization",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "cookie",
        "proxy-authorization",
        "x-amz-security-token",
    ):
        assert name in SECRET_HEADERS


class CountingHasher:
    """The test key's hasher, counting the secrets it is asked to hash."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, value: str) -> str:
        self.calls.append(value)
        return HASHER(value)


def test_the_same_key_is_hashed_once() -> None:
    hasher = CountingHasher()
    key = "sk-proj-" + "c4c4e" * 12
    headers = Headers([("authorization", f"Bearer {key}")])
    first = extract_auth(headers, {}, hasher)
    for _ in range(50):
        assert extract_auth(headers, {}, hasher) == first
    assert hasher.calls == [key]
    assert first == {"type": "api_key", "key_prefix": "sk-proj-", "key_hash": HASHER(key)}


def test_cached_hashes_belong_to_their_hasher() -> None:
    """Another hashing key (another machine's secret) must not get this one's hashes."""
    key = "sk-" + "d" * 48
    other = KeyedHasher(b"another-machine-secret-32-bytes!")
    headers = Headers([("x-api-key", key)])
    assert extract_auth(headers, {}, HASHER)["key_hash"] == HASHER(key)
    assert extract_auth(headers, {}, other)["key_hash"] == other(key) != HASHER(key)
