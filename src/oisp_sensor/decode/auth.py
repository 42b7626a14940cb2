"""Credentials in request headers, reduced to what may leave the decoder.

The key itself never does: only `key_prefix` (a few leading characters, enough to
tell keys apart by eye) and `key_hash` (keyed, see privacy/hashing.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from oisp_sensor.decode.http1 import Headers
from oisp_sensor.events.data import AuthInfo

# Header names whose values are credentials. They are never copied into events.
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "cookie",
        "set-cookie",
        "x-amz-security-token",
        "x-amz-content-sha256",
        "ocp-apim-subscription-key",
        "x-auth-token",
        "x-access-token",
    }
)


def key_prefix(secret: str) -> str:
    """At most 8 leading characters, and never more than a fifth of the secret."""
    return secret[: max(1, min(8, len(secret) // 5))]


def extract_auth(
    headers: Headers, query: dict[str, list[str]], hasher: Callable[[str], str]
) -> AuthInfo:
    secret: str | None = None
    kind = "api_key"
    value = headers.get("authorization")
    if value:
        scheme, _, rest = value.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            secret = rest.strip()
            # OAuth access tokens: Google's ya29.*, and JWTs.
            if secret.startswith(("ya29.", "eyJ")):
                kind = "oauth"
        elif scheme == "aws4-hmac-sha256":
            # SigV4: only the access key id identifies the caller; the signature is per request.
            for part in rest.split(","):
                name, _, val = part.strip().partition("=")
                if name == "Credential":
                    secret = val.split("/", 1)[0]
            kind = "service_account" if secret and secret.startswith("ASIA") else "api_key"
        else:
            secret = value
    if secret is None:
        for name in ("x-api-key", "api-key", "x-goog-api-key", "ocp-apim-subscription-key"):
            value = headers.get(name)
            if value:
                secret = value.strip()
                break
    if secret is None:
        for name in ("key", "api_key"):
            if query.get(name):
                secret = query[name][0]
                break
    if not secret:
        return {"type": "none"}
    prefix, digest = _reduce(hasher, secret)
    return {"type": kind, "key_prefix": prefix, "key_hash": digest}


@functools.lru_cache(maxsize=256)
def _reduce(hasher: Callable[[str], str], secret: str) -> tuple[str, str]:
    """An app sends the same key with every call: its keyed hash is computed once.

    In memory only, bounded (least recently used keys go), keyed by the hasher too
    so two hashing keys never share an entry. The secrets held here are ones this
    process already holds in the captures they came from.
    """
    return key_prefix(secret), hasher(secret)
